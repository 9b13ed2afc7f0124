//! What the client prints: the poems and their headers, the summary, the timeline, and
//! the live progress lines.

use std::io::{self, Write};
use std::time::Duration;

use crate::client::{Outcome, Task};

/// The line naming a task above its poem (written to stderr, so stdout stays the
/// poems alone).
pub fn header(task: &Task) -> String {
    let bytes = task.poem.len();
    match &task.outcome {
        Outcome::Whole => format!(
            "Task {}: {bytes} bytes of poetry from {}",
            task.number, task.address
        ),
        Outcome::Incomplete(reason) => format!(
            "Task {}: INCOMPLETE poem from {}: {bytes} bytes arrived before {reason}",
            task.number, task.address
        ),
        Outcome::Refused(reason) => format!(
            "Task {}: REFUSED by {}: {reason} before a byte arrived",
            task.number, task.address
        ),
        Outcome::TimedOut => format!(
            "Task {}: TIMED OUT after {bytes} bytes of poetry from {}",
            task.number, task.address
        ),
        Outcome::Failed(reason) => format!(
            "Task {}: FAILED to connect to {} ({reason})",
            task.number, task.address
        ),
        Outcome::Pending => format!(
            "Task {}: still pending ({bytes} bytes) from {}",
            task.number, task.address
        ),
    }
}

/// The closing summary: poems received, failures, the bytes of the whole poems (the
/// ones printed; pieces of broken ones are not counted), elapsed time.
pub fn summary(tasks: &[Task], elapsed: Duration) -> String {
    let whole = tasks.iter().filter(|t| t.is_whole()).count();
    let failed = tasks.len() - whole;
    let bytes: usize = tasks
        .iter()
        .filter(|t| t.is_whole())
        .map(|t| t.poem.len())
        .sum();
    format!(
        "Got {whole} of {} poems ({failed} failed or incomplete), {bytes} bytes of whole poems in {:.3}s",
        tasks.len(),
        elapsed.as_secs_f64()
    )
}

/// Writes each poem that arrived whole to `poems` (stdout) under its header on
/// `notes` (stderr), in address order. Incomplete poems are never printed as if
/// whole: only their header says what arrived. A connection that failed has no
/// header: the factory said so when it happened, and a failure is told once.
///
/// # Errors
///
/// A failed or short write to `poems` (a full disk, a closed pipe): the run's output
/// is lost, so the caller must fail. Errors on `notes` are ignored (there is no one
/// left to tell).
pub fn print_poems(tasks: &[Task], poems: &mut dyn Write, notes: &mut dyn Write) -> io::Result<()> {
    for task in tasks {
        if !matches!(task.outcome, Outcome::Failed(_)) {
            let _ = writeln!(notes, "{}", header(task));
            let _ = notes.flush();
        }
        if task.is_whole() {
            poems.write_all(&task.poem)?;
            poems.flush()?;
        }
    }
    Ok(())
}

/// Redraws the live progress block in place: moves up over the `drawn` lines of the
/// last block, clears from there to the end of the screen, writes `notices` (they stay
/// above the block, as ordinary lines) and then the whole block `lines`. Returns how
/// many lines the new block takes, the `drawn` of the next call.
///
/// # Errors
///
/// Write errors of `out`.
pub fn redraw(
    out: &mut dyn Write,
    drawn: usize,
    notices: &[String],
    lines: &[String],
) -> io::Result<usize> {
    let mut frame = String::new();
    if drawn > 0 {
        frame.push_str(&format!("\x1b[{drawn}A"));
    }
    frame.push_str("\r\x1b[J");
    for line in notices.iter().chain(lines) {
        frame.push_str(line);
        frame.push('\n');
    }
    out.write_all(frame.as_bytes())?;
    out.flush()?;
    Ok(lines.len())
}

/// Draws which task received bytes when: one row per task, time across, `#` where
/// bytes arrived, `.` where the task was waiting, blank once it had ended. This is the
/// picture the tutorial draws by hand: the reactor interleaving the downloads.
pub fn timeline(tasks: &[Task], elapsed: Duration, width: usize) -> String {
    let width = width.max(10);
    let span = elapsed.as_secs_f64().max(1e-9);
    let column = |t: Duration| {
        ((t.as_secs_f64() / span) * width as f64)
            .floor()
            .min(width as f64 - 1.0) as usize
    };
    let mut out = format!(
        "Timeline over {:.3}s ({} columns of {:.1} ms):\n",
        span,
        width,
        span * 1000.0 / width as f64
    );
    for task in tasks {
        let end = task.finished.map_or(width - 1, column);
        let mut row: Vec<char> = (0..width)
            .map(|c| if c <= end { '.' } else { ' ' })
            .collect();
        for (at, _) in task.arrivals.records() {
            row[column(*at)] = '#';
        }
        let mark = match task.outcome {
            Outcome::Whole => "whole",
            Outcome::Incomplete(_) => "incomplete",
            Outcome::Refused(_) => "refused",
            Outcome::TimedOut => "timed out",
            Outcome::Failed(_) => "failed",
            Outcome::Pending => "pending",
        };
        out.push_str(&format!(
            "Task {:>3} |{}| {mark}\n",
            task.number,
            row.into_iter().collect::<String>()
        ));
    }
    out
}

/// One live progress line per task: bytes so far, rate, state.
pub fn progress_lines(tasks: &[Task], now: Duration) -> Vec<String> {
    tasks
        .iter()
        .map(|task| {
            let bytes = task.poem.len();
            let secs = task.finished.unwrap_or(now).as_secs_f64().max(1e-3);
            let rate = bytes as f64 / secs;
            let state = match &task.outcome {
                Outcome::Pending if bytes == 0 => "connecting",
                Outcome::Pending => "receiving",
                Outcome::Whole => "done",
                Outcome::Incomplete(_) => "incomplete",
                Outcome::Refused(_) => "refused",
                Outcome::TimedOut => "timed out",
                Outcome::Failed(_) => "failed",
            };
            format!(
                "Task {:>3} {:<28} {:>10} bytes {:>10.1} KB/s  {state}",
                task.number,
                task.address.to_string(),
                bytes,
                rate / 1024.0
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::PoemAddress;

    fn task(
        number: usize,
        outcome: Outcome,
        poem: &[u8],
        arrivals: &[(u64, usize)],
        finished: u64,
    ) -> Task {
        Task {
            number,
            address: PoemAddress {
                host: "127.0.0.1".into(),
                port: 10000 + number as u16,
            },
            poem: poem.to_vec(),
            outcome,
            arrivals: {
                let mut record = crate::client::Arrivals::default();
                for (ms, n) in arrivals {
                    record.push(Duration::from_millis(*ms), *n);
                }
                record
            },
            finished: Some(Duration::from_millis(finished)),
        }
    }

    #[test]
    fn only_whole_poems_reach_stdout() {
        let tasks = vec![
            task(1, Outcome::Whole, b"roses\n", &[(0, 6)], 10),
            task(
                2,
                Outcome::Incomplete("connection was lost: reset".into()),
                b"viol",
                &[(5, 4)],
                20,
            ),
            task(
                3,
                Outcome::Failed("connection was refused".into()),
                b"",
                &[],
                1,
            ),
        ];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_poems(&tasks, &mut out, &mut err).unwrap();
        assert_eq!(out, b"roses\n");
        let notes = String::from_utf8(err).unwrap();
        assert!(notes.contains("Task 1: 6 bytes of poetry from 127.0.0.1:10001"));
        assert!(notes.contains("Task 2: INCOMPLETE poem from 127.0.0.1:10002: 4 bytes arrived"));
        // The factory told the failed connection when it happened: not again.
        assert!(!notes.contains("Task 3"), "{notes}");
        // Only the whole poem's bytes are counted, and the summary says so.
        assert_eq!(
            summary(&tasks, Duration::from_millis(1500)),
            "Got 1 of 3 poems (2 failed or incomplete), 6 bytes of whole poems in 1.500s"
        );
    }

    #[test]
    fn timeline_marks_arrivals_in_their_column() {
        let tasks = vec![
            task(1, Outcome::Whole, b"ab", &[(0, 1), (90, 1)], 95),
            task(2, Outcome::Whole, b"c", &[(50, 1)], 50),
        ];
        let drawing = timeline(&tasks, Duration::from_millis(100), 10);
        let rows: Vec<&str> = drawing.lines().skip(1).collect();
        assert_eq!(rows[0], "Task   1 |#........#| whole");
        assert_eq!(rows[1], "Task   2 |.....#    | whole");
        assert_eq!(progress_lines(&tasks, Duration::from_millis(100)).len(), 2);
    }
}
