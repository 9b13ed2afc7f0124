//! `poetry-server`: serves a poem, slowly or fast, as the Twisted Introduction's
//! `slowpoetry.py` and `fastpoetry.py` do.
//!
//! ```text
//! cargo run -p poetry-server -- --port 10000 ../shared/poetry/ecstasy.txt
//! nc 127.0.0.1 10000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use poetry_server::{serve_on_threads, ServerError, ServerOptions};

/// Serves a poem to every client that connects, then closes the connection.
#[derive(Debug, Parser)]
#[command(name = "poetry-server", version, allow_negative_numbers = true)]
struct Args {
    /// The poem to serve (default: a short poem compiled in).
    poetry_file: Option<PathBuf>,
    /// The port to listen on; 0 or absent picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The interface to listen on: loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    iface: String,
    /// Bytes per send (slow mode).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    num_bytes: u32,
    /// Seconds between sends; 0 is the fast server (as fast as the client reads).
    #[arg(long, default_value = "0.7", value_parser = parse_seconds, allow_hyphen_values = true)]
    delay: Duration,
    /// Most connections served at once; more are refused with a clean close.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Close a connection that makes no progress for this many seconds (in slow mode at
    /// least two delays); 0 never does.
    #[arg(long, default_value = "120", value_parser = parse_seconds, allow_hyphen_values = true)]
    idle_timeout: Duration,
    /// In fast mode, copy large files through a buffer instead of sending them with
    /// sendfile (zero copy).
    #[arg(long)]
    no_sendfile: bool,
    /// Reactor threads sharing the port (SO_REUSEPORT); connections are spread
    /// across them and --max-connections is shared out.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    reactors: u16,
}

/// Parses a number of seconds: finite, not negative, at most a day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{}' is not a number of seconds", shorten(text)))?;
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        // The text as given: `{seconds}` would print 1e300 with 300 digits.
        return Err(format!(
            "{} is out of range (0 to 86400 seconds)",
            shorten(text.trim())
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Keeps hostile arguments out of error lines: at most 40 characters, and control
/// characters (a newline, a terminal escape) escaped, so the line stays one line.
fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// Pushes `c`, escaped if it is a control character.
fn push_escaped(out: &mut String, c: char) {
    if c.is_control() {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// `text` with each of `values` (arguments it may quote whole) shortened.
fn shorten_values(text: &str, values: &[&str]) -> String {
    let mut text = text.to_owned();
    for value in values.iter().filter(|v| !v.is_empty()) {
        let short = shorten(value);
        if short != *value {
            text = text.replace(value, &short);
        }
    }
    text
}

/// `line` with its control characters escaped.
fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    line.chars().for_each(|c| push_escaped(&mut out, c));
    out
}

/// Lets this process hold as many descriptors as it may serve connections.
fn raise_descriptor_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn run(args: Args) -> Result<(), ServerError> {
    let options = ServerOptions {
        port: args.port,
        interface: args.iface,
        num_bytes: args.num_bytes as usize,
        delay: args.delay,
        max_connections: args.max_connections as usize,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        sendfile: !args.no_sendfile,
        reuse_port: false,
    };
    raise_descriptor_limit(options.max_connections as u64 + 64);
    let stats = serve_on_threads(
        args.poetry_file.as_deref(),
        options,
        args.reactors as usize,
        |name, port| {
            println!("Serving {name} on port {port}.");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        },
    )?;
    eprintln!(
        "poetry-server: stopped; {} poems sent whole, {} sends cut short, {} connections refused.",
        stats.completed, stats.interrupted, stats.refused
    );
    Ok(())
}

/// Clap's error as one line: huge argument values cut short and control characters
/// escaped (clap quotes values whole; a newline in one would split the line), and a
/// first line ending in a colon completed with the line it announces.
fn error_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut values = Vec::new();
    for kind in [ContextKind::InvalidValue, ContextKind::InvalidArg] {
        if let Some(ContextValue::String(value)) = e.get(kind) {
            values.push(value.as_str());
        }
    }
    // Before splitting into lines, so that a value's own newlines do not split it.
    let text = shorten_values(&e.to_string(), &values);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    if line.ends_with(':') {
        if let Some(next) = lines.next() {
            line = format!("{line} {next}");
        }
    }
    escape_controls(&line)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("poetry-server: {}", error_line(&e));
            return ExitCode::from(2);
        }
    };
    // The error may quote these whole.
    let quoted = [
        args.iface.clone(),
        args.poetry_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    ];
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let values = [quoted[0].as_str(), quoted[1].as_str()];
            let line = shorten_values(&e.to_string(), &values);
            eprintln!("poetry-server: {}", escape_controls(&line));
            ExitCode::from(2)
        }
    }
}
