//! Starting the servers and the clients of one run: the command lines of every
//! server, CPU pinning (`taskset -c`), descriptor limits (`prlimit --nofile`), and
//! clients whose stdout lines arrive through a channel so that every wait is bounded.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::result::{Fields, ParseError};
use crate::util::{root, Guarded};

/// The CPU the servers run on, when pinning.
pub(crate) const SERVER_CPU: u32 = 0;
/// The CPU the clients (loadgen) run on, when pinning.
pub(crate) const CLIENT_CPU: u32 = 1;

/// Why one run produced no figures. The run is noted in the table as failed and the
/// others go on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunFailure(pub(crate) String);

impl fmt::Display for RunFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ParseError> for RunFailure {
    fn from(e: ParseError) -> Self {
        RunFailure(e.to_string())
    }
}

/// Where the programs are and how to start them.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    /// `target/release` or `target/debug`.
    pub(crate) bin: PathBuf,
    /// Pin servers to CPU 0 and clients to CPU 1 with `taskset -c`.
    pub(crate) pin: bool,
    /// `prlimit` is there to raise descriptor limits beyond our own hard limit.
    pub(crate) prlimit: bool,
    /// The Python with Twisted, when there is one.
    pub(crate) python: Option<PathBuf>,
    /// Where the servers' stderr goes, one file per server.
    pub(crate) logs: PathBuf,
    /// Servers start with `LD_PRELOAD` = this library and `TWISTIER_TCP_CC` = this
    /// algorithm (the `tcp-cc-preload` shim), when set.
    pub(crate) preload: Option<(PathBuf, String)>,
}

/// What a server is asked to serve.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Service<'a> {
    /// A poem, as fast as the client reads.
    Poetry(&'a Path),
    /// Echo.
    Echo,
    /// UDP echo: every datagram back to its sender.
    UdpEcho,
    /// Our server's slow mode: `num_bytes` every `delay` seconds.
    Slow {
        poem: &'a Path,
        num_bytes: u32,
        delay: &'a str,
        max_connections: u32,
    },
    /// The transform service (netstring requests, `cummingsify`).
    Transform,
    /// A caching poetry proxy in front of the poetry server on this port.
    Proxy { upstream: u16 },
}

/// A started server.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) guarded: Guarded,
    pub(crate) port: u16,
    pub(crate) pid: u32,
}

impl Env {
    /// `program args`, behind `taskset -c CPU` and `prlimit --nofile=N:N --` when asked
    /// and available.
    pub(crate) fn command(
        &self,
        cpu: Option<u32>,
        nofile: Option<u64>,
        program: &Path,
        args: &[OsString],
    ) -> Command {
        let mut line: Vec<OsString> = Vec::new();
        if let (true, Some(cpu)) = (self.pin, cpu) {
            line.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
        }
        if let (true, Some(n)) = (self.prlimit, nofile) {
            line.extend([
                "prlimit".into(),
                format!("--nofile={n}:{n}").into(),
                "--".into(),
            ]);
        }
        line.push(program.into());
        line.extend(args.iter().cloned());
        let mut command = Command::new(&line[0]);
        command.args(&line[1..]).current_dir(root());
        command
    }

    /// The program and arguments that make `server` serve `service`; `None` when that
    /// server has no such service (or no Python for Twisted).
    pub(crate) fn server_line(
        &self,
        server: &str,
        service: Service<'_>,
    ) -> Option<(PathBuf, Vec<OsString>)> {
        match server {
            "ours" | "ours-copy" | "ours-kbuf" => self.ours_line(server, service),
            "raw-mio" | "raw-mio-sendfile" | "bare-sendfile" | "bare-pread" => {
                self.raw_mio_line(server, service)
            }
            "tokio-multi" | "tokio-current" => self.tokio_line(server, service),
            "twisted" => self.twisted_line(service),
            _ => None,
        }
    }

    /// Our servers: `poetry-server` (`ours-copy`: without sendfile; `ours-kbuf`: with
    /// the kernel's send buffer autotuning for every connection), the echo example,
    /// the UDP echo, the transform server and the proxy.
    fn ours_line(&self, server: &str, service: Service<'_>) -> Option<(PathBuf, Vec<OsString>)> {
        let mut args = port_zero();
        let program = match (server, service) {
            ("ours" | "ours-copy" | "ours-kbuf", Service::Poetry(poem)) => {
                args.extend(["--delay".into(), "0".into()]);
                if server == "ours-copy" {
                    args.push("--no-sendfile".into());
                }
                if server == "ours-kbuf" {
                    args.extend(["--send-buffer".into(), "kernel".into()]);
                }
                args.push(poem.into());
                "poetry-server"
            }
            (
                "ours",
                Service::Slow {
                    poem,
                    num_bytes,
                    delay,
                    max_connections,
                },
            ) => {
                args.extend([
                    "--num-bytes".into(),
                    num_bytes.to_string().into(),
                    "--delay".into(),
                    delay.into(),
                    "--max-connections".into(),
                    max_connections.to_string().into(),
                ]);
                args.push(poem.into());
                "poetry-server"
            }
            ("ours", Service::Echo) => {
                // The protocol crate's example takes its port as its one argument.
                return Some((
                    self.bin.join("examples").join("echo_server"),
                    vec!["0".into()],
                ));
            }
            ("ours", Service::UdpEcho) => "udp-echo-server",
            ("ours", Service::Transform) => "poetry-transform-server",
            ("ours", Service::Proxy { upstream }) => {
                args.push(upstream.to_string().into());
                "poetry-proxy"
            }
            _ => return None,
        };
        Some((self.bin.join(program), args))
    }

    /// The mio baseline (`raw-mio-sendfile`: poems with sendfile), and the bare
    /// references with no event loop (`bare-sendfile`, `bare-pread`).
    fn raw_mio_line(&self, server: &str, service: Service<'_>) -> Option<(PathBuf, Vec<OsString>)> {
        let mut args: Vec<OsString> = match (server, service) {
            ("bare-sendfile" | "bare-pread", Service::Poetry(poem)) => {
                let mut args = vec!["bare".into()];
                args.extend(port_zero());
                if server == "bare-pread" {
                    args.push("--pread".into());
                }
                args.push(poem.into());
                return Some((self.bin.join("raw-mio-server"), args));
            }
            ("raw-mio" | "raw-mio-sendfile", Service::Poetry(poem)) => {
                let mut args = vec!["poetry".into()];
                args.extend(port_zero());
                if server == "raw-mio-sendfile" {
                    args.push("--sendfile".into());
                }
                args.push(poem.into());
                return Some((self.bin.join("raw-mio-server"), args));
            }
            ("raw-mio", Service::UdpEcho) => vec!["udp-echo".into()],
            ("raw-mio", Service::Echo) => vec!["echo".into()],
            _ => return None,
        };
        args.extend(port_zero());
        Some((self.bin.join("raw-mio-server"), args))
    }

    /// The tokio peer, on its multi-threaded or current-thread runtime.
    fn tokio_line(&self, server: &str, service: Service<'_>) -> Option<(PathBuf, Vec<OsString>)> {
        let runtime = server.trim_start_matches("tokio-");
        let mut args: Vec<OsString> = vec!["--runtime".into(), runtime.into()];
        match service {
            Service::Poetry(poem) => {
                args.push("poetry".into());
                args.extend(port_zero());
                args.push(poem.into());
            }
            Service::Echo => {
                args.push("echo".into());
                args.extend(port_zero());
            }
            Service::UdpEcho => {
                args.push("udp-echo".into());
                args.extend(port_zero());
            }
            _ => return None,
        }
        Some((self.bin.join("tokio-server"), args))
    }

    /// Twisted's servers, run by the Python that has Twisted.
    fn twisted_line(&self, service: Service<'_>) -> Option<(PathBuf, Vec<OsString>)> {
        let python = self.python.clone()?;
        let dir = root().join("bench/peers/twisted");
        let (script, extra): (&str, Option<OsString>) = match service {
            Service::Poetry(poem) => ("poetry_server.py", Some(poem.into())),
            Service::Echo => ("echo_server.py", None),
            Service::Transform => ("transform_server.py", None),
            Service::Proxy { upstream } => (
                "poetry_proxy.py",
                Some(format!("127.0.0.1:{upstream}").into()),
            ),
            _ => return None,
        };
        let mut args = vec![dir.join(script).into()];
        args.extend(port_zero());
        args.extend(extra);
        Some((python, args))
    }

    /// Starts `server` serving `service` on CPU 0, with `nofile` descriptors if given,
    /// and waits for its port.
    pub(crate) fn start(
        &self,
        server: &str,
        service: Service<'_>,
        nofile: Option<u64>,
    ) -> Result<Server, RunFailure> {
        let (program, args) = self
            .server_line(server, service)
            .ok_or_else(|| RunFailure(format!("{server} cannot serve this")))?;
        let mut command = self.command(Some(SERVER_CPU), nofile, &program, &args);
        if let Some((library, algorithm)) = &self.preload {
            command
                .env("LD_PRELOAD", library)
                .env("TWISTIER_TCP_CC", algorithm);
        }
        let log = self.logs.join(format!("{server}.log"));
        let stderr = File::create(&log)
            .map_err(|e| RunFailure(format!("cannot create {}: {e}", log.display())))?;
        command.stderr(stderr);
        let (guarded, port) = Guarded::start_server(server, command, Duration::from_secs(20))
            .map_err(|e| RunFailure(format!("{e} (its stderr: {})", log.display())))?;
        let pid = guarded.child.id();
        Ok(Server { guarded, port, pid })
    }
}

impl Server {
    /// Stops the server and says whether it exited cleanly, as every server promises on
    /// SIGTERM.
    pub(crate) fn stop(mut self) -> Result<(), RunFailure> {
        self.guarded.stop(Duration::from_secs(5));
        match self.guarded.child.try_wait() {
            Ok(Some(status)) if status.success() => Ok(()),
            Ok(Some(status)) => Err(RunFailure(format!(
                "{} exited with {status} when stopped",
                self.guarded.name
            ))),
            _ => Err(RunFailure(format!("{} did not stop", self.guarded.name))),
        }
    }
}

/// A client program (loadgen, timers-bench) whose stdout lines arrive on a channel.
#[derive(Debug)]
pub(crate) struct Client {
    guarded: Guarded,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    seen: Vec<String>,
}

impl Client {
    /// Starts `program args` (on `cpu` when pinning), stdin piped when `stdin` is set.
    pub(crate) fn spawn(
        env: &Env,
        name: &str,
        cpu: u32,
        program: &Path,
        args: &[OsString],
        nofile: Option<u64>,
        stdin: bool,
    ) -> Result<Client, RunFailure> {
        let mut command = env.command(Some(cpu), nofile, program, args);
        command.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        Client::spawn_command(name, command)
    }

    /// As [`spawn`](Self::spawn), reading `stdin` (the far end of another program's
    /// pipe, say).
    pub(crate) fn spawn_reading(
        env: &Env,
        name: &str,
        cpu: u32,
        program: &Path,
        args: &[OsString],
        stdin: Stdio,
    ) -> Result<Client, RunFailure> {
        let mut command = env.command(Some(cpu), None, program, args);
        command.stdin(stdin);
        Client::spawn_command(name, command)
    }

    fn spawn_command(name: &str, mut command: Command) -> Result<Client, RunFailure> {
        command.stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| RunFailure(format!("cannot start {name}: {e}")))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Client {
            guarded: Guarded {
                child,
                name: name.to_owned(),
            },
            lines,
            stdin,
            seen: Vec::new(),
        })
    }

    /// Waits until a line starts with `prefix`, at most until `deadline`.
    pub(crate) fn wait_for_line(
        &mut self,
        prefix: &str,
        deadline: Instant,
    ) -> Result<String, RunFailure> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => {
                    self.seen.push(line.clone());
                    return Ok(line);
                }
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(RunFailure(format!(
                        "{} did not print {prefix:?} in time",
                        self.guarded.name
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunFailure(format!(
                        "{} ended without printing {prefix:?}",
                        self.guarded.name
                    )))
                }
            }
        }
    }

    /// Writes one line to the client's stdin.
    pub(crate) fn say(&mut self, line: &str) -> Result<(), RunFailure> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| RunFailure("stdin was not piped".into()))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| RunFailure(format!("cannot write to {}: {e}", self.guarded.name)))
    }

    /// Waits (until `deadline`) for the client to end and returns its `RESULT`
    /// fields, whether or not it judged the run `ok`. A client still running at the
    /// deadline is stopped.
    pub(crate) fn finish(mut self, deadline: Instant) -> Result<Fields, RunFailure> {
        drop(self.stdin.take());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(RunFailure(format!(
                        "{} still running at its deadline; stopped",
                        self.guarded.name
                    )))
                }
            }
        }
        // Stdout is closed: the process is exiting.
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.guarded.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Fields::from_output(&self.seen.join("\n"))?)
    }
}

/// The fields, if the client judged the run `ok`; its `problem` otherwise.
pub(crate) fn require_ok(what: &str, fields: Fields) -> Result<Fields, RunFailure> {
    if fields.bool("ok") == Some(false) {
        let problem = fields.str("problem").unwrap_or("not ok").to_owned();
        return Err(RunFailure(format!("{what}: {problem}")));
    }
    Ok(fields)
}

/// The number `key` of a result, or a failure naming it.
pub(crate) fn number(fields: &Fields, key: &str) -> Result<f64, RunFailure> {
    fields
        .num(key)
        .ok_or_else(|| RunFailure(format!("the RESULT has no number {key}")))
}

/// `--port 0`: every server picks a free port and prints it.
fn port_zero() -> Vec<OsString> {
    vec!["--port".into(), "0".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            bin: PathBuf::from("/t/release"),
            pin: true,
            prlimit: true,
            python: None,
            logs: PathBuf::from("/t/logs"),
            preload: None,
        }
    }

    fn line(command: &Command) -> Vec<String> {
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn pins_and_raises_limits_in_front_of_the_program() {
        let c = env().command(Some(0), Some(60_000), Path::new("/t/srv"), &["-x".into()]);
        assert_eq!(
            line(&c),
            [
                "taskset",
                "-c",
                "0",
                "prlimit",
                "--nofile=60000:60000",
                "--",
                "/t/srv",
                "-x"
            ]
        );
        let plain = Env {
            pin: false,
            prlimit: false,
            ..env()
        };
        assert_eq!(
            line(&plain.command(Some(1), Some(10), Path::new("p"), &[])),
            ["p"]
        );
    }

    #[test]
    fn server_lines() {
        let e = env();
        let poem = Path::new("/d/poem");
        let show = |server, service| {
            e.server_line(server, service).map(|(p, a)| {
                std::iter::once(p.into_os_string())
                    .chain(a)
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        assert_eq!(
            show("ours-copy", Service::Poetry(poem)).unwrap(),
            "/t/release/poetry-server --port 0 --delay 0 --no-sendfile /d/poem"
        );
        assert_eq!(
            show("raw-mio-sendfile", Service::Poetry(poem)).unwrap(),
            "/t/release/raw-mio-server poetry --port 0 --sendfile /d/poem"
        );
        assert_eq!(
            show("tokio-current", Service::Echo).unwrap(),
            "/t/release/tokio-server --runtime current echo --port 0"
        );
        assert_eq!(
            show("ours", Service::Echo).unwrap(),
            "/t/release/examples/echo_server 0"
        );
        assert_eq!(
            show("ours", Service::Transform).unwrap(),
            "/t/release/poetry-transform-server --port 0"
        );
        assert_eq!(
            show("ours", Service::Proxy { upstream: 7 }).unwrap(),
            "/t/release/poetry-proxy --port 0 7"
        );
        assert!(show("tokio-current", Service::Transform).is_none());
        assert_eq!(show("twisted", Service::Echo), None, "no Python");
        assert_eq!(show("raw-mio-sendfile", Service::Echo), None);
        assert_eq!(
            show("ours", Service::UdpEcho).unwrap(),
            "/t/release/udp-echo-server --port 0"
        );
        assert_eq!(
            show("tokio-multi", Service::UdpEcho).unwrap(),
            "/t/release/tokio-server --runtime multi udp-echo --port 0"
        );
        assert_eq!(
            show("raw-mio", Service::UdpEcho).unwrap(),
            "/t/release/raw-mio-server udp-echo --port 0"
        );
        let slow = Service::Slow {
            poem,
            num_bytes: 10,
            delay: "0.1",
            max_connections: 5,
        };
        assert_eq!(
            show("ours", slow).unwrap(),
            "/t/release/poetry-server --port 0 --num-bytes 10 --delay 0.1 --max-connections 5 /d/poem"
        );
        assert_eq!(show("ours-copy", slow), None);
        assert_eq!(show("ours-copy", Service::Echo), None);
        assert_eq!(
            show("ours-kbuf", Service::Poetry(poem)).unwrap(),
            "/t/release/poetry-server --port 0 --delay 0 --send-buffer kernel /d/poem"
        );
        assert_eq!(show("nobody", Service::Echo), None);
    }

    #[test]
    fn twisted_server_lines() {
        let e = Env {
            python: Some(PathBuf::from("/py")),
            ..env()
        };
        let show = |service| {
            let (program, args) = e.server_line("twisted", service)?;
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    let a = a.to_string_lossy();
                    a.rsplit_once("bench/peers/twisted/")
                        .map_or(a.to_string(), |(_, script)| script.to_owned())
                })
                .collect();
            Some(format!("{} {}", program.display(), args.join(" ")))
        };
        let poem = Path::new("/d/poem");
        assert_eq!(
            show(Service::Poetry(poem)).unwrap(),
            "/py poetry_server.py --port 0 /d/poem"
        );
        assert_eq!(show(Service::Echo).unwrap(), "/py echo_server.py --port 0");
        assert_eq!(
            show(Service::Transform).unwrap(),
            "/py transform_server.py --port 0"
        );
        assert_eq!(
            show(Service::Proxy { upstream: 7 }).unwrap(),
            "/py poetry_proxy.py --port 0 127.0.0.1:7"
        );
        assert_eq!(show(Service::UdpEcho), None);
    }

    #[test]
    fn require_ok_passes_the_problem_on() {
        let bad = Fields::parse(r#"{"mode":"poems","ok":false,"problem":"2 failed"}"#).unwrap();
        assert_eq!(
            require_ok("loadgen poems", bad),
            Err(RunFailure("loadgen poems: 2 failed".into()))
        );
        let good = Fields::parse(r#"{"ok":true,"rate":2.5}"#).unwrap();
        assert_eq!(number(&require_ok("x", good).unwrap(), "rate"), Ok(2.5));
    }
}
