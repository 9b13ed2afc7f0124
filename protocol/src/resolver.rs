//! Name resolution for connecting, pluggable (Twisted's `IResolverSimple` and
//! `installResolver`): the [`SystemResolver`] by default, a [`MemoryResolver`] for
//! tests, or any [`Resolver`] of one's own, installed per reactor thread with
//! [`install_resolver`].
//!
//! # Tests never leave the loopback interface
//!
//! A test that connects to a name installs a [`MemoryResolver`]; a test that runs a
//! binary which resolves names sets [`TEST_HOSTS_VARIABLE`] for it, which makes the
//! default resolver of that process an in-memory one. Either way no lookup reaches
//! the machine's DNS.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use log::{error, warn};
use reactor::{Reactor, ReactorHandle};

/// Threads in the system resolver's pool; lookups beyond that wait their turn.
const RESOLVER_THREADS: usize = 4;

/// The environment variable that replaces the default resolver of a process with a
/// [`MemoryResolver`], **for tests only**: `name=address[,address...]` entries
/// separated by `;` (e.g. `localhost=127.0.0.1,::1`). Every other name fails to
/// resolve, and none reaches the system's resolver. A malformed value is logged and
/// gives a resolver that knows no name.
pub const TEST_HOSTS_VARIABLE: &str = "TWISTIER_TEST_HOSTS";

/// Resolves host names to addresses for connecting (Twisted's `IResolverSimple`).
///
/// IP address literals never reach it: the connector answers them itself.
pub trait Resolver {
    /// Starts resolving `host` for `port`. The result goes to `answer`, now or later,
    /// from this thread or another; an `answer` dropped without a result fails the
    /// lookup, so a resolver cannot leave a connector waiting for ever by mistake.
    #[doc(alias = "getHostByName")]
    fn resolve(&self, reactor: &mut Reactor, host: &str, port: u16, answer: Answer);

    /// Resolves `host` for `port` at once, blocking the caller: for a listening
    /// interface, resolved once when the port opens.
    ///
    /// # Errors
    ///
    /// The name does not resolve, or resolves to no address.
    fn resolve_now(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

type Done = Box<dyn FnOnce(&mut Reactor, io::Result<Vec<SocketAddr>>)>;

thread_local! {
    /// Lookups this (reactor) thread is waiting for, by key. Cancelling one removes it.
    static WAITING: RefCell<HashMap<u64, Done>> = RefCell::new(HashMap::new());
    /// The resolver connectors on this thread use.
    static INSTALLED: RefCell<Option<Rc<dyn Resolver>>> = const { RefCell::new(None) };
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// Where a [`Resolver`] sends its result: to the connector that asked, on its
/// reactor's thread. `Send`, so a resolver may answer from a thread of its own.
pub struct Answer {
    key: u64,
    handle: ReactorHandle,
    sent: bool,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer").field("key", &self.key).finish()
    }
}

impl Answer {
    /// Delivers the result (on the reactor's next turn). An empty list of addresses
    /// counts as a failure.
    pub fn send(mut self, result: io::Result<Vec<SocketAddr>>) {
        self.sent = true;
        deliver(&self.handle, self.key, result);
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.sent {
            let gave_up = io::Error::other("the resolver gave no answer");
            deliver(&self.handle, self.key, Err(gave_up));
        }
    }
}

fn deliver(handle: &ReactorHandle, key: u64, result: io::Result<Vec<SocketAddr>>) {
    let result = result.and_then(|addrs| {
        if addrs.is_empty() {
            Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"))
        } else {
            Ok(addrs)
        }
    });
    let sent = handle.call_from_thread(move |reactor| {
        if let Some(done) = WAITING.with(|w| w.borrow_mut().remove(&key)) {
            done(reactor, result);
        }
    });
    if sent.is_err() {
        // The reactor is gone, and with it whoever was waiting: nothing to tell.
    }
}

/// Installs `resolver` for the connectors of this thread's reactor (Twisted's
/// `installResolver`) and returns the one it replaces.
///
/// # Examples
///
/// ```
/// use protocol::{install_resolver, MemoryResolver};
///
/// let mut hosts = MemoryResolver::new();
/// hosts.insert("poetry.test", ["127.0.0.1".parse().unwrap()]);
/// let _previous = install_resolver(hosts);
/// // connect_tcp(&mut reactor, "poetry.test", 10000, ...) now reaches 127.0.0.1.
/// ```
#[doc(alias = "installResolver")]
pub fn install_resolver(resolver: impl Resolver + 'static) -> Rc<dyn Resolver> {
    let previous = installed_resolver();
    INSTALLED.with(|i| *i.borrow_mut() = Some(Rc::new(resolver)));
    previous
}

/// The resolver connectors on this thread use: the one installed, else the default
/// (the [`SystemResolver`], or a [`MemoryResolver`] when [`TEST_HOSTS_VARIABLE`] is
/// set).
pub fn installed_resolver() -> Rc<dyn Resolver> {
    INSTALLED.with(|i| i.borrow_mut().get_or_insert_with(default_resolver).clone())
}

fn default_resolver() -> Rc<dyn Resolver> {
    let Some(spec) = std::env::var_os(TEST_HOSTS_VARIABLE) else {
        return Rc::new(SystemResolver);
    };
    let spec = spec.to_string_lossy();
    match MemoryResolver::parse(&spec) {
        Ok(hosts) => Rc::new(hosts),
        Err(e) => {
            error!("{TEST_HOSTS_VARIABLE}: {e}; no name will resolve");
            Rc::new(MemoryResolver::new())
        }
    }
}

/// The operating system's resolver (`getaddrinfo`), run on a small pool of threads
/// that report back with `call_from_thread`, so a slow lookup never blocks the
/// reactor (Twisted's `ThreadedResolver`).
#[derive(Debug, Clone, Copy, Default)]
#[doc(alias = "ThreadedResolver")]
pub struct SystemResolver;

struct Job {
    host: String,
    port: u16,
    answer: Answer,
}

static POOL: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();

/// The pool's queue; `None` if no thread could be started.
fn pool() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for n in 0..RESOLVER_THREADS {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("resolver-{n}"))
                .spawn(move || serve_lookups(&receiver));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => warn!("cannot start a resolver thread: {e}"),
            }
        }
        (started > 0).then(|| Mutex::new(sender))
    })
    .as_ref()
}

fn serve_lookups(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let result = SystemResolver.resolve_now(&job.host, job.port);
        job.answer.send(result);
    }
}

impl Resolver for SystemResolver {
    fn resolve(&self, _reactor: &mut Reactor, host: &str, port: u16, answer: Answer) {
        let job = Job {
            host: host.to_owned(),
            port,
            answer,
        };
        let Some(pool) = pool() else {
            return job.answer.send(Err(io::Error::other("no resolver thread")));
        };
        let refused = match pool.lock() {
            Ok(sender) => sender.send(job).err().map(|e| e.0),
            Err(poisoned) => poisoned.into_inner().send(job).err().map(|e| e.0),
        };
        if let Some(job) = refused {
            job.answer
                .send(Err(io::Error::other("the resolver threads are gone")));
        }
    }

    fn resolve_now(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
        }
        Ok(addrs)
    }
}

/// A resolver that knows only the names it was given, and answers on the reactor's
/// next turn: for tests, which must never send a lookup off the machine. Names are
/// matched without regard to case; every other name fails with `NotFound`.
///
/// # Examples
///
/// ```
/// use protocol::{MemoryResolver, Resolver};
///
/// let hosts = MemoryResolver::parse("localhost=127.0.0.1,::1; poetry.test=127.0.0.2")?;
/// assert_eq!(hosts.resolve_now("LocalHost", 80)?.len(), 2);
/// assert!(hosts.resolve_now("elsewhere.test", 80).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryResolver {
    hosts: HashMap<String, Vec<IpAddr>>,
}

/// A [`MemoryResolver`] specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsError {
    entry: String,
}

impl fmt::Display for HostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not name=address[,address...]",
            self.entry.chars().take(40).collect::<String>()
        )
    }
}

impl std::error::Error for HostsError {}

impl MemoryResolver {
    /// A resolver that knows no name.
    pub fn new() -> Self {
        MemoryResolver::default()
    }

    /// Parses `name=address[,address...]` entries separated by `;` (spaces around
    /// them are ignored; an empty specification knows no name).
    ///
    /// # Errors
    ///
    /// [`HostsError`] naming the first entry without a name or with an address that
    /// is not an IP address.
    pub fn parse(spec: &str) -> Result<Self, HostsError> {
        let mut hosts = MemoryResolver::new();
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || HostsError {
                entry: entry.to_owned(),
            };
            let (name, addrs) = entry.split_once('=').ok_or_else(bad)?;
            let addrs: Vec<IpAddr> = addrs
                .split(',')
                .map(|a| a.trim().parse::<IpAddr>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            if name.trim().is_empty() {
                return Err(bad());
            }
            hosts.insert(name.trim(), addrs);
        }
        Ok(hosts)
    }

    /// Makes `name` resolve to `addresses`, tried in this order (an empty list makes
    /// the name known but without addresses, which fails as an empty answer does).
    pub fn insert(&mut self, name: &str, addresses: impl IntoIterator<Item = IpAddr>) {
        self.hosts
            .insert(name.to_ascii_lowercase(), addresses.into_iter().collect());
    }
}

impl Resolver for MemoryResolver {
    fn resolve(&self, _reactor: &mut Reactor, host: &str, port: u16, answer: Answer) {
        answer.send(self.resolve_now(host, port));
    }

    fn resolve_now(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match self.hosts.get(&host.to_ascii_lowercase()) {
            Some(addrs) if !addrs.is_empty() => {
                Ok(addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            }
            Some(_) => Err(io::Error::new(io::ErrorKind::NotFound, "no addresses")),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "unknown to the in-memory resolver",
            )),
        }
    }
}

/// A lookup in progress; [`cancel`] forgets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookup(u64);

/// Resolves `host`:`port` with this thread's resolver and calls `done` on the
/// reactor's thread with the addresses, in the resolver's order. An IP address
/// literal is answered on the next turn without a resolver.
pub(crate) fn resolve(
    reactor: &mut Reactor,
    host: &str,
    port: u16,
    done: impl FnOnce(&mut Reactor, io::Result<Vec<SocketAddr>>) + 'static,
) -> Lookup {
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    WAITING.with(|w| w.borrow_mut().insert(key, Box::new(done)));
    let answer = Answer {
        key,
        handle: reactor.handle(),
        sent: false,
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => answer.send(Ok(vec![SocketAddr::new(ip, port)])),
        Err(_) => installed_resolver().resolve(reactor, host, port, answer),
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
    fn literals_and_installed_names_resolve() {
        let mut hosts = MemoryResolver::new();
        hosts.insert("Poetry.Test", ["127.0.0.2".parse().unwrap()]);
        install_resolver(hosts);
        assert_eq!(
            run_lookup("127.0.0.1").unwrap(),
            vec!["127.0.0.1:7".parse().unwrap()]
        );
        assert_eq!(
            run_lookup("[::1]").unwrap(),
            vec!["[::1]:7".parse().unwrap()]
        );
        assert_eq!(
            run_lookup("poetry.test").unwrap(),
            vec!["127.0.0.2:7".parse().unwrap()]
        );
        let unknown = run_lookup("elsewhere.test").unwrap_err();
        assert_eq!(unknown.kind(), io::ErrorKind::NotFound);
    }

    /// The system resolver's thread pool, on a literal (no lookup leaves the machine).
    #[test]
    fn the_system_resolver_answers_from_its_threads() {
        install_resolver(SystemResolver);
        let mut reactor = Reactor::new().unwrap();
        let out = Rc::new(RefCell::new(None));
        let sink = out.clone();
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        WAITING.with(|w| {
            w.borrow_mut().insert(
                key,
                Box::new(move |r: &mut Reactor, result| {
                    *sink.borrow_mut() = Some(result);
                    r.stop();
                }),
            )
        });
        let answer = Answer {
            key,
            handle: reactor.handle(),
            sent: false,
        };
        SystemResolver.resolve(&mut reactor, "127.0.0.3", 9, answer);
        reactor.call_later(Duration::from_secs(20), |r| r.stop());
        reactor.run().unwrap();
        let result = out.borrow_mut().take().expect("answered");
        assert_eq!(result.unwrap(), vec!["127.0.0.3:9".parse().unwrap()]);
    }

    #[test]
    fn a_dropped_answer_fails_the_lookup() {
        struct Forgetful;
        impl Resolver for Forgetful {
            fn resolve(&self, _: &mut Reactor, _: &str, _: u16, answer: Answer) {
                drop(answer);
            }
            fn resolve_now(&self, _: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
                Err(io::Error::other("forgetful"))
            }
        }
        install_resolver(Forgetful);
        let error = run_lookup("anything.test").unwrap_err();
        assert_eq!(error.to_string(), "the resolver gave no answer");
    }

    #[test]
    fn host_specifications_parse_or_say_why_not() {
        let hosts = MemoryResolver::parse(" a=127.0.0.1 ; b=::1,127.0.0.1;").unwrap();
        assert_eq!(hosts.resolve_now("b", 1).unwrap().len(), 2);
        assert!(MemoryResolver::parse("").unwrap().hosts.is_empty());
        for bad in ["a", "=127.0.0.1", "a=not-an-ip", "a=127.0.0.1,"] {
            let e = MemoryResolver::parse(bad).unwrap_err();
            assert!(e.to_string().contains("is not name=address"), "{bad}: {e}");
        }
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
