//! Child processes on the reactor: `cat`, exit codes, signals, a child closing its
//! stdout early, a program that does not exist, output after the exit, a grandchild
//! holding the pipes, descriptors that must not leak, and no zombies.

mod util;

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::Reactor;
use transport::{
    spawn_process, ChildFd, DisconnectReason, ProcessError, ProcessHandler, ProcessOptions,
    ProcessStatus, ProcessTransport,
};
use util::{ended, turn_until, Ended};

/// What a [`Script`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Made,
    Out(Vec<u8>),
    Err(Vec<u8>),
    Lost(ChildFd, Ended),
    Exited(Option<i32>, Option<i32>),
    Ended(Option<i32>, Option<i32>),
    NotStarted(std::io::ErrorKind),
}

type Hook = Box<dyn FnMut(&mut ProcessTransport<'_>, &Ev)>;

/// Records every callback (coalescing consecutive output) and runs `hook` after each.
struct Script {
    events: Rc<RefCell<Vec<Ev>>>,
    hook: Option<Hook>,
}

fn script(
    hook: impl FnMut(&mut ProcessTransport<'_>, &Ev) + 'static,
) -> (Script, Rc<RefCell<Vec<Ev>>>) {
    let events = Rc::new(RefCell::new(Vec::new()));
    let script = Script {
        events: events.clone(),
        hook: Some(Box::new(hook)),
    };
    (script, events)
}

impl Script {
    fn record(&mut self, p: &mut ProcessTransport<'_>, ev: Ev) {
        {
            let mut events = self.events.borrow_mut();
            match (events.last_mut(), &ev) {
                (Some(Ev::Out(a)), Ev::Out(b)) | (Some(Ev::Err(a)), Ev::Err(b)) => {
                    a.extend_from_slice(b)
                }
                _ => events.push(ev.clone()),
            }
        }
        if let Some(hook) = self.hook.as_mut() {
            hook(p, &ev);
        }
    }
}

fn codes(status: &ProcessStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}

impl ProcessHandler for Script {
    fn connection_made(&mut self, p: &mut ProcessTransport<'_>) {
        self.record(p, Ev::Made);
    }
    fn child_data_received(&mut self, p: &mut ProcessTransport<'_>, fd: ChildFd, data: &[u8]) {
        let ev = match fd {
            ChildFd::Stderr => Ev::Err(data.to_vec()),
            _ => Ev::Out(data.to_vec()),
        };
        self.record(p, ev);
    }
    fn child_connection_lost(
        &mut self,
        p: &mut ProcessTransport<'_>,
        fd: ChildFd,
        reason: &DisconnectReason,
    ) {
        self.record(p, Ev::Lost(fd, ended(reason)));
    }
    fn process_exited(&mut self, p: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        let (code, signal) = codes(status);
        self.record(p, Ev::Exited(code, signal));
    }
    fn process_ended(&mut self, p: &mut ProcessTransport<'_>, status: &ProcessStatus) {
        let ev = match status {
            ProcessStatus::NotStarted(e) => Ev::NotStarted(e.kind()),
            _ => Ev::Ended(status.code(), status.signal()),
        };
        self.record(p, ev);
    }
}

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

/// Spawns `command`, turns the reactor until `process_ended`, returns the events.
fn run(
    command: Command,
    options: ProcessOptions,
    hook: impl FnMut(&mut ProcessTransport<'_>, &Ev) + 'static,
) -> Vec<Ev> {
    let mut reactor = Reactor::new().unwrap();
    let (script, events) = script(hook);
    spawn_process(&mut reactor, script, command, options);
    turn_until(&mut reactor, |_| {
        matches!(
            events.borrow().last(),
            Some(Ev::Ended(..) | Ev::NotStarted(_))
        )
    });
    let events = events.borrow().clone();
    events
}

/// Checks the contract: made first, ended last and once, one loss per pipe, exited
/// once and before ended.
#[track_caller]
fn check_order(events: &[Ev]) {
    assert_eq!(events.first(), Some(&Ev::Made), "{events:?}");
    assert!(matches!(events.last(), Some(Ev::Ended(..))), "{events:?}");
    let ends = events.iter().filter(|e| matches!(e, Ev::Ended(..))).count();
    let exits = events
        .iter()
        .filter(|e| matches!(e, Ev::Exited(..)))
        .count();
    assert_eq!((ends, exits), (1, 1), "{events:?}");
    for fd in [ChildFd::Stdin, ChildFd::Stdout, ChildFd::Stderr] {
        let lost = events
            .iter()
            .filter(|e| matches!(e, Ev::Lost(f, _) if *f == fd))
            .count();
        assert_eq!(lost, 1, "{fd} lost once: {events:?}");
    }
}

fn output(events: &[Ev]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Out(data) => Some(data.as_slice()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat()
}

#[test]
fn cat_returns_what_it_is_given() {
    let input: Vec<u8> = (0..300_000).map(|i| b'a' + (i % 26) as u8).collect();
    let sent = input.clone();
    let events = run(
        Command::new("cat"),
        ProcessOptions::default(),
        move |p, ev| {
            if *ev == Ev::Made {
                p.write(&sent);
                p.close_stdin();
            }
        },
    );
    check_order(&events);
    assert!(output(&events) == input, "cat's output differs");
    assert!(events.contains(&Ev::Lost(ChildFd::Stdin, Ended::Done)));
    assert!(events.contains(&Ev::Lost(ChildFd::Stdout, Ended::Done)));
    assert_eq!(events.last(), Some(&Ev::Ended(Some(0), None)));
}

#[test]
fn cat_without_a_pidfd_is_waited_for_on_a_thread() {
    let options = ProcessOptions {
        wait_on_thread: true,
        ..ProcessOptions::default()
    };
    let events = run(Command::new("cat"), options, |p, ev| {
        if *ev == Ev::Made {
            p.write(b"by thread\n");
            p.close_stdin();
        }
    });
    check_order(&events);
    assert_eq!(output(&events), b"by thread\n");
    assert_eq!(events.last(), Some(&Ev::Ended(Some(0), None)));
}

#[test]
fn an_exit_code_is_reported_exited_then_ended() {
    let events = run(
        sh("echo bye >&2; exit 3"),
        ProcessOptions::default(),
        |_, _| {},
    );
    check_order(&events);
    assert!(events.contains(&Ev::Err(b"bye\n".to_vec())));
    assert!(events.contains(&Ev::Exited(Some(3), None)));
    assert_eq!(events.last(), Some(&Ev::Ended(Some(3), None)));
}

#[test]
fn a_child_killed_by_a_signal_reports_it() {
    let events = run(
        sh("echo ready; exec cat"),
        ProcessOptions::default(),
        |p, ev| {
            if matches!(ev, Ev::Out(_)) {
                p.signal_process(libc::SIGTERM).unwrap();
            }
            if matches!(ev, Ev::Ended(..)) {
                // Reaped: a signal now could only reach a stranger.
                assert!(matches!(
                    p.signal_process(libc::SIGTERM),
                    Err(ProcessError::ExitedAlready)
                ));
            }
        },
    );
    check_order(&events);
    assert!(events.contains(&Ev::Exited(None, Some(libc::SIGTERM))));
    assert_eq!(events.last(), Some(&Ev::Ended(None, Some(libc::SIGTERM))));
}

#[test]
fn a_child_closing_its_stdout_early_goes_on_running() {
    // It closes stdout first; we then write a line it echoes to stderr.
    let child = sh("exec >&-; read line; echo \"got $line\" >&2");
    let events = run(child, ProcessOptions::default(), |p, ev| {
        if *ev == Ev::Lost(ChildFd::Stdout, Ended::Done) {
            p.write(b"late\n");
        }
    });
    check_order(&events);
    let stdout_lost = events
        .iter()
        .position(|e| *e == Ev::Lost(ChildFd::Stdout, Ended::Done))
        .unwrap();
    let answer = events
        .iter()
        .position(|e| *e == Ev::Err(b"got late\n".to_vec()))
        .unwrap();
    assert!(stdout_lost < answer, "{events:?}");
    assert_eq!(events.last(), Some(&Ev::Ended(Some(0), None)));
}

#[test]
fn a_program_that_does_not_exist_is_not_started() {
    let events = run(
        Command::new("/nonexistent/no-such-program"),
        ProcessOptions::default(),
        |_, _| {},
    );
    assert_eq!(events, [Ev::NotStarted(std::io::ErrorKind::NotFound)]);
}

#[test]
fn output_after_the_exit_comes_before_ended() {
    // The child exits at once; its grandchild writes a moment later on the same pipe.
    let events = run(
        // (A background job's stdin is /dev/null unless redirected: fd 3 keeps the pipe.)
        sh("exec 3<&0; (read x <&3; echo late) & exit 0"),
        ProcessOptions::default(),
        |p, ev| {
            if matches!(ev, Ev::Exited(..)) {
                p.write(b"go\n"); // the grandchild reads this, then writes
                p.close_stdin();
            }
        },
    );
    check_order(&events);
    let exited = events.iter().position(|e| matches!(e, Ev::Exited(..)));
    let late = events
        .iter()
        .position(|e| *e == Ev::Out(b"late\n".to_vec()));
    assert!(exited < late && late.is_some(), "{events:?}");
    assert_eq!(events.last(), Some(&Ev::Ended(Some(0), None)));
}

#[test]
fn a_grandchild_holding_the_pipes_cannot_hang_ended() {
    let options = ProcessOptions {
        pipe_grace: Duration::from_millis(200),
        ..ProcessOptions::default()
    };
    let start = Instant::now();
    let events = run(sh("sleep 30 & echo $!"), options, |_, _| {});
    let took = start.elapsed();
    let grandchild: i32 = String::from_utf8(output(&events))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling the grandchild the test made, by the number it printed.
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    check_order(&events);
    assert!(events.contains(&Ev::Lost(ChildFd::Stdout, Ended::TimedOut)));
    assert!(events.contains(&Ev::Lost(ChildFd::Stderr, Ended::TimedOut)));
    assert_eq!(events.last(), Some(&Ev::Ended(Some(0), None)));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn only_the_standard_descriptors_reach_the_child() {
    // A descriptor without close-on-exec, as a careless library would leave one.
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: F_DUPFD duplicates an open descriptor; the copy is closed below.
    let leaky = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, 200) };
    assert!(leaky >= 200);
    let mut ls = Command::new("ls");
    ls.arg("/proc/self/fd");
    let listing = run(ls, ProcessOptions::default(), |_, _| {});
    // SAFETY: closing the descriptor made above.
    unsafe { libc::close(leaky) };
    let text = String::from_utf8(output(&listing)).unwrap();
    let fds: Vec<i32> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert!(
        !fds.contains(&leaky),
        "descriptor {leaky} leaked into the child: {fds:?}"
    );
    // 0, 1, 2 and the directory ls itself opened.
    assert!(fds.len() <= 4, "{fds:?}");
}

#[test]
fn a_child_left_running_at_shutdown_is_reaped() {
    let mut reactor = Reactor::new().unwrap();
    let pid = Rc::new(RefCell::new(0));
    let seen = pid.clone();
    let (script, events) = script(move |p, ev| {
        if *ev == Ev::Made {
            *seen.borrow_mut() = p.pid();
            p.reactor().stop();
        }
    });
    // It ends when its stdin closes, which the reactor's shutdown does.
    spawn_process(
        &mut reactor,
        script,
        Command::new("cat"),
        ProcessOptions::default(),
    );
    util::run_with_watchdog(&mut reactor, Duration::from_secs(10));
    drop(reactor);
    let pid = *pid.borrow();
    assert_ne!(pid, 0, "{:?}", events.borrow());
    let status = format!("/proc/{pid}/stat");
    let start = Instant::now();
    // A zombie keeps its /proc entry (state Z) until reaped; watchdog-bounded wait.
    while std::path::Path::new(&status).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "child {pid} not reaped: {}",
            std::fs::read_to_string(&status).unwrap_or_default()
        );
        std::thread::yield_now();
    }
}
