//! Child processes: [`spawn_process`], the [`ProcessHandler`] it calls and the
//! [`ProcessTransport`] that handler gets (Twisted's `spawnProcess`,
//! `IProcessProtocol`, `IProcessTransport`).
//!
//! The child's stdin, stdout and stderr are pipes, each an ordinary [`Connection`]
//! over a [`PipeStream`](crate::PipeStream) (buffered, ordered, never blocking writes;
//! reads bounded per turn), and the child's exit is a readable `pidfd` registered with
//! the reactor. How the pieces are put together (ordering, the grace period, reaping)
//! is in `process_state.rs`.
//!
//! [`Connection`]: crate::Connection

use std::fmt;
use std::io;
use std::process::Command;
use std::time::Duration;

use reactor::Reactor;

use crate::connection::{Connection, Transport};
use crate::process_state::{self, PipeEnd, Shared};
use crate::reason::DisconnectReason;

/// One of the child's standard descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildFd {
    /// The child's standard input: we write to it.
    Stdin = 0,
    /// The child's standard output: we read it.
    Stdout = 1,
    /// The child's standard error: we read it.
    Stderr = 2,
}

impl fmt::Display for ChildFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChildFd::Stdin => "stdin",
            ChildFd::Stdout => "stdout",
            ChildFd::Stderr => "stderr",
        })
    }
}

/// How a child process ended (Twisted's `ProcessDone` / `ProcessTerminated`), or that
/// it never started.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessStatus {
    /// It exited with this code (`ProcessDone` for 0, `ProcessTerminated` otherwise).
    Exited(i32),
    /// A signal killed it (`ProcessTerminated` with `signal`).
    Signaled {
        /// The signal's number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// It could not be started: the program does not exist, is not executable, or
    /// the system refused a process or a pipe.
    NotStarted(io::Error),
}

impl ProcessStatus {
    /// Whether it exited with code 0 (Twisted's `ProcessDone`).
    pub fn success(&self) -> bool {
        matches!(self, ProcessStatus::Exited(0))
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            ProcessStatus::Exited(code) => Some(*code),
            _ => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self {
            ProcessStatus::Signaled { signal, .. } => Some(*signal),
            _ => None,
        }
    }

    /// From a `waitpid` status word.
    pub(crate) fn from_wait(status: libc::c_int) -> ProcessStatus {
        if libc::WIFSIGNALED(status) {
            ProcessStatus::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            }
        } else {
            ProcessStatus::Exited(libc::WEXITSTATUS(status))
        }
    }
}

impl fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessStatus::Exited(code) => write!(f, "process exited with code {code}"),
            ProcessStatus::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "process was killed by signal {signal}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
            ProcessStatus::NotStarted(e) => write!(f, "process could not be started: {e}"),
        }
    }
}

/// What went wrong asking something of a process.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The process has exited and been reaped (Twisted's `ProcessExitedAlready`).
    ExitedAlready,
    /// The signal could not be sent.
    Signal(io::Error),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::ExitedAlready => f.write_str("process has exited already"),
            ProcessError::Signal(e) => write!(f, "cannot signal the process: {e}"),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Signal(e) => Some(e),
            ProcessError::ExitedAlready => None,
        }
    }
}

/// The callbacks a child process makes (Twisted's `IProcessProtocol`).
///
/// # Order
///
/// `connection_made` first (never, if the child could not be started: then only
/// `process_ended` with [`ProcessStatus::NotStarted`]); then `child_data_received`
/// and `child_connection_lost` (once per pipe) in any order between pipes, in order
/// within one; `process_exited` once, when the child is dead and its status known,
/// possibly before its pipes are drained; and `process_ended` last, exactly once, after
/// the exit *and* every pipe's `child_connection_lost`. Output that arrives after the
/// exit is delivered before `process_ended`. A pipe a grandchild keeps open is closed
/// after [`ProcessOptions::pipe_grace`] without data once the child has exited (its
/// reason is [`DisconnectReason::TimedOut`]), so `process_ended` always comes.
///
/// No callback runs inside another: what a callback asks for (a write, a close) that
/// ends a pipe is reported after it returns.
pub trait ProcessHandler: 'static {
    /// The child is running and its pipes are open (Twisted's `makeConnection`).
    #[doc(alias = "makeConnection")]
    fn connection_made(&mut self, process: &mut ProcessTransport<'_>) {
        let _ = process;
    }

    /// The child wrote `data` to `fd` (Twisted's `childDataReceived`).
    #[doc(alias = "childDataReceived")]
    fn child_data_received(&mut self, process: &mut ProcessTransport<'_>, fd: ChildFd, data: &[u8]);

    /// Pipe `fd` is closed (Twisted's `childConnectionLost`): the child closed it
    /// (`Done`), it broke (a child that stopped reading its stdin: `Lost`), we closed it,
    /// or the grace period after the exit ran out (`TimedOut`).
    #[doc(alias = "childConnectionLost")]
    fn child_connection_lost(
        &mut self,
        process: &mut ProcessTransport<'_>,
        fd: ChildFd,
        reason: &DisconnectReason,
    ) {
        let _ = (process, fd, reason);
    }

    /// The child has exited and been reaped (Twisted's `processExited`); its pipes may
    /// still hold output.
    #[doc(alias = "processExited")]
    fn process_exited(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        let _ = (process, status);
    }

    /// The child has exited and all its pipes are closed (Twisted's `processEnded`):
    /// the last call.
    #[doc(alias = "processEnded")]
    fn process_ended(&mut self, process: &mut ProcessTransport<'_>, status: &ProcessStatus);
}

/// How to run a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    /// After the child exits, how long its pipes may stay silent before they are
    /// closed (a grandchild holding them): re-armed by every read. Default 1 s.
    pub pipe_grace: Duration,
    /// Learn of the exit through a thread blocked in `waitpid` for this one child
    /// instead of a `pidfd` (what is done anyway on kernels before 5.3). For tests.
    pub wait_on_thread: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            pipe_grace: Duration::from_secs(1),
            wait_on_thread: false,
        }
    }
}

/// A process handler's view of its child, lent for one callback (Twisted's
/// `IProcessTransport`): write to its stdin, close its pipes, signal it.
pub struct ProcessTransport<'a> {
    pub(crate) base: Base<'a>,
    pub(crate) shared: &'a dyn Shared,
}

/// Where a [`ProcessTransport`] reaches the reactor: directly, or through the pipe
/// whose event is being delivered (that pipe's connection is lifted out of the reactor
/// while it runs, so it is reached through its own transport).
pub(crate) enum Base<'a> {
    Reactor(&'a mut Reactor),
    Pipe(ChildFd, Transport<'a>),
}

impl Base<'_> {
    pub(crate) fn reactor(&mut self) -> &mut Reactor {
        match self {
            Base::Reactor(reactor) => reactor,
            Base::Pipe(_, transport) => transport.reactor(),
        }
    }

    /// Runs `f` on pipe `fd`'s transport, if that pipe is open.
    fn with_pipe(&mut self, shared: &dyn Shared, fd: ChildFd, f: impl FnOnce(&mut Transport<'_>)) {
        match self {
            Base::Pipe(current, transport) if *current == fd => f(transport),
            _ => {
                if let Some(id) = shared.pipe(fd) {
                    Connection::<PipeEnd>::with_handler(self.reactor(), id, |_, t| f(t));
                }
            }
        }
    }
}

impl fmt::Debug for ProcessTransport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessTransport")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl ProcessTransport<'_> {
    /// Writes `data` to the child's stdin: buffered, in order, never blocking. Ignored
    /// once stdin is closed.
    pub fn write(&mut self, data: &[u8]) {
        self.write_sequence(&[data]);
    }

    /// Writes several buffers to the child's stdin (Twisted's `writeSequence`).
    #[doc(alias = "writeSequence")]
    pub fn write_sequence(&mut self, data: &[&[u8]]) {
        self.base
            .with_pipe(self.shared, ChildFd::Stdin, |t| t.write_sequence(data));
    }

    /// Closes the child's stdin once everything written has gone (Twisted's
    /// `closeStdin`): the child reads end of file.
    #[doc(alias = "closeStdin")]
    pub fn close_stdin(&mut self) {
        self.close_child_fd(ChildFd::Stdin);
    }

    /// Closes one of the pipes (Twisted's `closeChildFD`); for stdin, after what was
    /// written has gone.
    #[doc(alias = "closeChildFD")]
    pub fn close_child_fd(&mut self, fd: ChildFd) {
        self.base
            .with_pipe(self.shared, fd, |t| t.lose_connection());
    }

    /// Closes every pipe (Twisted's `loseConnection`); the child goes on running.
    #[doc(alias = "loseConnection")]
    pub fn lose_connection(&mut self) {
        for fd in [ChildFd::Stdin, ChildFd::Stdout, ChildFd::Stderr] {
            self.close_child_fd(fd);
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the child (Twisted's `signalProcess`),
    /// through its pidfd where there is one, so it can never reach another process that
    /// reused the number.
    ///
    /// # Errors
    ///
    /// [`ProcessError::ExitedAlready`] once the child is reaped;
    /// [`ProcessError::Signal`] if the system refuses.
    #[doc(alias = "signalProcess")]
    pub fn signal_process(&mut self, signal: i32) -> Result<(), ProcessError> {
        self.shared.signal(signal)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.shared.pid()
    }

    /// The reactor: schedule calls, stop it.
    pub fn reactor(&mut self) -> &mut Reactor {
        self.base.reactor()
    }
}

/// Starts `command` as a child process with its stdin, stdout and stderr on pipes
/// watched by the reactor, and reports to `handler` (Twisted's `spawnProcess`).
///
/// Program, arguments, environment and working directory are `command`'s; its stdio
/// settings are replaced by pipes. The child gets only descriptors 0, 1 and 2: every
/// other descriptor is marked close-on-exec with `close_range(2)` in the child (time
/// in proportion to the descriptors open, not to the descriptor limit; a scan of
/// `/proc/self/fd` where the kernel lacks it).
///
/// Spawning never blocks the reactor: `fork` and `exec` happen on a short-lived thread
/// and the child is handed back to the reactor, which then calls `connection_made`. A
/// program that cannot be started is reported as `process_ended` with
/// [`ProcessStatus::NotStarted`].
///
/// Nothing is left a zombie: a child still running when the reactor shuts down (or is
/// dropped) is reaped by a thread waiting for that child alone, and nothing here
/// touches `SIGCHLD` or waits for other code's children.
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use transport::{spawn_process, ChildFd, ProcessHandler, ProcessOptions, ProcessStatus, ProcessTransport};
///
/// struct Collect(Vec<u8>);
/// impl ProcessHandler for Collect {
///     fn connection_made(&mut self, p: &mut ProcessTransport<'_>) {
///         p.write(b"hello\n");
///         p.close_stdin();
///     }
///     fn child_data_received(&mut self, _: &mut ProcessTransport<'_>, fd: ChildFd, data: &[u8]) {
///         if fd == ChildFd::Stdout { self.0.extend_from_slice(data) }
///     }
///     fn process_ended(&mut self, p: &mut ProcessTransport<'_>, status: &ProcessStatus) {
///         assert!(status.success());
///         assert_eq!(self.0, b"hello\n");
///         p.reactor().stop();
///     }
/// }
///
/// let mut reactor = reactor::Reactor::new()?;
/// spawn_process(&mut reactor, Collect(Vec::new()), Command::new("cat"), ProcessOptions::default());
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "spawnProcess")]
pub fn spawn_process<H: ProcessHandler>(
    reactor: &mut Reactor,
    handler: H,
    command: Command,
    options: ProcessOptions,
) {
    process_state::spawn(reactor, Box::new(handler), command, options);
}
