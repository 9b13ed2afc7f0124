//! What the bulk scenario needs to be fair: the congestion control each server's
//! sockets really use (read from outside with `ss -ti`), what this machine lets a
//! process choose, and a page cache known to be warm (or known to be cold).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::machine::output_of;
use super::runner::RunFailure;

/// The algorithm every server is given for the "same for all" rows: on loopback it
/// neither paces (as BBR does, a timer per few packets) nor needs privileges (Linux
/// lets anyone pick it unless `tcp_allowed_congestion_control` says otherwise).
pub(crate) const SAME_FOR_ALL: &str = "reno";

/// The kernel's congestion-control settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// `tcp_congestion_control`: what a socket gets unless it asks.
    pub(crate) default: String,
    /// `tcp_available_congestion_control`: what the kernel has loaded.
    pub(crate) available: Vec<String>,
    /// `tcp_allowed_congestion_control`: what a process without `CAP_NET_ADMIN` may
    /// pick.
    pub(crate) allowed: Vec<String>,
}

impl Settings {
    /// This machine's, or `None` without `/proc/sys/net/ipv4`.
    pub(crate) fn read() -> Option<Settings> {
        let read = |name: &str| {
            std::fs::read_to_string(Path::new("/proc/sys/net/ipv4").join(name))
                .ok()
                .map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        };
        Some(Settings {
            default: read("tcp_congestion_control")?.into_iter().next()?,
            available: read("tcp_available_congestion_control")?,
            allowed: read("tcp_allowed_congestion_control").unwrap_or_default(),
        })
    }

    /// One line for the report: the default and who may pick what.
    pub(crate) fn describe(&self) -> String {
        format!(
            "system default {}; the kernel has {}; an unprivileged process may pick {}",
            self.default,
            self.available.join(", "),
            if self.allowed.is_empty() {
                "none".to_owned()
            } else {
                self.allowed.join(", ")
            }
        )
    }
}

/// The algorithms named in `ss -ti` output, in order, once each: a token that is one
/// of `known` (the info line reads e.g. `ts sack reno wscale:7,7 ...`).
pub(crate) fn algorithms_in(ss_output: &str, known: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for token in ss_output.split_whitespace() {
        if known.iter().any(|k| k == token) && !found.iter().any(|f| f == token) {
            found.push(token.to_owned());
        }
    }
    found
}

/// Whether `ss -ti` output shows bytes sent: a server only writes to a connection it
/// has accepted, so by then the shim (which acts inside `accept`) has done its work.
/// (A connection still in the accept queue is already established, with the
/// listener's algorithm.)
pub(crate) fn has_sent(ss_output: &str) -> bool {
    ss_output.split_whitespace().any(|token| {
        token
            .strip_prefix("bytes_sent:")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    })
}

/// Connects to the server on `port`, waits (at most 2 s) until `ss` shows the
/// server's side of that connection sending, and returns the congestion control the
/// server's socket uses. The probe connection is then dropped; the server sees its
/// client go, and this waits (at most 2 s) until its side is gone too, so that the
/// pages it was sending are free again.
pub(crate) fn server_algorithm(port: u16, known: &[String]) -> Result<String, RunFailure> {
    let probe = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| RunFailure(format!("probe connection to port {port}: {e}")))?;
    let filter = format!("( sport = :{port} )");
    let deadline = Instant::now() + Duration::from_secs(2);
    let outcome = loop {
        let out = Command::new("ss")
            .args(["-tin", "state", "established", &filter])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let text = match out {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => break Err(format!("ss failed ({})", out.status)),
            Err(e) => break Err(format!("cannot run ss: {e}")),
        };
        let sending = has_sent(&text);
        match algorithms_in(&text, known).as_slice() {
            [one] if sending => break Ok(one.clone()),
            [] | [_] if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            [] | [_] => break Err(format!("ss shows no sending connection on port {port}")),
            many => break Err(format!("ss shows several algorithms: {}", many.join(", "))),
        }
    };
    drop(probe);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let gone = Command::new("ss")
            .args(["-tn", "state", "established", &filter])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| !String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:"));
        if gone {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    outcome.map_err(RunFailure)
}

/// The bytes of `path` in the page cache, and its size, from `fincore`.
pub(crate) fn cached(path: &Path) -> Option<(u64, u64)> {
    let text = output_of(
        "fincore",
        &[
            "--bytes",
            "--noheadings",
            "--raw",
            "-o",
            "RES,SIZE",
            &path.to_string_lossy(),
        ],
    )?;
    parse_fincore(&text)
}

/// `RES SIZE` as fincore prints them with `--bytes --raw`.
pub(crate) fn parse_fincore(text: &str) -> Option<(u64, u64)> {
    let mut numbers = text.split_whitespace().map(|s| s.parse::<u64>());
    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
}

/// Reads `path` through and checks that all of it is in the page cache. Without
/// `fincore` it cannot check, and says so (`Ok(false)`).
pub(crate) fn warm(path: &Path) -> Result<bool, RunFailure> {
    let failed = |e: std::io::Error| RunFailure(format!("{}: {e}", path.display()));
    std::io::copy(
        &mut std::fs::File::open(path).map_err(failed)?,
        &mut std::io::sink(),
    )
    .map_err(failed)?;
    match cached(path) {
        None => Ok(false),
        Some((resident, size)) if resident == size => Ok(true),
        Some((resident, size)) => Err(RunFailure(format!(
            "page cache not warm after a read: {resident} of {size} bytes resident"
        ))),
    }
}

/// Drops `path` from the page cache (`dd iflag=nocache`, which asks the kernel with
/// `posix_fadvise(DONTNEED)`) after syncing it, and checks that at most 1% of it is
/// left; pages still held (by a socket buffer a moment ago) get more tries within
/// three seconds.
pub(crate) fn cool(path: &Path) -> Result<(), RunFailure> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match drop_cache(path) {
            Err(e) if Instant::now() < deadline && e.0.starts_with("the page cache") => {
                std::thread::sleep(Duration::from_millis(50));
            }
            outcome => return outcome,
        }
    }
}

/// How much of a dropped file may stay resident: 1%, or 2 MiB (pages the kernel has
/// not let go of a moment after the server that sent them stopped: one page still
/// held pins its whole folio, and a file read ahead in large steps sits in folios of up
/// to 2 MiB).
pub(crate) fn allowed_after_drop(size: u64) -> u64 {
    (size / 100).max(2 * 1024 * 1024)
}

fn drop_cache(path: &Path) -> Result<(), RunFailure> {
    // Dirty pages (a poem written a moment ago) cannot be dropped: write them first.
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| RunFailure(format!("cannot sync {}: {e}", path.display())))?;
    // The kernel drains only the calling CPU's batch of recently used pages before
    // dropping, and a page still in another CPU's batch stays: ask from every CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for cpu in 0..cpus {
        let status = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "dd"])
            .arg(format!("if={}", path.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| RunFailure(format!("cannot run taskset dd: {e}")))?;
        if !status.success() {
            return Err(RunFailure(format!(
                "dd iflag=nocache on CPU {cpu} failed ({status})"
            )));
        }
    }
    match cached(path) {
        None => Err(RunFailure(
            "no fincore: cannot check the page cache was dropped".into(),
        )),
        Some((resident, size)) if resident <= allowed_after_drop(size) => Ok(()),
        Some((resident, size)) => Err(RunFailure(format!(
            "the page cache could not be dropped here: {resident} of {size} bytes still resident"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_file_may_keep_one_percent_or_what_a_probe_pins() {
        assert_eq!(allowed_after_drop(4 << 20), 2 * 1024 * 1024);
        assert_eq!(allowed_after_drop(256 << 20), (256 << 20) / 100);
    }

    #[test]
    fn finds_the_algorithm_among_the_flags() {
        let known = ["reno", "bbr", "cubic"].map(str::to_owned);
        let out = "Recv-Q Send-Q Local Address:Port Peer Address:Port\n0 3793920 127.0.0.1:38681 127.0.0.1:52654\n\t ts sack reno wscale:10,10 rto:204 rtt:0.461/0.848\n";
        assert_eq!(algorithms_in(out, &known), ["reno"]);
        let bbr = "\t bbr wscale:7,7 bbr:(bw:1Gbps,mrtt:0.01) cwnd:10\n\t bbr wscale:7,7\n";
        assert_eq!(algorithms_in(bbr, &known), ["bbr"]);
        assert!(algorithms_in("no sockets", &known).is_empty());
    }

    #[test]
    fn sending_means_bytes_sent_above_zero() {
        assert!(has_sent(
            "\t reno wscale:10,10 bytes_sent:128512 bytes_acked:1"
        ));
        assert!(!has_sent("\t bbr wscale:10,10 bytes_acked:1"));
        assert!(!has_sent("\t bbr bytes_sent:0"));
    }

    #[test]
    fn fincore_lines() {
        assert_eq!(
            parse_fincore("67108864 67108864\n"),
            Some((67108864, 67108864))
        );
        assert_eq!(parse_fincore("12288 67108864"), Some((12288, 67108864)));
        assert_eq!(parse_fincore("x"), None);
    }

    #[test]
    fn this_machine_has_settings_with_its_default_available() {
        let s = Settings::read().expect("Linux has /proc/sys/net/ipv4");
        assert!(s.available.contains(&s.default), "{s:?}");
        assert!(s
            .describe()
            .starts_with(&format!("system default {}", s.default)));
    }
}
