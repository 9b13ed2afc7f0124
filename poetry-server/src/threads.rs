//! Serving from several reactors at once, one per thread, all listening on one port
//! with `SO_REUSEPORT` (the kernel spreads new connections across them).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use reactor::{Reactor, ReactorHandle};

use crate::error::ServerError;
use crate::poem::Poem;
use crate::server::{serve_counted, ServerOptions, SharedCounts, Stats};

/// Runs one reactor serving `poem_path` (or the default poem); tells `ready` its port
/// and poem name once listening, then serves until SIGINT/SIGTERM.
fn serve_one(
    poem_path: Option<PathBuf>,
    options: ServerOptions,
    shared: Option<SharedCounts>,
    ready: mpsc::Sender<Result<(u16, String, ReactorHandle), ServerError>>,
) -> Result<Stats, ServerError> {
    let started = (|| {
        let poem = match &poem_path {
            Some(path) => Poem::open(path)?,
            None => Poem::default_poem(),
        };
        let mut reactor = Reactor::new()?;
        reactor.handle_signals()?;
        let (port, factory) = serve_counted(&mut reactor, poem, options, shared)?;
        Ok((reactor, port, factory))
    })();
    let (mut reactor, port, factory) = match started {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(Stats::default());
        }
    };
    let name = factory.borrow().poem().name().to_owned();
    let _ = ready.send(Ok((
        port.get_host().port().unwrap_or(0),
        name,
        reactor.handle(),
    )));
    reactor.run()?;
    let stats = factory.borrow().stats();
    Ok(stats)
}

/// Serves on `reactors` threads, each with its own reactor and listening socket on the
/// same port; `max_connections` caps the connections open over all of them. Calls
/// `on_listening(poem name, port)` once every reactor listens, and returns the summed
/// statistics after they all stopped (on SIGINT or SIGTERM).
///
/// # Errors
///
/// The first reactor's error if it could not start (bad poem, port in use, a
/// descriptor limit too low to serve anyone); [`ServerError::PortShared`] if another
/// process listens on the port too (with `SO_REUSEPORT`, which several reactors use);
/// later errors are returned after the others stopped.
///
/// # Panics
///
/// If `reactors` is zero.
pub fn serve_on_threads(
    poem_path: Option<&Path>,
    options: ServerOptions,
    reactors: usize,
    on_listening: impl FnOnce(&str, u16),
) -> Result<Stats, ServerError> {
    assert!(reactors > 0, "at least one reactor");
    let mut options = ServerOptions {
        reuse_port: reactors > 1 || options.reuse_port,
        ..options
    };
    let shared = (reactors > 1).then(SharedCounts::default);
    let mut handles = Vec::with_capacity(reactors);
    let mut reactor_handles = Vec::with_capacity(reactors);
    let mut listening = None;
    for _ in 0..reactors {
        let (sender, receiver) = mpsc::channel();
        let path = poem_path.map(Path::to_path_buf);
        let thread_options = options.clone();
        let shared = shared.clone();
        handles.push(thread::spawn(move || {
            serve_one(path, thread_options, shared, sender)
        }));
        match receiver.recv() {
            Ok(Ok((port, name, handle))) => {
                // Every later reactor joins the first one's port.
                options.port = port;
                listening.get_or_insert((name, port));
                reactor_handles.push(handle);
            }
            Ok(Err(e)) => return Err(stop_all(&reactor_handles, handles, e)),
            Err(_) => break,
        }
    }
    let checked = match &listening {
        Some((_, port)) if options.reuse_port => crate::limits::sole_listener(*port),
        _ => Ok(()),
    };
    if let Err(e) = checked.and_then(|()| crate::limits::can_serve_one()) {
        return Err(stop_all(&reactor_handles, handles, e));
    }
    if let Some((name, port)) = &listening {
        on_listening(name, *port);
    }
    join_all(handles)
}

/// Waits for every reactor thread; returns their summed stats, or the first error one
/// returned (a thread that panicked is logged).
fn join_all(
    handles: Vec<thread::JoinHandle<Result<Stats, ServerError>>>,
) -> Result<Stats, ServerError> {
    let mut total = Stats::default();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(stats)) => {
                total.accepted += stats.accepted;
                total.refused += stats.refused;
                total.completed += stats.completed;
                total.interrupted += stats.interrupted;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => log::error!("a reactor thread panicked"),
        }
    }
    first_error.map_or(Ok(total), Err)
}

/// Stops the reactors started so far and waits for their threads; returns `error`.
fn stop_all(
    reactors: &[ReactorHandle],
    threads: Vec<thread::JoinHandle<Result<Stats, ServerError>>>,
    error: ServerError,
) -> ServerError {
    for handle in reactors {
        let _ = handle.stop();
    }
    for thread in threads {
        let _ = thread.join();
    }
    error
}
