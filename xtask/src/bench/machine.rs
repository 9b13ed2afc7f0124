//! The machine a run was made on, and the tools it offers for pinning processes to a
//! CPU (`taskset`) and raising their descriptor limits (`prlimit`).

use std::process::{Command, Stdio};

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) kernel: String,
    pub(crate) cpu: String,
    pub(crate) date: String,
}

impl Machine {
    pub(crate) fn read() -> Machine {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| output_of("uname", &["-r"]))
            .unwrap_or_else(|| "unknown".to_owned());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| cpu_model(&s))
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let date = output_of("date", &["-u"]).unwrap_or_else(|| "unknown date".to_owned());
        Machine {
            cores,
            kernel,
            cpu,
            date,
        }
    }
}

/// The first `model name` in `/proc/cpuinfo`.
pub(crate) fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The one-minute load average (`/proc/loadavg`): how busy the machine was with
/// other work, which the figures cannot see.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The commit the binaries were built from, and whether tracked files differed from
/// it (others' work in progress is built too).
pub(crate) fn source_state() -> String {
    let root = crate::util::root();
    let root = root.to_string_lossy();
    let Some(commit) = output_of("git", &["-C", &root, "rev-parse", "--short", "HEAD"]) else {
        return "unknown (no git)".to_owned();
    };
    match output_of(
        "git",
        &["-C", &root, "status", "--porcelain", "--untracked-files=no"],
    ) {
        Some(_) => format!("commit {commit}, with uncommitted changes to tracked files"),
        None => format!("commit {commit}"),
    }
}

/// The trimmed stdout of a command that succeeded.
pub(crate) fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Whether `program --version` runs.
pub(crate) fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The hard limit on open files this process has (`ulimit -Hn`).
pub(crate) fn hard_nofile() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// Whether `prlimit` can give a child `n` descriptors: it can lower limits, but
/// raising the hard limit needs `CAP_SYS_RESOURCE`, which a container's root may lack.
pub(crate) fn can_give_nofile(n: u64) -> bool {
    Command::new("prlimit")
        .args([&format!("--nofile={n}:{n}"), "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How many local ports a client may connect from (`ip_local_port_range`): the most
/// connections one loopback address can open to one server port.
pub(crate) fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u64>());
    let (low, high) = (it.next()?.ok()?, it.next()?.ok()?);
    Some(high.saturating_sub(low) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: Other\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn reads_this_machine() {
        let m = Machine::read();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
    }
}
