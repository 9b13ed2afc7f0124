//! What a server costs, read from `/proc`: CPU time over all its threads, resident
//! memory (now and at its peak) and open descriptors.

use std::fs;
use std::process::Command;

/// CPU time the process `pid` has used, in nanoseconds: the sum of the first field of
/// `/proc/PID/task/*/schedstat` (time on the CPU, ns), or, without schedstat, of
/// `utime + stime` in `/proc/PID/task/*/stat` (clock ticks).
///
/// Threads that have exited are no longer counted; the servers measured keep theirs.
pub(crate) fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut from_schedstat = 0u64;
    let mut from_ticks = 0u64;
    let mut schedstat_everywhere = true;
    let mut any = false;
    for task in tasks.filter_map(Result::ok) {
        let dir = task.path();
        match fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| parse_schedstat(&s))
        {
            Some(ns) => from_schedstat += ns,
            None => schedstat_everywhere = false,
        }
        if let Some(ticks) = fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| parse_stat_ticks(&s))
        {
            from_ticks += ticks;
        }
        any = true;
    }
    if !any {
        None
    } else if schedstat_everywhere {
        Some(from_schedstat)
    } else {
        Some(from_ticks * (1_000_000_000 / clock_ticks_per_second()))
    }
}

/// The state letter of process `pid` (`R`, `S`, `Z` for one that has exited and
/// awaits its parent's wait, ...), from `/proc/PID/stat`.
pub(crate) fn state(pid: u32) -> Option<char> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].trim_start().chars().next()
}

/// The first field of a `schedstat` file: nanoseconds spent on the CPU.
pub(crate) fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `utime + stime` (fields 14 and 15) of a `stat` file, in clock ticks. The command
/// name (field 2) may hold spaces and parentheses, so fields count from its last `)`.
pub(crate) fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: field 3 (state) is fields[0], so field N is fields[N - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`, or 100 (Linux's USER_HZ) when it cannot be asked.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// A memory line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    parse_status_kib(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
    .map(|kib| kib * 1024)
}

/// The number of kB on the `key:` line of a `status` file.
pub(crate) fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// How many descriptors `pid` has open.
pub(crate) fn open_fds(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_first_field_is_cpu_nanoseconds() {
        assert_eq!(parse_schedstat("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn stat_ticks_survive_a_name_with_spaces_and_parens() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    37 5 0 0 20 0 3 0 100 1000 50 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(42));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_lines_in_kib() {
        let status = "Name:\tpoetry-server\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(1536));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_ns(pid).is_some());
        assert!(status_bytes(pid, "VmRSS").unwrap() > 0);
        assert!(open_fds(pid).unwrap() >= 3);
    }
}
