//! The client's library face: `poetry_client::start` on a reactor in this process,
//! with `poetry_server::serve` on the same reactor or on a thread of its own. Here the
//! tasks can be inspected: the bytes of different downloads alternate in time (one
//! thread, interleaved), and the `--timeout` timer is cancelled once a poem is whole.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use poetry_client::{download_all, parse_address, start, ClientOptions, Outcome, Task};
use poetry_server::{serve, Poem};
use reactor::Reactor;
use util::{assert_same_bytes, fast, poem_bytes, poems, slow, ServerThread};

/// Runs `reactor` until the client stops it, with a watchdog so a bug cannot hang the
/// test.
fn run_bounded(reactor: &mut Reactor) {
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    let watchdog = reactor.call_later(util::PATIENCE, move |r| {
        flag.set(true);
        r.stop();
    });
    reactor.run().expect("the reactor runs");
    assert!(
        !fired.get(),
        "the client did not finish within {:?}",
        util::PATIENCE
    );
    let _ = watchdog.cancel(reactor);
}

/// The options of `--timeline`: every read recorded (coalesced).
fn timeline() -> ClientOptions {
    ClientOptions {
        record_arrivals: true,
        ..ClientOptions::default()
    }
}

#[test]
fn client_and_servers_share_one_reactor() {
    let mut reactor = Reactor::new().unwrap();
    let poems = poems();
    let mut addresses = Vec::new();
    let mut factories = Vec::new();
    for (path, _) in &poems {
        let (port, factory) = serve(&mut reactor, Poem::open(path).unwrap(), fast()).unwrap();
        addresses.push(parse_address(&port.get_host().port().unwrap().to_string()).unwrap());
        factories.push(factory);
    }
    let client = start(&mut reactor, &addresses, timeline());
    run_bounded(&mut reactor);
    let tasks = client.borrow_mut().take_tasks();
    assert_eq!(tasks.len(), poems.len());
    for (task, (path, poem)) in tasks.iter().zip(&poems) {
        assert_eq!(task.outcome, Outcome::Whole, "{}", path.display());
        assert_same_bytes(&task.poem, poem, &path.display().to_string());
        assert_eq!(
            task.arrivals.records().iter().map(|a| a.1).sum::<usize>(),
            poem.len()
        );
        assert!(task.finished.is_some());
    }
    assert_eq!(client.borrow().remaining(), 0);
    for factory in &factories {
        assert_eq!(factory.borrow().stats().completed, 1);
    }
}

/// The task numbers in the order their bytes arrived, as runs: `[1, 2, 3, 1, ...]`.
fn arrival_runs(tasks: &[Task]) -> Vec<usize> {
    let mut all: Vec<(Duration, usize)> = tasks
        .iter()
        .flat_map(|t| {
            t.arrivals
                .records()
                .iter()
                .map(move |(at, _)| (*at, t.number))
        })
        .collect();
    all.sort(); // by time; at equal times, by task number
    let mut runs: Vec<usize> = Vec::new();
    for (_, number) in all {
        if runs.last() != Some(&number) {
            runs.push(number);
        }
    }
    runs
}

#[test]
fn downloads_interleave_on_one_thread() {
    // Three slow servers on the client's own reactor: each sends a piece every 20 ms,
    // so a single thread must take turns among the downloads.
    let mut reactor = Reactor::new().unwrap();
    let poems: Vec<Vec<u8>> = ["ete.txt", "crlf.txt", "haiku.txt"]
        .iter()
        .map(|name| poem_bytes(name))
        .collect();
    let mut addresses = Vec::new();
    for poem in &poems {
        let pace = slow(poem.len().div_ceil(8), Duration::from_millis(20));
        let (port, _) = serve(&mut reactor, Poem::from_bytes("poem", poem), pace).unwrap();
        addresses.push(parse_address(&port.get_host().port().unwrap().to_string()).unwrap());
    }
    let client = start(&mut reactor, &addresses, timeline());
    run_bounded(&mut reactor);
    let tasks = client.borrow_mut().take_tasks();
    for (task, poem) in tasks.iter().zip(&poems) {
        assert!(task.is_whole(), "task {}: {:?}", task.number, task.outcome);
        assert_same_bytes(&task.poem, poem, "interleaved poem");
        assert!(
            task.arrivals.records().len() >= 4,
            "task {} got its poem in {} pieces",
            task.number,
            task.arrivals.records().len()
        );
    }
    // Each download's bytes span the others': every task's first piece comes before
    // every other task's last.
    for a in &tasks {
        for b in &tasks {
            let first_a = a.arrivals.records().first().unwrap().0;
            let last_b = b.arrivals.records().last().unwrap().0;
            assert!(
                first_a <= last_b,
                "task {} began after task {} ended",
                a.number,
                b.number
            );
        }
    }
    // And they take turns: far more runs than the three of one-after-another.
    let runs = arrival_runs(&tasks);
    assert!(runs.len() >= 12, "bytes did not alternate: runs {runs:?}");
    let timeline = poetry_client::report::timeline(&tasks, Duration::from_millis(200), 40);
    assert_eq!(timeline.lines().count(), 4, "{timeline}");
}

#[test]
fn a_poem_finished_in_time_cancels_its_timeout() {
    let poem = poem_bytes("lighthouse.txt");
    let server = ServerThread::start(&poem, slow(500, Duration::from_millis(5)));
    let mut reactor = Reactor::new().unwrap();
    let options = ClientOptions {
        timeout: Some(Duration::from_secs(30)),
        ..ClientOptions::default()
    };
    let address = parse_address(&server.address()).unwrap();
    let client = start(&mut reactor, &[address.clone(), address], options);
    run_bounded(&mut reactor);
    let tasks = client.borrow_mut().take_tasks();
    for task in &tasks {
        assert_eq!(task.outcome, Outcome::Whole);
        assert_same_bytes(&task.poem, &poem, "the poem");
    }
    // The 30 s timers were cancelled when the poems ended: none is left to fire (nor
    // the connect timeouts, nor the watchdog, cancelled by run_bounded).
    assert_eq!(reactor.pending_calls(), 0);
}

#[test]
fn a_poem_too_slow_times_out_and_leaves_no_timer() {
    let poem = poem_bytes("lighthouse.txt");
    let server = ServerThread::start(&poem, slow(10, Duration::from_millis(30)));
    let mut reactor = Reactor::new().unwrap();
    let options = ClientOptions {
        timeout: Some(Duration::from_millis(150)),
        ..ClientOptions::default()
    };
    let client = start(
        &mut reactor,
        &[parse_address(&server.address()).unwrap()],
        options,
    );
    run_bounded(&mut reactor);
    let task = client.borrow_mut().take_tasks().remove(0);
    assert_eq!(task.outcome, Outcome::TimedOut);
    assert!(
        !task.poem.is_empty() && task.poem.len() < poem.len(),
        "{} bytes",
        task.poem.len()
    );
    assert_same_bytes(&task.poem, &poem[..task.poem.len()], "what arrived");
    let finished = task.finished.expect("it ended");
    assert!(
        finished >= Duration::from_millis(150),
        "ended after {finished:?}"
    );
    assert_eq!(reactor.pending_calls(), 0);
    let header = poetry_client::report::header(&task);
    assert!(header.starts_with("Task 1: TIMED OUT after "), "{header}");
}

#[test]
fn get_poetry_returns_the_tasks_in_address_order() {
    let poems = [poem_bytes("haiku.txt"), poem_bytes("ete.txt")];
    let servers = [
        ServerThread::start(&poems[0], slow(100, Duration::from_millis(10))),
        ServerThread::start(&poems[1], fast()),
    ];
    let addresses: Vec<_> = servers
        .iter()
        .map(|s| parse_address(&s.address()).unwrap())
        .collect();
    let tasks = download_all(&addresses, ClientOptions::default()).unwrap();
    assert_eq!(tasks.len(), 2);
    for (i, (task, poem)) in tasks.iter().zip(&poems).enumerate() {
        assert_eq!(task.number, i + 1);
        assert_eq!(task.address, addresses[i]);
        assert!(task.is_whole());
        assert_same_bytes(&task.poem, poem, "poem");
    }
    // The slow one finished last although it is first.
    assert!(tasks[0].finished > tasks[1].finished);
}

#[test]
fn no_addresses_stop_at_once() {
    let tasks = download_all(&[], ClientOptions::default()).unwrap();
    assert!(tasks.is_empty());
}

#[test]
fn refused_connection_is_a_failed_task() {
    let dead = util::dead_port();
    let tasks = download_all(
        &[parse_address(&dead.to_string()).unwrap()],
        ClientOptions::default(),
    )
    .unwrap();
    assert!(matches!(&tasks[0].outcome, Outcome::Failed(why) if why.contains("refused")));
    assert!(tasks[0].poem.is_empty());
}

/// A server that sends `len` bytes one write (one packet, with Nagle off) at a time.
fn one_byte_per_packet(len: usize) -> util::RawServer {
    util::RawServer::start(1, move |mut stream| {
        use std::io::Write;
        stream.set_nodelay(true).unwrap();
        for i in 0..len {
            if stream.write_all(&[b'a' + (i % 26) as u8]).is_err() {
                return;
            }
        }
    })
}

#[test]
fn one_byte_per_packet_keeps_no_per_read_records_without_the_timeline() {
    const LEN: usize = 60_000;
    let limit = LEN as u64;
    for record_arrivals in [false, true] {
        let server = one_byte_per_packet(LEN);
        let options = ClientOptions {
            max_poem_bytes: limit,
            record_arrivals,
            ..ClientOptions::default()
        };
        let tasks = download_all(&[parse_address(&server.address()).unwrap()], options).unwrap();
        let task = &tasks[0];
        assert!(task.is_whole(), "{:?}", task.outcome);
        assert_eq!(task.poem.len(), LEN);
        // The poem is the only thing that grows with the bytes: within twice the limit.
        assert!(
            task.poem.capacity() as u64 <= 2 * limit,
            "{}",
            task.poem.capacity()
        );
        let records = task.arrivals.records();
        if record_arrivals {
            assert!(!records.is_empty() && records.len() <= poetry_client::Arrivals::MAX_RECORDS);
            assert_eq!(records.iter().map(|r| r.1).sum::<usize>(), LEN);
        } else {
            assert!(records.is_empty(), "{} records kept", records.len());
        }
    }
}
