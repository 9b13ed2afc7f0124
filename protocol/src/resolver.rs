//! Name resolution off the reactor thread: a small pool of resolver threads that
//! report back with `call_from_thread` (Twisted's threaded resolver).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use reactor::{Reactor, ReactorHandle};

/// Threads in the pool; lookups beyond that wait their turn.
const RESOLVER_THREADS: usize = 4;

type Done = Box<dyn FnOnce(&mut Reactor, io::Result<Vec<SocketAddr>>)>;

struct Job {
    host: String,
    port: u16,
    key: u64,
    handle: ReactorHandle,
}

thread_local! {
    /// Lookups this (reactor) thread is waiting for, by key. Cancelling one removes it.
    static WAITING: RefCell<HashMap<u64, Done>> = RefCell::new(HashMap::new());
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
static POOL: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

fn pool() -> &'static Mutex<mpsc::Sender<Job>> {
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..RESOLVER_THREADS {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("resolver-{n}"))
                .spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = (job.host.as_str(), job.port)
                        .to_socket_addrs()
                        .map(|addrs| addrs.collect::<Vec<_>>())
                        .and_then(|addrs| {
                            if addrs.is_empty() {
                                Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"))
                            } else {
                                Ok(addrs)
                            }
                        });
                    let key = job.key;
                    // The reactor may be gone by now; then nobody is waiting.
                    let _ = job.handle.call_from_thread(move |reactor| {
                        if let Some(done) = WAITING.with(|w| w.borrow_mut().remove(&key)) {
                            done(reactor, result);
                        }
                    });
                })
                .expect("cannot start a resolver thread");
        }
        Mutex::new(sender)
    })
}

/// A lookup in progress; [`cancel`] forgets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookup(u64);

/// Resolves `host`:`port` on a resolver thread and calls `done` on the reactor's
/// thread with the addresses, in the resolver's order. An IP address literal is
/// answered on the next turn without a thread.
pub(crate) fn resolve(
    reactor: &mut Reactor,
    host: &str,
    port: u16,
    done: impl FnOnce(&mut Reactor, io::Result<Vec<SocketAddr>>) + 'static,
) -> Lookup {
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    WAITING.with(|w| w.borrow_mut().insert(key, Box::new(done)));
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        reactor.call_soon(move |reactor| {
            if let Some(done) = WAITING.with(|w| w.borrow_mut().remove(&key)) {
                done(reactor, Ok(vec![addr]));
            }
        });
        return Lookup(key);
    }
    let job = Job {
        host: host.to_owned(),
        port,
        key,
        handle: reactor.handle(),
    };
    let sent = pool()
        .lock()
        .map(|sender| sender.send(job).is_ok())
        .unwrap_or(false);
    if !sent {
        reactor.call_soon(move |reactor| {
            if let Some(done) = WAITING.with(|w| w.borrow_mut().remove(&key)) {
                done(reactor, Err(io::Error::other("resolver threads are gone")));
            }
        });
    }
    Lookup(key)
}

/// Forgets a lookup: its callback will not be called.
pub(crate) fn cancel(lookup: Lookup) {
    WAITING.with(|w| w.borrow_mut().remove(&lookup.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    fn run_lookup(host: &str) -> io::Result<Vec<SocketAddr>> {
        let mut reactor = Reactor::new().unwrap();
        let out = Rc::new(RefCell::new(None));
        let sink = out.clone();
        resolve(&mut reactor, host, 7, move |r, result| {
            *sink.borrow_mut() = Some(result);
            r.stop();
        });
        reactor.call_later(Duration::from_secs(20), |r| r.stop());
        reactor.run().unwrap();
        let result = out.borrow_mut().take().expect("lookup answered");
        result
    }

    #[test]
    fn literals_and_names_resolve_off_thread() {
        assert_eq!(
            run_lookup("127.0.0.1").unwrap(),
            vec!["127.0.0.1:7".parse().unwrap()]
        );
        assert_eq!(
            run_lookup("[::1]").unwrap(),
            vec!["[::1]:7".parse().unwrap()]
        );
        assert!(run_lookup("localhost")
            .unwrap()
            .iter()
            .all(|a| a.ip().is_loopback()));
        assert!(run_lookup("no-such-host.invalid").is_err());
    }

    #[test]
    fn cancelled_lookups_are_never_answered() {
        let mut reactor = Reactor::new().unwrap();
        let lookup = resolve(&mut reactor, "127.0.0.1", 1, |_, _| panic!("cancelled"));
        cancel(lookup);
        reactor.iterate(Some(Duration::ZERO)).unwrap();
        reactor.iterate(Some(Duration::ZERO)).unwrap();
    }
}
