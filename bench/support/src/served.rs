//! Runs a server binary as a bounded subprocess on loopback: waits for its start line,
//! reads the port, sends SIGTERM at the end, and kills it if anything hangs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any one step may take.
pub const STEP: Duration = Duration::from_secs(10);

/// A running server; killed on drop if still running.
#[derive(Debug)]
pub struct Served {
    child: Child,
    /// The port it said it listens on.
    pub port: u16,
    /// Its start line, `Serving ... on port N.`
    pub start_line: String,
}

impl Served {
    /// Starts `exe` with `args` and waits for `Serving ... on port N.`.
    ///
    /// # Panics
    ///
    /// If the server cannot start or does not say its port within [`STEP`]: these
    /// are test helpers, and a panic is the test failing.
    #[track_caller]
    pub fn start(exe: &str, args: &[&str]) -> Served {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the server");
        // The server prints its line at once; a hung server fails the read, not the
        // test run, because the child is killed when `Served` drops.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let start_line = match rx.recv_timeout(STEP) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no start line from {exe} {args:?}");
            }
        };
        let port = start_line
            .trim_end()
            .rsplit_once("on port ")
            .and_then(|(_, rest)| rest.strip_suffix('.'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad start line {start_line:?}"));
        Served {
            child,
            port,
            start_line,
        }
    }

    /// A client connection with timeouts.
    ///
    /// # Panics
    ///
    /// If the server does not accept.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        s
    }

    /// Downloads one poem: connect, read until the server closes.
    ///
    /// # Panics
    ///
    /// If the download fails or takes longer than [`STEP`].
    pub fn get_poem(&self) -> Vec<u8> {
        let mut poem = Vec::new();
        self.connect()
            .read_to_end(&mut poem)
            .expect("read the poem");
        poem
    }

    /// Sends `message` and reads as many bytes back.
    ///
    /// # Panics
    ///
    /// If the exchange fails or takes longer than [`STEP`].
    pub fn echo(&self, message: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(message).unwrap();
        let mut reply = vec![0u8; message.len()];
        s.read_exact(&mut reply).unwrap();
        reply
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    ///
    /// # Panics
    ///
    /// If the server does not exit within [`STEP`] (it is then killed).
    #[track_caller]
    pub fn terminate(mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: plain syscall on our own child's pid, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A poem file in the temp dir, removed on drop.
#[derive(Debug)]
pub struct PoemFile {
    /// Where it is.
    pub path: std::path::PathBuf,
    /// What it holds.
    pub bytes: Vec<u8>,
}

impl PoemFile {
    /// Writes `len` patterned bytes to a file in the temp directory named after `tag`
    /// and this process.
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn new(tag: &str, len: usize) -> PoemFile {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let path = std::env::temp_dir().join(format!("{tag}-{}.poem", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        PoemFile { path, bytes }
    }

    /// The path, as a command-line argument.
    ///
    /// # Panics
    ///
    /// If the temp directory's path is not UTF-8.
    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for PoemFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
