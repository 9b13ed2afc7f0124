//! The `raw-mio-server` binary as a subprocess on loopback: start line, each mode,
//! clean exit on SIGTERM, one-line errors.

use std::process::Command;

use bench_support::served::{PoemFile, Served};

const EXE: &str = env!("CARGO_BIN_EXE_raw-mio-server");

#[test]
fn poetry_from_memory() {
    // Bigger than a socket buffer, so the writable path runs too.
    let poem = PoemFile::new("raw-mio-poetry", 3 << 20);
    let server = Served::start(EXE, &["poetry", "--port", "0", poem.arg()]);
    assert!(server.start_line.starts_with("Serving poetry on port "));
    for _ in 0..3 {
        assert!(server.get_poem() == poem.bytes);
    }
    assert!(server.terminate().success());
}

#[test]
fn poetry_with_sendfile() {
    let poem = PoemFile::new("raw-mio-sendfile", 3 << 20);
    let server = Served::start(EXE, &["poetry", "--port", "0", "--sendfile", poem.arg()]);
    for _ in 0..3 {
        assert!(server.get_poem() == poem.bytes);
    }
    assert!(server.terminate().success());
}

#[test]
fn bare_sendfile_and_pread_serve_one_client_after_another() {
    let poem = PoemFile::new("raw-mio-bare", 3 << 20);
    for (mode, line) in [
        (None, "Serving bare poetry (sendfile) on port "),
        (Some("--pread"), "Serving bare poetry (pread) on port "),
    ] {
        let mut args = vec!["bare", "--port", "0"];
        args.extend(mode);
        args.push(poem.arg());
        let server = Served::start(EXE, &args);
        assert!(server.start_line.starts_with(line), "{}", server.start_line);
        // A client that leaves at once (the harness's probe) does not stop it.
        drop(server.connect());
        for _ in 0..3 {
            assert!(server.get_poem() == poem.bytes);
        }
        assert!(server.terminate().success());
    }
}

#[test]
fn echo_big_and_small() {
    let server = Served::start(EXE, &["echo", "--port", "0"]);
    assert_eq!(
        server.start_line,
        format!("Serving echo on port {}.\n", server.port)
    );
    assert_eq!(server.echo(b"hello"), b"hello");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    assert!(server.echo(&big) == big);
    assert!(server.terminate().success());
}

#[test]
fn a_missing_file_is_one_line_and_failure() {
    let out = Command::new(EXE)
        .args(["poetry", "--port", "0", "/nonexistent/poem.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("raw-mio-server: cannot read /nonexistent/poem.txt"));
    assert_eq!(stderr.lines().count(), 1);
}
