//! The `tokio-server` binary as a subprocess on loopback, on both runtimes: start
//! line, each mode, clean exit on SIGTERM.

use bench_support::served::{PoemFile, Served};

const EXE: &str = env!("CARGO_BIN_EXE_tokio-server");

#[test]
fn poetry_on_both_runtimes() {
    let poem = PoemFile::new("tokio-poetry", 3 << 20);
    for runtime in ["multi", "current"] {
        let server = Served::start(
            EXE,
            &["--runtime", runtime, "poetry", "--port", "0", poem.arg()],
        );
        assert!(server.start_line.starts_with("Serving poetry on port "));
        for _ in 0..3 {
            assert!(server.get_poem() == poem.bytes, "{runtime}");
        }
        assert!(server.terminate().success(), "{runtime}");
    }
}

#[test]
fn echo_on_both_runtimes() {
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    for runtime in ["multi", "current"] {
        let server = Served::start(EXE, &["echo", "--port", "0", "--runtime", runtime]);
        assert_eq!(
            server.start_line,
            format!("Serving echo on port {}.\n", server.port)
        );
        assert_eq!(server.echo(b"hello"), b"hello");
        assert!(server.echo(&big) == big, "{runtime}");
        assert!(server.terminate().success(), "{runtime}");
    }
}
