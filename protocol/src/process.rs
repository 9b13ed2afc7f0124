//! [`ProcessProtocol`] and [`spawn_process`]: a protocol for a child process (Twisted's
//! `protocol.ProcessProtocol` and `reactor.spawnProcess`), on the transport layer's
//! [`ProcessHandler`].

use std::process::Command;

use reactor::Reactor;
use transport::{
    ChildFd, DisconnectReason, ProcessHandler, ProcessOptions, ProcessStatus, ProcessTransport,
};

/// What a program writes to run a child process (Twisted's `ProcessProtocol`): every
/// method has a default, so implement only what matters.
///
/// The order is [`ProcessHandler`]'s: `connection_made`; output and per-pipe losses;
/// `process_exited` when the child is dead; `process_ended` last, after the exit and
/// every pipe. A child that could not be started gets only `process_ended` with
/// [`ProcessStatus::NotStarted`].
pub trait ProcessProtocol: 'static {
    /// The child is running (Twisted's `connectionMade`): write to it, or close its
    /// stdin.
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, process: &mut ProcessTransport<'_>) {
        let _ = process;
    }

    /// The child wrote to its stdout (Twisted's `outReceived`).
    #[doc(alias = "outReceived")]
    fn out_received(&mut self, process: &mut ProcessTransport<'_>, data: &[u8]) {
        let _ = (process, data);
    }

    /// The child wrote to its stderr (Twisted's `errReceived`).
    #[doc(alias = "errReceived")]
    fn err_received(&mut self, process: &mut ProcessTransport<'_>, data: &[u8]) {
        let _ = (process, data);
    }

    /// The child's stdin is closed (Twisted's `inConnectionLost`).
    #[doc(alias = "inConnectionLost")]
    fn in_connection_lost(&mut self, process: &mut ProcessTransport<'_>) {
        let _ = process;
    }

    /// The child's stdout is closed (Twisted's `outConnectionLost`).
    #[doc(alias = "outConnectionLost")]
    fn out_connection_lost(&mut self, process: &mut ProcessTransport<'_>) {
        let _ = process;
    }

    /// The child's stderr is closed (Twisted's `errConnectionLost`).
    #[doc(alias = "errConnectionLost")]
    fn err_connection_lost(&mut self, process: &mut ProcessTransport<'_>) {
        let _ = process;
    }

    /// The child has exited; output may still be on its way (Twisted's
    /// `processExited`).
    #[doc(alias = "processExited")]
    fn process_exited(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        let _ = (process, status);
    }

    /// The child has exited and every pipe is closed: the last call (Twisted's
    /// `processEnded`).
    #[doc(alias = "processEnded")]
    fn process_ended(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        let _ = (process, status);
    }
}

/// A [`ProcessProtocol`] as the transport's [`ProcessHandler`]: Twisted's
/// `childDataReceived` / `childConnectionLost` dispatch by descriptor.
struct Dispatch<P>(P);

impl<P: ProcessProtocol> ProcessHandler for Dispatch<P> {
    fn connection_made(&mut self, process: &mut ProcessTransport<'_>) {
        self.0.connection_made(process);
    }

    fn child_data_received(
        &mut self,
        process: &mut ProcessTransport<'_>,
        fd: ChildFd,
        data: &[u8],
    ) {
        match fd {
            ChildFd::Stderr => self.0.err_received(process, data),
            _ => self.0.out_received(process, data),
        }
    }

    fn child_connection_lost(
        &mut self,
        process: &mut ProcessTransport<'_>,
        fd: ChildFd,
        _: &DisconnectReason,
    ) {
        match fd {
            ChildFd::Stdin => self.0.in_connection_lost(process),
            ChildFd::Stdout => self.0.out_connection_lost(process),
            ChildFd::Stderr => self.0.err_connection_lost(process),
        }
    }

    fn process_exited(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        self.0.process_exited(process, status);
    }

    fn process_ended(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        self.0.process_ended(process, status);
    }
}

/// Runs `command` as a child with `protocol` (Twisted's `spawnProcess`): its stdin,
/// stdout and stderr are pipes on the reactor. See [`transport::spawn_process`] for
/// what is guaranteed (never blocking the reactor, no leaked descriptors, no zombies).
///
/// # Examples
///
/// `protocol/examples/sort_poem.rs` sorts a poem's lines through `sort`:
///
/// ```
/// use std::process::Command;
/// use protocol::{spawn_process, ProcessProtocol};
/// use protocol::transport::{ProcessOptions, ProcessStatus, ProcessTransport};
///
/// struct Sort { sorted: Vec<u8> }
/// impl ProcessProtocol for Sort {
///     fn connection_made(&mut self, p: &mut ProcessTransport<'_>) {
///         p.write(b"pear\napple\n");
///         p.close_stdin();
///     }
///     fn out_received(&mut self, _: &mut ProcessTransport<'_>, data: &[u8]) {
///         self.sorted.extend_from_slice(data);
///     }
///     fn process_ended(&mut self, p: &mut ProcessTransport<'_>, status: &ProcessStatus) {
///         assert!(status.success());
///         assert_eq!(self.sorted, b"apple\npear\n");
///         p.reactor().stop();
///     }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// let mut sort = Command::new("sort");
/// sort.env("LC_ALL", "C");
/// spawn_process(&mut reactor, Sort { sorted: Vec::new() }, sort, &ProcessOptions::default());
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "spawnProcess")]
pub fn spawn_process<P: ProcessProtocol>(
    reactor: &mut Reactor,
    protocol: P,
    command: Command,
    options: &ProcessOptions,
) {
    transport::spawn_process(reactor, Dispatch(protocol), command, options.clone());
}
