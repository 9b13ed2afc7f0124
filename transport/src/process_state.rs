//! How a child process is put together from the reactor's pieces: one [`Connection`]
//! per pipe (handler [`PipeEnd`]), an [`ExitWatch`] descriptor on the child's pidfd,
//! a grace timer, and the shared [`Child`] that orders their events for the
//! [`ProcessHandler`].
//!
//! The handler is taken out of the `Child` while it runs; an event that arrives
//! meanwhile (a write it made broke the stdin pipe, a close it asked for finished) is
//! queued and delivered right after it returns, so no callback runs inside another and
//! events keep their order.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use log::{debug, warn};
use reactor::{DelayedCall, Descriptor, DescriptorId, IoStatus, LostReason, Reactor};

use crate::address::Address;
use crate::connection::{Connection, Transport};
use crate::handler::Handler;
use crate::process::{
    Base, ChildFd, ProcessError, ProcessHandler, ProcessOptions, ProcessStatus, ProcessTransport,
};
use crate::reason::DisconnectReason;
use crate::stdio::PipeStream;

type Job = Box<dyn FnOnce(&mut dyn ProcessHandler, &mut ProcessTransport<'_>, &Child)>;

/// A child process as the reactor's thread sees it; shared by its pipes, its exit
/// watch and its grace timer.
pub(crate) struct Child {
    /// `None` while it is running a callback.
    handler: RefCell<Option<Box<dyn ProcessHandler>>>,
    queue: RefCell<VecDeque<Job>>,
    state: RefCell<State>,
}

struct State {
    key: u64,
    pid: u32,
    pidfd: Option<OwnedFd>,
    /// Set once the child is reaped.
    status: Option<ProcessStatus>,
    pipes: [Option<DescriptorId>; 3],
    options: ProcessOptions,
    grace_timer: Option<DelayedCall>,
    ended: bool,
}

/// What a [`ProcessTransport`] reaches its child through (kept a trait so the
/// transport's view names no private type).
pub(crate) trait Shared {
    fn pid(&self) -> u32;
    fn signal(&self, signal: i32) -> Result<(), ProcessError>;
    fn pipe(&self, fd: ChildFd) -> Option<DescriptorId>;
}

impl Shared for Child {
    fn pid(&self) -> u32 {
        self.state.borrow().pid
    }

    fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        let state = self.state.borrow();
        if state.status.is_some() || state.pid == 0 {
            return Err(ProcessError::ExitedAlready);
        }
        // SAFETY: plain system calls; the pidfd (when there is one) is open.
        let sent = unsafe {
            match &state.pidfd {
                Some(pidfd) => libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                ),
                None => libc::kill(state.pid as libc::pid_t, signal) as libc::c_long,
            }
        };
        if sent < 0 {
            return Err(ProcessError::Signal(io::Error::last_os_error()));
        }
        Ok(())
    }

    fn pipe(&self, fd: ChildFd) -> Option<DescriptorId> {
        self.state.borrow().pipes[fd as usize]
    }
}

thread_local! {
    /// The children spawned from this (reactor) thread, for the calls their spawning
    /// and waiting threads send back: those calls must be `Send`, so they carry a key.
    /// Each entry is removed when its child ends, or is abandoned by a reactor that
    /// shut down first.
    static CHILDREN: RefCell<HashMap<u64, Rc<Child>>> = RefCell::new(HashMap::new());
    static NEXT_KEY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn lookup(key: u64) -> Option<Rc<Child>> {
    CHILDREN.with(|c| c.borrow().get(&key).cloned())
}

fn forget(key: u64) {
    // Dropped outside the borrow: the child's handler may own anything.
    let child = CHILDREN.with(|c| c.borrow_mut().remove(&key));
    drop(child);
}

// ===== spawning =====

pub(crate) fn spawn(
    reactor: &mut Reactor,
    handler: Box<dyn ProcessHandler>,
    mut command: Command,
    options: ProcessOptions,
) {
    let key = NEXT_KEY.with(|k| {
        k.set(k.get() + 1);
        k.get()
    });
    let child = Rc::new(Child {
        handler: RefCell::new(Some(handler)),
        queue: RefCell::new(VecDeque::new()),
        state: RefCell::new(State {
            key,
            pid: 0,
            pidfd: None,
            status: None,
            pipes: [None; 3],
            options,
            grace_timer: None,
            ended: false,
        }),
    });
    CHILDREN.with(|c| c.borrow_mut().insert(key, child.clone()));
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let handle = reactor.handle();
    let spawner = std::thread::Builder::new()
        .name("spawn_process".into())
        .spawn(move || {
            let result = spawn_blocking(command);
            // If the reactor is gone, the call (and the child in it) is dropped: the
            // `Orphan` guard reaps it.
            let _ = handle.call_from_thread(move |reactor| started(reactor, key, result));
        });
    if let Err(e) = spawner {
        child.fail(reactor, e);
    }
}

/// Forks and execs (on the spawning thread): only descriptors 0, 1 and 2 survive exec.
fn spawn_blocking(mut command: Command) -> io::Result<Orphan> {
    let inherited = if close_range_works() {
        Vec::new()
    } else {
        descriptors_without_cloexec()
    };
    // SAFETY: the closure runs between fork and exec and only makes system calls
    // (close_range, fcntl), which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let marked = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if marked != 0 {
                for &fd in &inherited {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    command.spawn().map(|c| Orphan(Some(c)))
}

/// Whether `close_range(2)` with `CLOSE_RANGE_CLOEXEC` works here (Linux 5.11+).
fn close_range_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        let top = libc::c_uint::MAX;
        // SAFETY: marks nothing (no descriptor has the largest number).
        unsafe { libc::syscall(libc::SYS_close_range, top, top, libc::CLOSE_RANGE_CLOEXEC) == 0 }
    })
}

/// Descriptors above 2 that would survive exec: a scan of `/proc/self/fd`, in time
/// proportional to the descriptors open.
fn descriptors_without_cloexec() -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| fd > 2)
        // SAFETY: F_GETFD takes no pointer; a closed descriptor just fails.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC == 0)
        .collect()
}

/// A spawned child not yet watched by a reactor: reaped by a thread if dropped.
pub(crate) struct Orphan(Option<std::process::Child>);

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            reap_in_background(move || {
                let _ = child.wait();
            });
        }
    }
}

fn reap_in_background(wait: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("reap_child".into())
        .spawn(wait);
    if let Err(e) = spawned {
        warn!("cannot start a thread to reap a child: {e}");
    }
}

/// The reactor's side of a finished spawn: pipes on the reactor, the exit watched.
fn started(reactor: &mut Reactor, key: u64, result: io::Result<Orphan>) {
    let Some(child) = lookup(key) else {
        return; // cannot happen while the Child lives; the Orphan reaps
    };
    let mut orphan = match result {
        Ok(orphan) => orphan,
        Err(e) => return child.fail(reactor, e),
    };
    let Some(mut process) = orphan.0.take() else {
        return;
    };
    let pid = process.id();
    let pipes = [
        process.stdin.take().map(OwnedFd::from),
        process.stdout.take().map(OwnedFd::from),
        process.stderr.take().map(OwnedFd::from),
    ];
    drop(process); // a std Child does nothing on drop; we reap it ourselves
    child.state.borrow_mut().pid = pid;
    if let Err(e) = watch_exit(reactor, &child, pid) {
        // Nothing will learn of the exit: kill it rather than leave it unwatched.
        warn!("cannot watch child {pid}: {e}; killing it");
        // SAFETY: the child is ours and not reaped, so the number is still its own.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        reap_in_background(move || wait_for(pid).map(drop).unwrap_or(()));
        return child.fail(reactor, e);
    }
    let [stdin, stdout, stderr] = pipes;
    for (fd, input, output) in [
        (ChildFd::Stdin, None, stdin),
        (ChildFd::Stdout, stdout, None),
        (ChildFd::Stderr, stderr, None),
    ] {
        if let Err(e) = start_pipe(reactor, &child, fd, input, output) {
            warn!("child {pid}: cannot watch its {fd}: {e}");
        }
    }
    child.deliver(Base::Reactor(reactor), |h, p, _| h.connection_made(p));
}

fn start_pipe(
    reactor: &mut Reactor,
    child: &Rc<Child>,
    fd: ChildFd,
    input: Option<OwnedFd>,
    output: Option<OwnedFd>,
) -> Result<(), crate::TransportError> {
    if input.is_none() && output.is_none() {
        return Ok(());
    }
    let stream =
        PipeStream::from_private_pipes(input, output).map_err(crate::TransportError::Pipe)?;
    let end = PipeEnd {
        child: child.clone(),
        fd,
    };
    let id = Connection::start(reactor, Box::new(stream), Address::Pipe, end)?;
    child.state.borrow_mut().pipes[fd as usize] = Some(id);
    Ok(())
}

/// Learns of the exit with a pidfd on the reactor, or a thread waiting for this child.
fn watch_exit(reactor: &mut Reactor, child: &Rc<Child>, pid: u32) -> io::Result<()> {
    let use_thread = child.state.borrow().options.wait_on_thread;
    if !use_thread {
        // SAFETY: a plain system call; the result is checked.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if raw >= 0 {
            // SAFETY: pidfd_open just returned this descriptor; nothing else owns it.
            let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
            let watch = ExitWatch {
                raw: pidfd.as_raw_fd(),
                child: child.clone(),
                pid,
            };
            child.state.borrow_mut().pidfd = Some(pidfd);
            let id = reactor.insert(Box::new(watch)).map_err(io::Error::other)?;
            return reactor.add_reader(id).map_err(io::Error::other);
        }
        debug!(
            "pidfd_open: {}; waiting on a thread",
            io::Error::last_os_error()
        );
    }
    let key = child.state.borrow().key;
    let handle = reactor.handle();
    std::thread::Builder::new()
        .name("wait_child".into())
        .spawn(move || {
            let status = wait_for(pid);
            let _ = handle.call_from_thread(move |reactor| {
                if let Some(child) = lookup(key) {
                    child.exited(reactor, status);
                }
            });
        })
        .map(drop)
}

/// Waits for child `pid` (and reaps it).
fn wait_for(pid: u32) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

// ===== ordering events =====

impl Child {
    /// Runs `job` with the handler now, or after the callback running now returns;
    /// then whatever was queued meanwhile, and `process_ended` once it is due.
    fn deliver(
        &self,
        base: Base<'_>,
        job: impl FnOnce(&mut dyn ProcessHandler, &mut ProcessTransport<'_>, &Child) + 'static,
    ) {
        self.queue.borrow_mut().push_back(Box::new(job));
        self.drain(base);
    }

    /// Delivers `data` from pipe `fd`: straight away (no copy) unless a callback is
    /// running.
    fn deliver_data(&self, base: Base<'_>, fd: ChildFd, data: &[u8]) {
        let idle = self.queue.borrow().is_empty() && self.handler.borrow().is_some();
        if !idle {
            let data = data.to_vec();
            return self.deliver(base, move |h, p, _| h.child_data_received(p, fd, &data));
        }
        let Some(mut handler) = self.handler.borrow_mut().take() else {
            return;
        };
        let mut transport = ProcessTransport { base, shared: self };
        handler.child_data_received(&mut transport, fd, data);
        *self.handler.borrow_mut() = Some(handler);
        self.drain(transport.base);
    }

    /// Runs the queued jobs, unless a callback is running (it drains when it returns).
    fn drain(&self, base: Base<'_>) {
        let Some(mut handler) = self.handler.borrow_mut().take() else {
            return;
        };
        let mut transport = ProcessTransport { base, shared: self };
        loop {
            let job = self.queue.borrow_mut().pop_front();
            let Some(job) = job else {
                break;
            };
            job(handler.as_mut(), &mut transport, self);
            if self.end_is_due() {
                self.state.borrow_mut().ended = true;
                let status = self.state.borrow_mut().status.take();
                if let Some(status) = status {
                    handler.process_ended(&mut transport, &status);
                    self.state.borrow_mut().status = Some(status);
                }
                forget(self.state.borrow().key);
            }
        }
        *self.handler.borrow_mut() = Some(handler);
    }

    fn end_is_due(&self) -> bool {
        let state = self.state.borrow();
        !state.ended && state.status.is_some() && state.pipes.iter().all(Option::is_none)
    }

    /// The child could not be started (or watched): only `process_ended`.
    fn fail(&self, reactor: &mut Reactor, error: io::Error) {
        self.state.borrow_mut().status = Some(ProcessStatus::NotStarted(error));
        self.deliver(Base::Reactor(reactor), |_, _, _| {});
    }

    /// The child is reaped: `process_exited` now, `process_ended` once the pipes close
    /// (or the grace period runs out).
    fn exited(self: &Rc<Self>, reactor: &mut Reactor, status: io::Result<libc::c_int>) {
        let status = match status {
            Ok(raw) => ProcessStatus::from_wait(raw),
            Err(e) => ProcessStatus::NotStarted(io::Error::new(
                e.kind(),
                format!("its exit status was taken by other code: {e}"),
            )),
        };
        debug!("child {} exited: {status}", self.pid());
        self.state.borrow_mut().status = Some(status);
        self.arm_grace(reactor);
        self.deliver(Base::Reactor(reactor), |h, p, child| {
            let status = child.state.borrow_mut().status.take();
            if let Some(status) = status {
                h.process_exited(p, &status);
                child.state.borrow_mut().status = Some(status);
            }
        });
    }

    /// (Re)starts the grace period of silent pipes after the exit.
    fn arm_grace(self: &Rc<Self>, reactor: &mut Reactor) {
        let mut state = self.state.borrow_mut();
        if state.status.is_none() || state.pipes.iter().all(Option::is_none) {
            return;
        }
        if let Some(timer) = state.grace_timer.take() {
            let _ = timer.cancel(reactor);
        }
        let child = Rc::downgrade(self);
        let grace = state.options.pipe_grace;
        state.grace_timer = Some(reactor.call_later(grace, move |reactor| {
            if let Some(child) = child.upgrade() {
                child.grace_expired(reactor, grace);
            }
        }));
    }

    fn grace_expired(&self, reactor: &mut Reactor, grace: Duration) {
        let pipes = {
            let mut state = self.state.borrow_mut();
            state.grace_timer = None;
            state.pipes
        };
        for id in pipes.into_iter().flatten() {
            debug!(
                "child {}: pipe still open {grace:?} after the exit; closing it",
                self.pid()
            );
            Connection::<PipeEnd>::with_handler(reactor, id, |_, t| {
                t.abort_timed_out();
            });
        }
    }
}

// ===== the pipes =====

/// The handler of one pipe's connection: forwards its events to the [`Child`].
pub(crate) struct PipeEnd {
    child: Rc<Child>,
    fd: ChildFd,
}

impl Handler for PipeEnd {
    fn data_received(&mut self, transport: &mut Transport<'_>, data: &[u8]) {
        self.child.arm_grace(transport.reactor());
        let base = Base::Pipe(self.fd, transport.reborrow());
        self.child.deliver_data(base, self.fd, data);
    }

    fn connection_lost(&mut self, transport: &mut Transport<'_>, reason: &DisconnectReason) {
        let fd = self.fd;
        let reason = copy_reason(reason);
        let base = Base::Pipe(fd, transport.reborrow());
        self.child.deliver(base, move |h, p, child| {
            child.state.borrow_mut().pipes[fd as usize] = None;
            h.child_connection_lost(p, fd, &reason);
        });
    }
}

/// A copy of `reason` that can wait in the queue (`io::Error` is not `Clone`).
fn copy_reason(reason: &DisconnectReason) -> DisconnectReason {
    match reason {
        DisconnectReason::Done => DisconnectReason::Done,
        DisconnectReason::Lost(e) => {
            DisconnectReason::Lost(io::Error::new(e.kind(), e.to_string()))
        }
        DisconnectReason::Io(e) => DisconnectReason::Io(io::Error::new(e.kind(), e.to_string())),
        DisconnectReason::Aborted => DisconnectReason::Aborted,
        DisconnectReason::TimedOut => DisconnectReason::TimedOut,
        DisconnectReason::Refused => DisconnectReason::Refused,
        DisconnectReason::BufferOverflow { limit } => {
            DisconnectReason::BufferOverflow { limit: *limit }
        }
        DisconnectReason::Panicked(msg) => DisconnectReason::Panicked(msg.clone()),
        _ => DisconnectReason::Shutdown,
    }
}

// ===== the exit =====

/// The child's pidfd on the reactor: readable once the child has exited.
struct ExitWatch {
    raw: RawFd,
    child: Rc<Child>,
    pid: u32,
}

impl Descriptor for ExitWatch {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        self
    }

    fn do_read(&mut self, reactor: &mut Reactor, id: DescriptorId) -> io::Result<IoStatus> {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer; the child is ours.
        let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
        let outcome = match r {
            0 => return Ok(IoStatus::WouldBlock),
            r if r > 0 => Ok(status),
            _ => Err(io::Error::last_os_error()),
        };
        self.pid = 0; // reaped (or taken by other code): never again ours
                      // We are being dispatched: out of the reactor now, dropped when this returns.
        let removed = reactor.remove_descriptor(id);
        debug_assert!(removed.is_ok(), "child watcher {id}: {removed:?}");
        self.child.exited(reactor, outcome);
        Ok(IoStatus::WouldBlock)
    }

    fn connection_lost(&mut self, _: &mut Reactor, _: DescriptorId, reason: LostReason) {
        debug!("child {}: no longer watched ({reason})", self.pid);
    }

    fn log_prefix(&self) -> &str {
        "child exit"
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        // The reactor shut down (or was dropped) before the child exited: a thread
        // waits for it, so it never stays a zombie.
        let pid = self.pid;
        if pid != 0 {
            reap_in_background(move || wait_for(pid).map(drop).unwrap_or(()));
            forget(self.child.state.borrow().key);
        }
    }
}

impl mio::event::Source for ExitWatch {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        _: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.raw).register(registry, token, mio::Interest::READABLE)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        _: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.raw).reregister(registry, token, mio::Interest::READABLE)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.raw).deregister(registry)
    }
}
