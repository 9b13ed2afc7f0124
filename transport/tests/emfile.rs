//! A listener survives running out of file descriptors (`EMFILE` on accept): it backs
//! off instead of spinning, and serves the waiting clients once descriptors free up.
//!
//! The starved server runs in a child process (this test binary again, selecting the
//! child mode with an environment variable), since it lowers `RLIMIT_NOFILE` and
//! exhausts its descriptors; the clients connect from the parent.

mod util;

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::Reactor;
use transport::{
    bind_tcp, Acceptor, Address, Connection, ListenOptions, Listener, Stream, ACCEPT_BACKOFF,
};
use util::{Ended, Probe, LIMIT};

const CHILD_ENV: &str = "TRANSPORT_TEST_EMFILE_CHILD";
const CLIENTS: usize = 8;
/// Back-off rounds the starved listener must sit through before descriptors free up.
const STARVED_ROUNDS: usize = 3;

#[test]
fn listener_survives_running_out_of_descriptors() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "emfile_child_mode",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Whatever goes wrong, the child does not outlive the limit.
    let (done, done_rx) = std::sync::mpsc::channel::<()>();
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(2 * LIMIT).is_err() {
            // SAFETY: signals our own child, which is not yet reaped (we wait for it
            // only after this thread is told to stand down).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut output = String::new();
    let port: u16 = loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the child ended before listening: {output}");
        output.push_str(&line);
        // libtest prints `test emfile_child_mode ... ` with no newline before it.
        if let Some((_, port)) = line.trim().split_once("PORT ") {
            break port.parse().unwrap();
        }
        assert!(output.len() < 64 * 1024, "no port from the child: {output}");
    };

    // More clients than the child has descriptors for (it has none left): the kernel
    // completes their handshakes and queues them; accept fails with EMFILE.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        util::bound_peer(&client);
        client.write_all(format!("client {i}").as_bytes()).unwrap();
        clients.push(client);
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();

    for (i, client) in clients.iter_mut().enumerate() {
        let expected = format!("client {i}");
        let mut echo = vec![0u8; expected.len()];
        client
            .read_exact(&mut echo)
            .expect("served once descriptors freed up");
        assert_eq!(echo, expected.as_bytes());
    }
    drop(clients);

    stdout.read_to_string(&mut output).unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {status}\n{output}");
    let summary = output.lines().find(|l| l.contains("CHILD OK"));
    let summary = summary.unwrap_or_else(|| panic!("no summary from the child: {output}"));
    eprintln!("{summary}");
}

/// The child: runs only when this binary is started by the test above.
#[test]
fn emfile_child_mode() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    starved_server();
}

/// A TCP listener that counts the `EMFILE` failures of its accepts.
#[derive(Debug)]
struct CountingAcceptor {
    inner: mio::net::TcpListener,
    exhausted: Rc<Cell<usize>>,
}

impl mio::event::Source for CountingAcceptor {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

impl Acceptor for CountingAcceptor {
    fn accept_stream(&self) -> io::Result<(Box<dyn Stream>, Address)> {
        let result = self.inner.accept_stream();
        if let Err(e) = &result {
            if e.raw_os_error() == Some(libc::EMFILE) {
                self.exhausted.set(self.exhausted.get() + 1);
            }
        }
        result
    }

    fn local_address(&self) -> io::Result<Address> {
        self.inner.local_address()
    }
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn starved_server() {
    // Room for what the process has open now, the reactor, the listener and a little
    // slack; the slack is then filled with placeholder files.
    let highest_fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = (highest_fd + 1 + 32).min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }

    let mut reactor = Reactor::new().unwrap();
    let options = ListenOptions {
        backlog: 64,
        ..ListenOptions::default()
    };
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &options).unwrap();
    let port = listener.local_addr().unwrap().port();
    let exhausted = Rc::new(Cell::new(0));
    let acceptor = CountingAcceptor {
        inner: listener,
        exhausted: exhausted.clone(),
    };
    let records = Rc::new(std::cell::RefCell::new(Vec::new()));
    let keep = records.clone();
    let (listener_id, _) = Listener::start(
        &mut reactor,
        acceptor,
        Box::new(move |reactor: &mut Reactor, stream, peer| {
            let (probe, record) = Probe::new();
            let probe = probe.on_data(|t, data| t.write(data));
            keep.borrow_mut().push(record);
            Connection::start(reactor, stream, peer, probe).unwrap();
        }),
    )
    .unwrap();

    let mut placeholders = Vec::new();
    for _ in 0..limit.rlim_cur {
        match std::fs::File::open("/dev/null") {
            Ok(file) => placeholders.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("opening a placeholder: {e}"),
        }
    }
    assert!(
        std::fs::File::open("/dev/null").is_err(),
        "descriptors left"
    );

    println!("PORT {port}");
    io::stdout().flush().unwrap();
    let mut go = String::new();
    io::stdin().read_line(&mut go).unwrap();
    assert_eq!(go.trim(), "go", "the parent connected its clients");

    // Starved: every accept fails. The listener must back off, not spin.
    let (wall_start, cpu_start) = (Instant::now(), cpu_time());
    util::turn_until(&mut reactor, |_| exhausted.get() >= STARVED_ROUNDS);
    let (wall, cpu) = (wall_start.elapsed(), cpu_time() - cpu_start);
    assert!(
        records.borrow().is_empty(),
        "accepted without a descriptor?"
    );
    assert!(reactor.contains(listener_id), "the listener died");
    assert!(
        wall >= ACCEPT_BACKOFF * (STARVED_ROUNDS as u32 - 1),
        "accepts were retried without backing off: {STARVED_ROUNDS} tries in {wall:?}"
    );
    assert!(
        cpu < wall / 4,
        "the starved process spun: {cpu:?} of CPU in {wall:?}"
    );

    // Descriptors free up: the queued clients are served.
    drop(placeholders);
    util::turn_until(&mut reactor, |_| {
        let records = records.borrow();
        records.len() == CLIENTS && records.iter().all(|r| r.borrow().is_lost())
    });
    for record in records.borrow().iter() {
        let record = record.borrow();
        assert_eq!(record.only_reason(), Ended::Done);
        assert!(record.received.starts_with(b"client "));
    }
    assert!(Listener::stop(&mut reactor, listener_id));
    println!(
        "CHILD OK: {} failed accepts, {cpu:?} of CPU in {wall:?} starved",
        exhausted.get()
    );
}
