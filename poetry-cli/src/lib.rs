//! What the two poetry programs' command lines share, so each `main.rs` stays a thin
//! shell: arguments that turn into one clear error line and exit status 2, never a
//! panic, a backtrace or a multi-line usage dump.
//!
//! It sits beside the programs at the top of the stack and depends on no layer.
//!
//! # Example
//!
//! ```
//! use poetry_cli::{parse_seconds, shorten};
//!
//! assert_eq!(parse_seconds("0.5").unwrap().as_millis(), 500);
//! assert!(parse_seconds("-1").unwrap_err().contains("out of range"));
//! assert_eq!(shorten("a\nb"), "a\\nb");
//! ```

use std::process::ExitCode;
use std::time::Duration;

/// The most characters of an argument quoted back in an error line.
pub const MAX_QUOTED: usize = 40;

/// The longest number of seconds accepted: a day.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Parses a number of seconds: finite, not negative, at most a day.
///
/// # Errors
///
/// A one-line message naming the problem and quoting the text (shortened).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds = seconds_of(text)?;
    if !seconds.is_finite() || !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "{} is out of range (0 to 86400 seconds)",
            shorten(text.trim())
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a number of seconds above zero, at most a day.
///
/// # Errors
///
/// A one-line message naming the problem and quoting the text (shortened).
pub fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    let seconds = seconds_of(text)?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > MAX_SECONDS {
        return Err(format!(
            "{} is out of range (above 0, at most 86400 seconds)",
            shorten(text.trim())
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A number (NaN and infinities included: the callers' range checks refuse them,
/// quoting the text as typed, since `{seconds}` would print 1e300 with 300 digits).
fn seconds_of(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{}' is not a number of seconds", shorten(text)))
}

/// Keeps a hostile argument out of an error line: at most [`MAX_QUOTED`] characters,
/// and control characters (a newline, a terminal escape) escaped, so the line stays
/// one line.
pub fn shorten(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
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
pub fn shorten_values(text: &str, values: &[&str]) -> String {
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
pub fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    line.chars().for_each(|c| push_escaped(&mut out, c));
    out
}

/// An error message as one safe line: `values` it may quote whole are shortened and
/// control characters escaped.
pub fn one_line(message: &str, values: &[&str]) -> String {
    escape_controls(&shorten_values(message, values))
}

/// Clap's error as one line: huge argument values cut short and control characters
/// escaped (clap quotes values whole; a newline in one would split the line), and a
/// first line ending in a colon completed with the line it announces.
pub fn error_line(e: &clap::Error) -> String {
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

/// Parses the command line into `A`; on `--help` or `--version` prints them and
/// returns `Err(ExitCode::SUCCESS)`, on a bad argument prints `program: <one line>`
/// on stderr and returns `Err(ExitCode::from(2))`.
///
/// # Errors
///
/// The exit code to return, as above.
pub fn parse_args<A: clap::Parser>(program: &str) -> Result<A, ExitCode> {
    match A::try_parse() {
        Ok(args) => Ok(args),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{program}: {}", error_line(&e));
            Err(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_checked_and_quoted_short() {
        assert_eq!(parse_seconds("0").unwrap(), Duration::ZERO);
        assert!(parse_positive_seconds("0").is_err());
        assert_eq!(
            parse_positive_seconds(" 1.5 ").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_seconds("86401").unwrap_err().contains("out of range"));
        assert!(parse_seconds("nan").unwrap_err().contains("out of range"));
        assert!(parse_seconds("inf").is_err());
        let huge = format!("1{}", "0".repeat(300));
        let message = parse_seconds(&huge).unwrap_err();
        assert!(message.len() < 100, "{message}");
        assert!(parse_seconds("ten")
            .unwrap_err()
            .contains("'ten' is not a number"));
    }

    #[test]
    fn hostile_values_stay_on_one_short_line() {
        let long = "x".repeat(10_000);
        assert_eq!(shorten(&long).len(), MAX_QUOTED + 3);
        assert_eq!(shorten("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        let line = one_line(&format!("cannot use {long}\nplease"), &[&long]);
        assert!(!line.contains('\n') && line.len() < 80, "{line}");
    }

    #[derive(Debug, clap::Parser)]
    struct Args {
        #[arg(long, value_parser = parse_seconds, allow_hyphen_values = true)]
        delay: Duration,
    }

    #[test]
    fn clap_errors_become_one_line() {
        use clap::Parser;
        let e = Args::try_parse_from(["p", "--delay", "-5\nrm -rf"]).unwrap_err();
        let line = error_line(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--delay"), "{line}");
        let e = Args::try_parse_from(["p"]).unwrap_err();
        assert!(error_line(&e).contains("--delay"), "{}", error_line(&e));
    }
}
