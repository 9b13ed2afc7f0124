//! Standard I/O over pipes, regular files, sockets and terminals: the ordinary
//! connection logic over [`PipeStream`], and the classic failures it must avoid
//! (twisted #3442: `O_NONBLOCK` on a shared description; #2259: a regular file epoll
//! refuses; #7546: output lost when stdin ends first).

mod util;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use reactor::Reactor;
use transport::{start_stdio, Address, EofAction, PipeStream};
use util::{turn_until, Ended, Probe};

/// A pipe: (read end, write end), both blocking and close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just returned these descriptors; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: `fd` is open; F_GETFL takes no pointer.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

/// Makes the test's own end non-blocking (its own description: pipe2 gives each end
/// one), so the test can read it between reactor turns.
fn set_nonblocking(fd: BorrowedFd<'_>) {
    // SAFETY: `fd` is open.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Reads what is there now; `true` once the writer has closed.
fn read_available(file: &mut File, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 65536];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) => panic!("reading the output pipe: {e}"),
        }
    }
}

/// A file under the temporary directory holding `content`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn with(tag: &str, content: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("stdio-{tag}-{}", std::process::id()));
        std::fs::write(&path, content).expect("write a temporary file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn echo() -> (Probe, std::rc::Rc<std::cell::RefCell<util::Record>>) {
    let (probe, record) = Probe::new();
    (probe.on_data(|t, data| t.write(data)), record)
}

#[test]
fn shared_pipes_keep_their_blocking_flag() {
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    // Copies sharing the descriptions the stream is given, as a shell's would.
    let shared_in = in_r.try_clone().unwrap();
    let shared_out = out_w.try_clone().unwrap();
    let stream = PipeStream::from_fds(Some(in_r), Some(out_w)).unwrap();
    assert!(is_nonblocking(stream.input_fd().unwrap()));
    assert!(is_nonblocking(stream.output_fd().unwrap()));
    assert!(!stream.input_always_ready() && !stream.output_always_ready());

    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = echo();
    start_stdio(&mut reactor, stream, probe).unwrap();
    let mut writer = File::from(in_w);
    writer.write_all(b"hello").unwrap();
    let mut reader = File::from(out_r);
    set_nonblocking(reader.as_fd());
    let mut echoed = Vec::new();
    turn_until(&mut reactor, |_| {
        read_available(&mut reader, &mut echoed);
        echoed == b"hello"
    });
    assert!(
        !is_nonblocking(shared_in.as_fd()),
        "stdin's description changed"
    );
    assert!(
        !is_nonblocking(shared_out.as_fd()),
        "stdout's description changed"
    );

    drop((writer, shared_out));
    turn_until(&mut reactor, |_| record.borrow().is_lost());
    let record = record.borrow();
    assert_eq!(record.only_reason(), Ended::Done);
    assert_eq!(record.read_lost, 1);
    assert_eq!(record.addresses_made, Some((Address::Pipe, Address::Pipe)));
    let mut rest = Vec::new();
    turn_until(&mut reactor, |_| read_available(&mut reader, &mut rest));
    assert!(rest.is_empty());
}

#[test]
fn regular_file_input_is_read_in_bounded_turns_without_polling() {
    let content: Vec<u8> = (0..(1 << 20) + 123).map(|i| (i % 251) as u8).collect();
    let file = TempFile::with("regular-in", &content);
    let input = File::open(&file.0).unwrap();
    let output = File::options().write(true).open("/dev/null").unwrap();
    let stream = PipeStream::from_fds(Some(input.into()), Some(output.into())).unwrap();
    assert!(
        stream.input_always_ready(),
        "a regular file is never polled"
    );
    assert!(stream.output_always_ready(), "epoll refuses /dev/null too");

    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = Probe::new();
    let probe = probe.on_eof(|_| EofAction::KeepWriting);
    let id = start_stdio(&mut reactor, stream, probe).unwrap();
    let turns = turn_until(&mut reactor, |_| record.borrow().read_lost == 1);
    assert_eq!(record.borrow().received, content);
    // 16 reads of 64 KiB per turn: the file takes a bounded number of turns, other
    // descriptors get theirs in between.
    assert!((2..=4).contains(&turns), "{turns} turns");
    // After end of file: not reading, no timer, nothing queued. The loop would sleep.
    assert!(!reactor.is_reading(id));
    assert_eq!(reactor.pending_calls(), 0);
    assert!(!reactor.has_pending_work());
    assert!(
        !record.borrow().is_lost(),
        "half-closed: still open for writing"
    );
}

#[test]
fn regular_file_output_takes_every_byte() {
    let file = TempFile::with("regular-out", b"");
    let (in_r, in_w) = pipe();
    let output = File::options().write(true).open(&file.0).unwrap();
    let stream = PipeStream::from_fds(Some(in_r), Some(output.into())).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let big: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
    let (probe, record) = Probe::new();
    let written = big.clone();
    let probe = probe.on_data(move |t, _| t.write(&written));
    start_stdio(&mut reactor, stream, probe).unwrap();
    let mut writer = File::from(in_w);
    writer.write_all(b"x").unwrap();
    drop(writer);
    turn_until(&mut reactor, |_| record.borrow().is_lost());
    assert_eq!(record.borrow().only_reason(), Ended::Done);
    assert_eq!(std::fs::read(&file.0).unwrap(), big);
}

#[test]
fn output_still_drains_after_input_ended_first() {
    // `echo foo | prog`: all of stdin, and its end, may arrive before any output is
    // written; the output must still go out in full before the connection ends.
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let mut writer = File::from(in_w);
    writer.write_all(b"foo\n").unwrap();
    drop(writer);
    let stream = PipeStream::from_fds(Some(in_r), Some(out_w)).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = Probe::new();
    let probe = probe.on_data(|t, data| {
        for _ in 0..(1 << 20) / data.len() {
            t.write(data);
        }
    });
    start_stdio(&mut reactor, stream, probe).unwrap();
    let mut reader = File::from(out_r);
    set_nonblocking(reader.as_fd());
    let mut out = Vec::new();
    turn_until(&mut reactor, |_| read_available(&mut reader, &mut out));
    assert_eq!(out.len(), (1 << 20) / 4 * 4);
    assert!(out.chunks(4).all(|c| c == b"foo\n"));
    assert_eq!(record.borrow().only_reason(), Ended::Done);
}

#[test]
fn output_buffered_when_the_reactor_stops_is_not_lost() {
    let (in_r, _in_w) = pipe();
    let (out_r, out_w) = pipe();
    let stream = PipeStream::from_fds(Some(in_r), Some(out_w)).unwrap();
    let big: Vec<u8> = (0..1_000_000).map(|i| (i % 249) as u8).collect();
    let expected = big.clone();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        File::from(out_r).read_to_end(&mut out).unwrap();
        out
    });
    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = Probe::new();
    let probe = probe.on_made(move |t| {
        t.write(&big);
        // Stops after the first turn, with most of it still buffered.
        t.reactor().call_soon(|r| r.stop());
    });
    start_stdio(&mut reactor, stream, probe).unwrap();
    util::run_with_watchdog(&mut reactor, Duration::from_secs(30));
    assert_eq!(record.borrow().only_reason(), Ended::Shutdown);
    assert!(
        reader.join().unwrap() == expected,
        "output lost at shutdown"
    );
}

#[test]
fn half_close_keeps_the_output_open() {
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let stream = PipeStream::from_fds(Some(in_r), Some(out_w)).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = Probe::new();
    let probe = probe.on_eof(|t| {
        t.write(b"bye");
        t.lose_connection();
        EofAction::KeepWriting
    });
    start_stdio(&mut reactor, stream, probe).unwrap();
    drop(in_w);
    let mut reader = File::from(out_r);
    set_nonblocking(reader.as_fd());
    let mut out = Vec::new();
    turn_until(&mut reactor, |_| read_available(&mut reader, &mut out));
    assert_eq!(out, b"bye");
    let record = record.borrow();
    assert_eq!(record.read_lost, 1);
    assert_eq!(record.only_reason(), Ended::Done);
}

#[test]
fn a_socket_as_stdio_keeps_its_blocking_flag() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let shared = ours.try_clone().unwrap();
    let input = OwnedFd::from(ours.try_clone().unwrap());
    let stream = PipeStream::from_fds(Some(input), Some(OwnedFd::from(ours))).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = echo();
    start_stdio(&mut reactor, stream, probe).unwrap();
    theirs.write_all(b"ping").unwrap();
    theirs.set_nonblocking(true).unwrap();
    let mut echoed = Vec::new();
    turn_until(&mut reactor, |_| {
        let mut buf = [0u8; 16];
        if let Ok(n) = theirs.read(&mut buf) {
            echoed.extend_from_slice(&buf[..n]);
        }
        echoed == b"ping"
    });
    assert!(
        !is_nonblocking(shared.as_fd()),
        "the socket's description changed"
    );
    theirs.shutdown(std::net::Shutdown::Write).unwrap();
    turn_until(&mut reactor, |_| record.borrow().is_lost());
    assert_eq!(record.borrow().only_reason(), Ended::Done);
}

#[test]
fn a_writer_notices_its_reader_going_away() {
    // A child that closes its stdin early: the writing end alone reports it.
    let (out_r, out_w) = pipe();
    let stream = PipeStream::from_fds(None, Some(out_w)).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = Probe::new();
    start_stdio(
        &mut reactor,
        stream,
        probe.on_eof(|_| EofAction::KeepWriting),
    )
    .unwrap();
    reactor.iterate(Some(Duration::ZERO)).unwrap(); // registered with the poller
    drop(out_r);
    turn_until(&mut reactor, |_| record.borrow().is_lost());
    assert_eq!(record.borrow().only_reason(), Ended::Lost);
}

#[test]
fn a_terminal_is_read_line_by_line_and_ctrl_d_ends_it() {
    // SAFETY: plain libc calls on a fresh pseudo-terminal; results checked.
    let (master, slave) = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let slave = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(slave >= 0, "open the terminal");
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    };
    let shared = slave.try_clone().unwrap();
    let stream = PipeStream::from_fds(Some(slave.try_clone().unwrap()), Some(slave)).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (probe, record) = Probe::new();
    start_stdio(&mut reactor, stream, probe).unwrap();
    let mut master = File::from(master);
    master.write_all(b"typed\n").unwrap();
    turn_until(&mut reactor, |_| record.borrow().received == b"typed\n");
    assert!(
        !is_nonblocking(shared.as_fd()),
        "the terminal's description changed"
    );
    master.write_all(&[4]).unwrap(); // Ctrl-D at the start of a line: end of file
    turn_until(&mut reactor, |_| record.borrow().is_lost());
    let record = record.borrow();
    assert_eq!(record.read_lost, 1);
    assert_eq!(record.only_reason(), Ended::Done);
}
