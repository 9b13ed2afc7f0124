//! Helpers the workspace's integration tests share (a dev-dependency only; no layer
//! depends on it), each written once:
//!
//! | module | what |
//! |---|---|
//! | [`peers`] | the missing-peer rule: Twisted or `nc` missing fails under `CI=true`, else a loud, counted skip |
//! | [`build`] | the workspace root, and `cargo build --example` for tests that run an example |
//! | [`mod@poems`] | the project's own poems (`poems/`) |
//! | [`bytes`] | deterministic pseudo-random bytes (xorshift) and a byte comparison that does not print megabytes |
//! | [`net`] | resets (`SO_LINGER` 0, through socket2), dead ports, the `on port N` of a start line |
//! | [`process`] | [`PATIENCE`], child processes killed on drop, bounded runs, the one-line refusal of bad arguments |
//! | [`server`] | our servers under test ([`Running`]: the start line's port, stdout line by line, SIGTERM), [`ScratchFile`] |
//!
//! ```no_run
//! # fn find_nc() -> Option<std::path::PathBuf> { None }
//! let Some(nc) = test_support::peer_or_skip("nc", find_nc(), "apt-get install netcat-openbsd")
//! else {
//!     return; // skipped, loudly and counted (never under CI=true)
//! };
//! # let _ = nc;
//! ```

pub mod build;
pub mod bytes;
pub mod net;
pub mod peers;
pub mod poems;
pub mod process;
pub mod server;

pub use build::{build_example, workspace};
pub use bytes::{assert_same_bytes, pseudo_random, Xorshift};
pub use net::{dead_port, parse_port, reset, tcp_state, TCP_ESTABLISHED};
pub use peers::{
    find_nc, nc_or_skip, peer_or_skip, skip, skip_log, twisted_peer, twisted_python,
    twisted_python_or_skip, under_ci,
};
pub use poems::{poem, poem_bytes, poems, poems_dir};
pub use process::{
    one_line_error, run_bounded, run_bounded_from, run_bounded_with_stdout, ChildGuard, Collected,
    PATIENCE,
};
pub use server::{Running, ScratchFile};
