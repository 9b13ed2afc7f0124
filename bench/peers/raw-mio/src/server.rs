//! The whole server: one `Poll`, one listener, a slab of connections, one loop.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use socket2::{Domain, Protocol, Socket, Type};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);

/// The listen backlog: tokio's and our Twisted peers' value. (mio's own `bind` uses
/// 128, which overflows when a load generator opens thousands of connections while
/// this one thread is busy, and each overflow costs the client a 1 s SYN retry.)
const BACKLOG: i32 = 1024;

/// Size of the one read buffer that all echo connections share.
const ECHO_BUF: usize = 64 * 1024;

/// What the server sends.
#[derive(Debug)]
pub enum Mode {
    /// Send this poem to each client with non-blocking `write`s, then close.
    Poetry(Vec<u8>),
    /// Send the whole of this open file to each client with `sendfile(2)`, then close.
    /// One descriptor serves every client: each keeps its own offset.
    Sendfile(File),
    /// Write back whatever is read; close when the peer does.
    Echo,
}

/// One accepted connection. `pending` stays unallocated unless an echo peer stops
/// reading its replies.
struct Conn {
    stream: TcpStream,
    /// Poetry and sendfile: bytes of the poem sent so far.
    sent: u64,
    /// Echo: bytes read but not yet written back.
    pending: Vec<u8>,
}

/// What driving a connection came to.
enum Next {
    /// Wait for the next readiness event.
    Wait,
    /// Done or broken: drop it (closing the socket).
    Close,
}

/// Stops a running [`Server`] from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<Waker>);

impl StopHandle {
    pub(crate) fn new(waker: Arc<Waker>) -> StopHandle {
        StopHandle(waker)
    }

    /// Asks the server's loop to return. It closes every connection and returns `Ok`.
    ///
    /// # Errors
    ///
    /// The error of waking the poll (the server's `Poll` is gone or broken).
    pub fn stop(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// The raw server: bind it, optionally [`stop_on_signals`](Server::stop_on_signals),
/// then [`run`](Server::run) it on the current thread.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    waker: Arc<Waker>,
    signals: Option<Signals>,
    mode: Mode,
    /// Poem length, for `Mode::Sendfile`.
    file_len: u64,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("mode", &self.mode)
            .field("open", &(self.conns.len() - self.free.len()))
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` (port 0: any free port) and prepares the loop.
    ///
    /// # Errors
    ///
    /// The error of creating the poll, binding, or reading the sendfile file's length.
    pub fn bind(addr: SocketAddr, mode: Mode) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = listen(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let file_len = match &mode {
            Mode::Sendfile(file) => file.metadata()?.len(),
            _ => 0,
        };
        Ok(Server {
            poll,
            listener,
            waker,
            signals: None,
            mode,
            file_len,
            conns: Vec::new(),
            free: Vec::new(),
        })
    }

    /// The address the listener is bound to (with the real port).
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops [`run`](Server::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.waker))
    }

    /// Makes SIGTERM and SIGINT stop the loop cleanly (process-wide handlers).
    ///
    /// # Errors
    ///
    /// The error of installing the handlers or registering their pipe.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        self.signals = Some(stop_signals(&self.poll, SIGNALS)?);
        Ok(())
    }

    /// Runs the loop until stopped by a signal or a [`StopHandle`]. Connections still
    /// open are closed on return.
    ///
    /// # Errors
    ///
    /// Only a failing `poll` (other than `EINTR`) ends the loop with an error; errors
    /// on single connections just close them.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut buf = match self.mode {
            Mode::Echo => vec![0u8; ECHO_BUF],
            _ => Vec::new(),
        };
        // Set when accept ran out of descriptors: retried after a connection closes,
        // since the edge-triggered listener will not report the waiting backlog again.
        let mut accept_blocked = false;
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut closed_any = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept_blocked = self.accept_all(&mut buf),
                    WAKER => return Ok(()),
                    SIGNALS => {
                        if let Some(signals) = &mut self.signals {
                            if signals.pending().next().is_some() {
                                return Ok(());
                            }
                        }
                    }
                    Token(slot) => {
                        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                            continue;
                        };
                        if let Next::Close = drive(&self.mode, self.file_len, conn, &mut buf) {
                            // Closing the only descriptor also removes it from the epoll
                            // set: no `deregister` syscall needed.
                            self.conns[slot] = None;
                            self.free.push(slot);
                            closed_any = true;
                        }
                    }
                }
            }
            if accept_blocked && closed_any {
                accept_blocked = self.accept_all(&mut buf);
            }
        }
    }

    /// Accepts until the backlog is empty. Returns `true` if it stopped for want of
    /// descriptors.
    fn accept_all(&mut self, buf: &mut [u8]) -> bool {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    return true;
                }
                // ECONNABORTED and friends: that one client is gone, carry on.
                Err(_) => continue,
            };
            if let Mode::Echo = self.mode {
                // Replies can be split across reads; do not let Nagle hold the tail.
                let _ = stream.set_nodelay(true);
            }
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let mut conn = Conn {
                stream,
                sent: 0,
                pending: Vec::new(),
            };
            let interest = match self.mode {
                // A poem that fits the socket buffer is sent and closed right here,
                // without ever registering the socket.
                Mode::Poetry(_) | Mode::Sendfile(_) => {
                    if let Next::Close = drive(&self.mode, self.file_len, &mut conn, buf) {
                        self.free.push(slot);
                        continue;
                    }
                    Interest::WRITABLE
                }
                Mode::Echo => Interest::READABLE | Interest::WRITABLE,
            };
            if self
                .poll
                .registry()
                .register(&mut conn.stream, Token(slot), interest)
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.conns[slot] = Some(conn);
        }
    }
}

/// Binds a non-blocking listener for the mio loop.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    Ok(TcpListener::from_std(std_listener(addr, true)?))
}

/// Binds a listener with [`BACKLOG`] (and `SO_REUSEADDR`, as mio does), blocking or
/// not (`std`'s own `bind` listens with 128).
pub(crate) fn std_listener(
    addr: SocketAddr,
    nonblocking: bool,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(nonblocking)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Does all the work a connection's readiness allows, until the kernel says
/// `WouldBlock` (mio is edge-triggered) or the connection is finished.
fn drive(mode: &Mode, file_len: u64, conn: &mut Conn, buf: &mut [u8]) -> Next {
    let result = match mode {
        Mode::Poetry(poem) => write_poem(conn, poem),
        Mode::Sendfile(file) => send_file(conn, file, file_len),
        Mode::Echo => echo(conn, buf),
    };
    result.unwrap_or(Next::Close)
}

fn write_poem(conn: &mut Conn, poem: &[u8]) -> io::Result<Next> {
    // `sent` never exceeds `poem.len()`, so the cast is lossless.
    let mut sent = conn.sent as usize;
    while sent < poem.len() {
        match conn.stream.write(&poem[sent..]) {
            Ok(0) => return Ok(Next::Close),
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                conn.sent = sent as u64;
                return Ok(Next::Wait);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Next::Close)
}

fn send_file(conn: &mut Conn, file: &File, len: u64) -> io::Result<Next> {
    while conn.sent < len {
        // Linux sends at most 0x7fff_f000 bytes per call.
        let count = (len - conn.sent).min(0x7fff_f000) as usize;
        let mut offset = conn.sent as libc::off_t;
        // SAFETY: both descriptors are open for the call's duration and `offset` is a
        // valid, writable `off_t`. The file's own position is not used or changed.
        let n = unsafe {
            libc::sendfile(
                conn.stream.as_raw_fd(),
                file.as_raw_fd(),
                &mut offset,
                count,
            )
        };
        match n {
            0 => return Ok(Next::Close), // The file shrank under us.
            n if n > 0 => conn.sent = offset as u64,
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    ErrorKind::WouldBlock => return Ok(Next::Wait),
                    ErrorKind::Interrupted => {}
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(Next::Close)
}

fn echo(conn: &mut Conn, buf: &mut [u8]) -> io::Result<Next> {
    loop {
        // First flush what an earlier turn could not write; read nothing more from a
        // peer that does not read its replies.
        while !conn.pending.is_empty() {
            match conn.stream.write(&conn.pending) {
                Ok(0) => return Ok(Next::Close),
                Ok(n) => {
                    conn.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if conn.pending.capacity() > 0 {
            conn.pending = Vec::new(); // Give the memory back: idle peers cost nothing.
        }
        let n = match conn.stream.read(buf) {
            Ok(0) => return Ok(Next::Close),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Next::Wait),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while written < n {
            match conn.stream.write(&buf[written..n]) {
                Ok(0) => return Ok(Next::Close),
                Ok(m) => written += m,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.pending.extend_from_slice(&buf[written..n]);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// SIGTERM and SIGINT as readable events of `poll` under `token` (both servers stop
/// on them).
pub(crate) fn stop_signals(poll: &Poll, token: Token) -> io::Result<Signals> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    poll.registry()
        .register(&mut signals, token, Interest::READABLE)?;
    Ok(signals)
}
