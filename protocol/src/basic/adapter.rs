//! What the three receivers share, written once: the callbacks a framing protocol
//! inherits from [`Protocol`](crate::Protocol), and the wrapper that forwards them.
//!
//! A receiver's own file holds only what differs: its protocol trait's framing
//! callbacks, its state (a [`FrameReader`](super::FrameReader) over its parser), its
//! `new` and `deliver`, and its context's controls. The macros below add the rest.

/// The [`Protocol`](crate::Protocol) callbacks a framing protocol trait forwards,
/// each with the trait's own context type `$cx` (inside the trait: `Self` is the
/// protocol). `lost` and `eof` end the docs of `connection_lost` and
/// `read_connection_lost` with what the framing does there.
macro_rules! forwarded_callbacks {
    ($cx:ty, lost: $lost:literal, eof: $eof:literal) => {
        /// As [`Protocol::connection_made`](crate::Protocol::connection_made).
        #[doc(alias = "connectionMade")]
        fn connection_made(&mut self, cx: &mut $cx) {
            let _ = cx;
        }

        #[doc = concat!(
            "As [`Protocol::connection_lost`](crate::Protocol::connection_lost). ",
            $lost
        )]
        #[doc(alias = "connectionLost")]
        fn connection_lost(&mut self, cx: &mut $cx, reason: &::transport::DisconnectReason) {
            let _ = (cx, reason);
        }

        #[doc = concat!(
            "As [`Protocol::read_connection_lost`](crate::Protocol::read_connection_lost). ",
            $eof
        )]
        #[doc(alias = "readConnectionLost")]
        fn read_connection_lost(&mut self, cx: &mut $cx) -> ::transport::EofAction {
            let _ = cx;
            ::transport::EofAction::Close
        }

        /// As [`Protocol::write_connection_lost`](crate::Protocol::write_connection_lost).
        #[doc(alias = "writeConnectionLost")]
        fn write_connection_lost(&mut self, cx: &mut $cx) {
            let _ = cx;
        }

        /// As [`Protocol::pause_producing`](crate::Protocol::pause_producing), for a
        /// protocol registered as its transport's producer (the write side; the
        /// context's `pause_receiving`, where the framing has one, is the read side).
        #[doc(alias = "pauseProducing")]
        fn pause_producing(&mut self, cx: &mut $cx) {
            let _ = cx;
        }

        /// As [`Protocol::resume_producing`](crate::Protocol::resume_producing).
        #[doc(alias = "resumeProducing")]
        fn resume_producing(&mut self, cx: &mut $cx) {
            let _ = cx;
        }

        /// As [`Protocol::stop_producing`](crate::Protocol::stop_producing).
        #[doc(alias = "stopProducing")]
        fn stop_producing(&mut self, cx: &mut $cx) {
            let _ = cx;
        }

        /// As [`Protocol::timeout_connection`](crate::Protocol::timeout_connection);
        /// the default aborts with
        /// [`DisconnectReason::TimedOut`](::transport::DisconnectReason::TimedOut).
        #[doc(alias = "timeoutConnection")]
        fn timeout_connection(&mut self, cx: &mut $cx) {
            cx.abort_timed_out();
        }
    };
}

/// A context's read-side flow control, for a receiver whose state has a `paused` flag
/// that its `deliver` honours: `pause_receiving`, `resume_receiving`, `is_paused`.
/// `$what` names what is delivered ("lines", "strings"). Invoked inside the
/// context's `impl` block.
macro_rules! receiving_controls {
    ($what:literal) => {
        #[doc = concat!(
                    "Stops delivering ", $what, " (and reading) until ",
                    "[`resume_receiving`](Self::resume_receiving): ", $what,
                    " already read stay buffered (Twisted's `pauseProducing`)."
                )]
        #[doc(alias = "pauseProducing")]
        pub fn pause_receiving(&mut self) {
            self.state.paused = true;
            self.cx.pause_reading();
        }

        #[doc = concat!(
                    "Delivers the buffered ", $what, " and reads again (Twisted's ",
                    "`resumeProducing`). Called from a callback, delivery goes on when it returns."
                )]
        #[doc(alias = "resumeProducing")]
        pub fn resume_receiving(&mut self) {
            self.state.paused = false;
            self.cx.resume_reading();
        }

        /// Whether delivery is paused.
        pub fn is_paused(&self) -> bool {
            self.state.paused
        }
    };
}

/// The wrapper half of a framing receiver `$receiver<$params>` around a protocol of
/// type `$inner`, whose callbacks get a `$context<'_, '_, $params>`:
///
/// * `Debug` and `Default` (for a `Default` protocol) for the receiver;
/// * `protocol`, `protocol_mut`, `with_context` (and the private `call`);
/// * the [`Protocol`](crate::Protocol) implementation, forwarding every callback to
///   the protocol with a context, and `data_received` to the receiver's `deliver`;
/// * `Debug`, `Deref` and `DerefMut` (to the protocol [`Context`](crate::Context))
///   and `call_later` for the context.
///
/// The receiver must have the fields `protocol: $inner` and `state` (with a field
/// `reader`, a [`FrameReader`](super::FrameReader)), the methods `new($inner)` and
/// `deliver(&mut self, &mut Context<'_, Self>, &[u8])`; the context must have the
/// fields `cx` and `state`, and `$extra` initialises any other.
macro_rules! framing_receiver {
    (
        $receiver:ident<$($param:ident),+> where [$($bounds:tt)+],
        inner: $inner:ident,
        context: $context:ident { $($extra:ident: $init:expr),* } $(,)?
    ) => {
        impl<$($bounds)+> ::std::fmt::Debug for $receiver<$($param),+>
        where
            $inner: ::std::fmt::Debug,
        {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($receiver))
                    .field("protocol", &self.protocol)
                    .field("state", &self.state)
                    .finish()
            }
        }

        impl<$($bounds)+> Default for $receiver<$($param),+>
        where
            $inner: Default,
        {
            fn default() -> Self {
                $receiver::new($inner::default())
            }
        }

        impl<$($bounds)+> $receiver<$($param),+> {
            /// The wrapped protocol.
            pub fn protocol(&self) -> &$inner {
                &self.protocol
            }

            /// The wrapped protocol, to change.
            pub fn protocol_mut(&mut self) -> &mut $inner {
                &mut self.protocol
            }

            #[doc = concat!(
                "Calls `f` with the protocol and a [`", stringify!($context), "`] over `cx`, ",
                "then delivers what became deliverable (after `resume_receiving` or ",
                "`set_line_mode`, where the framing has them): how a timer, another ",
                "connection or a test reaches the protocol. [`", stringify!($context),
                "::call_later`] uses it."
            )]
            pub fn with_context<R>(
                &mut self,
                cx: &mut $crate::Context<'_, Self>,
                f: impl FnOnce(&mut $inner, &mut $context<'_, '_, $($param),+>) -> R,
            ) -> R {
                let result = self.call(cx, f);
                self.deliver(cx, &[]);
                result
            }

            /// Calls `f` with the protocol and a context, delivering nothing.
            fn call<R>(
                &mut self,
                cx: &mut $crate::Context<'_, Self>,
                f: impl FnOnce(&mut $inner, &mut $context<'_, '_, $($param),+>) -> R,
            ) -> R {
                let mut context = $context {
                    cx,
                    state: &mut self.state,
                    $($extra: $init),*
                };
                f(&mut self.protocol, &mut context)
            }
        }

        // ===== impl IProtocol =====

        impl<$($bounds)+> $crate::Protocol for $receiver<$($param),+> {
            type Factory = $inner::Factory;

            fn connection_made(&mut self, cx: &mut $crate::Context<'_, Self>) {
                self.with_context(cx, |p, cx| p.connection_made(cx));
            }

            fn data_received(&mut self, cx: &mut $crate::Context<'_, Self>, data: &[u8]) {
                self.deliver(cx, data);
            }

            fn read_connection_lost(
                &mut self,
                cx: &mut $crate::Context<'_, Self>,
            ) -> ::transport::EofAction {
                self.with_context(cx, |p, cx| p.read_connection_lost(cx))
            }

            fn write_connection_lost(&mut self, cx: &mut $crate::Context<'_, Self>) {
                self.with_context(cx, |p, cx| p.write_connection_lost(cx));
            }

            fn connection_lost(
                &mut self,
                cx: &mut $crate::Context<'_, Self>,
                reason: &::transport::DisconnectReason,
            ) {
                self.call(cx, |p, cx| p.connection_lost(cx, reason));
                self.state.reader.release();
            }

            fn pause_producing(&mut self, cx: &mut $crate::Context<'_, Self>) {
                self.with_context(cx, |p, cx| p.pause_producing(cx));
            }

            fn resume_producing(&mut self, cx: &mut $crate::Context<'_, Self>) {
                self.with_context(cx, |p, cx| p.resume_producing(cx));
            }

            fn stop_producing(&mut self, cx: &mut $crate::Context<'_, Self>) {
                self.with_context(cx, |p, cx| p.stop_producing(cx));
            }

            fn timeout_connection(&mut self, cx: &mut $crate::Context<'_, Self>) {
                self.with_context(cx, |p, cx| p.timeout_connection(cx));
            }
        }

        impl<$($bounds)+> ::std::fmt::Debug for $context<'_, '_, $($param),+> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($context))
                    .field("cx", &self.cx)
                    .field("state", &self.state)
                    .finish_non_exhaustive()
            }
        }

        impl<'b, $($bounds)+> ::std::ops::Deref for $context<'_, 'b, $($param),+> {
            type Target = $crate::Context<'b, $receiver<$($param),+>>;

            fn deref(&self) -> &Self::Target {
                self.cx
            }
        }

        impl<$($bounds)+> ::std::ops::DerefMut for $context<'_, '_, $($param),+> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                self.cx
            }
        }

        impl<$($bounds)+> $context<'_, '_, $($param),+> {
            /// Calls `f` with this protocol and a fresh context after `delay`, if the
            /// connection is still open; what `f` makes deliverable (by resuming) is
            /// delivered when it returns.
            pub fn call_later(
                &mut self,
                delay: ::std::time::Duration,
                f: impl FnOnce(&mut $inner, &mut $context<'_, '_, $($param),+>) + 'static,
            ) -> ::reactor::DelayedCall {
                self.cx
                    .call_later(delay, move |receiver, cx| receiver.with_context(cx, f))
            }
        }
    };
}
