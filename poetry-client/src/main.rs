//! `poetry-client`: downloads poems from several poetry servers at once, on one
//! reactor thread (the Twisted Introduction's `get-poetry`).
//!
//! ```text
//! cargo run -p poetry-client -- 10000 localhost:10001 [::1]:10002
//! ```

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use poetry_cli::parse_positive_seconds;
use poetry_client::{
    parse_address, report, start, ClientOptions, PoemAddress, PoetryClientFactory,
};
use protocol::Shared;
use reactor::{Reactor, ReactorError};

/// Downloads a poem from each ADDRESS concurrently and prints them in address order:
/// the poems on stdout, headers and the summary on stderr.
#[derive(Debug, Parser)]
#[command(name = "poetry-client", version, allow_negative_numbers = true)]
struct Args {
    /// PORT (on 127.0.0.1), HOST:PORT or [IPV6]:PORT.
    #[arg(required = true, value_name = "ADDRESS")]
    addresses: Vec<String>,
    /// Print a line for every read, as get-poetry 2.0 does.
    #[arg(long, short)]
    verbose: bool,
    /// Give up on a poem after this many seconds.
    #[arg(long, value_parser = parse_positive_seconds, allow_hyphen_values = true)]
    timeout: Option<Duration>,
    /// Give up connecting after this many seconds.
    #[arg(long, default_value = "30", value_parser = parse_positive_seconds, allow_hyphen_values = true)]
    connect_timeout: Duration,
    /// After the run, draw which task received bytes when.
    #[arg(long)]
    timeline: bool,
    /// Show live progress lines even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Largest poem accepted, in bytes; a server sending more is cut off and its poem
    /// reported incomplete.
    #[arg(long, default_value_t = poetry_client::DEFAULT_MAX_POEM_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    max_poem_bytes: u64,
}

/// The live progress block: how many lines the last frame drew, and the messages
/// waiting to be printed above the next one.
#[derive(Debug, Default)]
struct Screen {
    drawn: usize,
    notices: Vec<String>,
}

/// Redraws the progress block (with any new messages above it) now, and every tenth
/// of a second until the downloads end.
fn show_progress(
    reactor: &mut Reactor,
    factory: Shared<PoetryClientFactory>,
    screen: Rc<RefCell<Screen>>,
) {
    draw(reactor, &factory, &screen);
    if factory.borrow().remaining() > 0 {
        reactor.call_later(Duration::from_millis(100), move |r| {
            show_progress(r, factory, screen)
        });
    }
}

/// One frame of the progress block.
fn draw(reactor: &Reactor, factory: &Shared<PoetryClientFactory>, screen: &RefCell<Screen>) {
    let lines = {
        let factory = factory.borrow();
        let now = reactor.now().saturating_sub(factory.started());
        report::progress_lines(factory.tasks(), now)
    };
    let mut screen = screen.borrow_mut();
    let notices = std::mem::take(&mut screen.notices);
    // A full or closed stderr only loses the picture, not the poems.
    if let Ok(drawn) = report::redraw(&mut io::stderr().lock(), screen.drawn, &notices, &lines) {
        screen.drawn = drawn;
    }
}

/// Why a run failed after the downloads.
enum RunError {
    Reactor(ReactorError),
    /// Writing the poems to stdout failed: they are lost.
    Output(io::Error),
}

fn run(addresses: Vec<PoemAddress>, args: &Args) -> Result<bool, RunError> {
    let options = ClientOptions {
        timeout: args.timeout,
        connect_timeout: Some(args.connect_timeout),
        verbose: args.verbose,
        stop_when_done: true,
        max_poem_bytes: args.max_poem_bytes,
        record_arrivals: args.timeline,
    };
    let mut reactor = Reactor::new().map_err(RunError::Reactor)?;
    reactor.handle_signals().map_err(RunError::Reactor)?;
    let began = std::time::Instant::now();
    let factory = start(&mut reactor, &addresses, options);
    let screen = ((args.progress || io::stderr().is_terminal()) && !args.verbose).then(|| {
        // Messages wait for the next frame, which prints them above the block.
        let screen = Rc::new(RefCell::new(Screen::default()));
        let notices = screen.clone();
        factory.borrow_mut().set_notifier(Box::new(move |message| {
            notices.borrow_mut().notices.push(message.to_owned())
        }));
        let (progress, shown) = (factory.clone(), screen.clone());
        reactor.call_when_running(move |r| show_progress(r, progress, shown));
        screen
    });
    reactor.run().map_err(RunError::Reactor)?;
    if let Some(screen) = &screen {
        // The last frame: the final states, and any message not yet shown.
        draw(&reactor, &factory, screen);
    }
    let elapsed = began.elapsed();
    let tasks = factory.borrow_mut().take_tasks();
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    report::print_poems(&tasks, &mut out, &mut err).map_err(RunError::Output)?;
    if args.timeline {
        let _ = write!(err, "{}", report::timeline(&tasks, elapsed, 72));
    }
    let _ = writeln!(err, "{}", report::summary(&tasks, elapsed));
    Ok(tasks.iter().all(|t| t.is_whole()))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Args = match poetry_cli::parse_args("poetry-client") {
        Ok(args) => args,
        Err(code) => return code,
    };
    let mut addresses = Vec::with_capacity(args.addresses.len());
    for arg in &args.addresses {
        match parse_address(arg) {
            Ok(address) => addresses.push(address),
            Err(e) => {
                eprintln!("poetry-client: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match run(addresses, &args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // A closed stdout (`| head`) is the reader's choice: no message, but the
        // poems were not all delivered, so not a success either.
        Err(RunError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(RunError::Output(e)) => {
            let _ = writeln!(
                io::stderr(),
                "poetry-client: writing the poems to stdout: {e}"
            );
            ExitCode::from(1)
        }
        Err(RunError::Reactor(e)) => {
            let _ = writeln!(io::stderr(), "poetry-client: {e}");
            ExitCode::from(1)
        }
    }
}
