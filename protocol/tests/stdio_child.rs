//! Standard I/O for real: this test binary runs itself as a child whose descriptors 0
//! and 1 are pipes or files, and the child runs `examples/stdio_lines.rs` (compiled
//! in here, unchanged) on them. No test harness (`harness = false` in Cargo.toml), so
//! the child's standard output is the protocol's alone.
//!
//! Covered: `printf 'a\nb\n' | stdio_lines`; stdin ending before any output is
//! written (twisted #7546); stdin and stdout as regular files (twisted #2259); the
//! pipes' descriptions shared with the parent keep their blocking flag (twisted
//! #3442); a megabyte through both pipes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(unreachable_pub)] // the example's items are public to its own binary only
#[path = "../examples/stdio_lines.rs"]
mod stdio_lines;

/// The environment variable that tells this binary it is the child.
const ROLE: &str = "STDIO_CHILD_ROLE";
/// Longest any child may take.
const LIMIT: Duration = Duration::from_secs(30);

fn main() {
    if std::env::var_os(ROLE).is_some() {
        if let Err(e) = stdio_lines::main() {
            eprintln!("stdio_child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let tests: [(&str, fn()); 5] = [
        ("two_lines_through_pipes", two_lines_through_pipes),
        ("input_ends_before_output", input_ends_before_output),
        ("regular_files_in_and_out", regular_files_in_and_out),
        (
            "shared_pipes_keep_their_flags",
            shared_pipes_keep_their_flags,
        ),
        ("a_megabyte_through_pipes", a_megabyte_through_pipes),
    ];
    println!("running {} tests", tests.len());
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
}

/// The child, not yet started: this binary in the child role.
fn child() -> Command {
    let mut command = Command::new(std::env::current_exe().expect("this test's path"));
    command.env(ROLE, "lines").stderr(Stdio::inherit());
    command
}

/// Kills the child if the test fails before it is waited for.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Waits for the child, at most [`LIMIT`] (then fails the test).
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the child") {
                return status;
            }
            assert!(start.elapsed() < LIMIT, "the child ran for {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs the child with `input` on a pipe, reading its output concurrently.
fn run_with_input(input: &[u8]) -> (ExitStatus, Vec<u8>) {
    let mut guard = Guard(
        child()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child"),
    );
    let mut stdin = guard.0.stdin.take().unwrap();
    let mut stdout = guard.0.stdout.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    stdout
        .read_to_end(&mut out)
        .expect("read the child's output");
    writer.join().unwrap().expect("write the child's input");
    (guard.wait(), out)
}

fn numbered(lines: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        out += &format!("{}: {line}\n", n + 1);
    }
    out.into_bytes()
}

fn two_lines_through_pipes() {
    let (status, out) = run_with_input(b"a\nb\n");
    assert!(status.success(), "{status}");
    assert_eq!(String::from_utf8_lossy(&out), "1: a\n2: b\n");
}

fn input_ends_before_output() {
    // Everything, end of file included, is in the pipe before the child starts.
    let (read, write) = pipe();
    let mut writer = File::from(write);
    writer.write_all(b"foo\n").unwrap();
    drop(writer);
    let mut guard = Guard(
        child()
            .stdin(Stdio::from(read))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = String::new();
    guard
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(guard.wait().success());
    assert_eq!(out, "1: foo\n");
}

fn regular_files_in_and_out() {
    let dir = std::env::temp_dir().join(format!("stdio-child-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.txt"), dir.join("out.txt"));
    let lines: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut guard = Guard(
        child()
            .stdin(File::open(&input).unwrap())
            .stdout(File::create(&output).unwrap())
            .spawn()
            .unwrap(),
    );
    assert!(guard.wait().success());
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out == numbered(&refs), "the numbered file differs");
}

fn shared_pipes_keep_their_flags() {
    let (in_read, in_write) = pipe();
    let (out_read, out_write) = pipe();
    // The parent keeps a copy of each end the child gets: the same descriptions.
    let (in_shared, out_shared) = (in_read.try_clone().unwrap(), out_write.try_clone().unwrap());
    let mut guard = Guard(
        child()
            .stdin(Stdio::from(in_read))
            .stdout(Stdio::from(out_write))
            .spawn()
            .unwrap(),
    );
    let mut writer = File::from(in_write);
    let mut reader = File::from(out_read);
    writer.write_all(b"first\n").unwrap();
    let mut line = [0u8; 9];
    reader.read_exact(&mut line).unwrap(); // the child is reading and writing now
    assert_eq!(&line, b"1: first\n");
    assert!(
        !nonblocking(&in_shared),
        "the child made its stdin non-blocking"
    );
    assert!(
        !nonblocking(&out_shared),
        "the child made its stdout non-blocking"
    );
    drop((writer, out_shared));
    assert!(guard.wait().success());
    assert!(!nonblocking(&in_shared));
}

fn a_megabyte_through_pipes() {
    let lines: Vec<String> = (0..100_000).map(|i| format!("{i:09}")).collect();
    let (status, out) = run_with_input((lines.join("\n") + "\n").as_bytes());
    assert!(status.success());
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert!(out == numbered(&refs), "the numbered output differs");
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these descriptors; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: `fd` is open; F_GETFL takes no pointer.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}
