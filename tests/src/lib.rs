//! Workspace integration harness, shared by the crates' own integration tests: builders that
//! start real SAIR processes on loopback port 0 and read their bound-address line, in the
//! manner of
//!
//! ```no_run
//! let stage = sair_tests::stage().cpu_ms(1.0).run();
//! let sidecar = sair_tests::sidecar().upstream(&stage).run();
//! let r = sair_tests::http::request(sidecar.listen(), "GET", "/", b"");
//! ```
//!
//! plus `sair demo` runs ([`demo`]), binary lookup ([`binary()`]), a bounded runner ([`run_bounded`], [`loadgen()`]), a
//! scripted misbehaving HTTP server ([`scripted`]), a tiny HTTP client ([`http`]), the GPU
//! emulator's driver folder ([`emulator`]) and an [`assert_eventually!`] whose patience is set
//! by `SAIR_TEST_PATIENCE_SECONDS`.
//!
//! It must not reimplement component logic, and it must not depend on the component crates
//! (sidecar, node agent, coordinator), so that each of them can dev-depend on it: tests talk
//! to real binaries over real protocols. Every child process is killed when its guard drops,
//! so a failing test leaves nothing behind.

#![forbid(unsafe_code)]

pub mod agent;
pub mod binary;
pub mod bound;
pub mod demo;
pub mod emulator;
pub mod http;
pub mod launch;
pub mod loadgen;
pub mod process;
pub mod scripted;
pub mod sidecar;
pub mod stage;

pub use agent::{Agent, AgentBuilder, agent};
pub use binary::binary;
pub use bound::Bound;
pub use launch::{Launch, LaunchError, Role, Running, Transport};
pub use loadgen::{LoadgenRun, loadgen};
pub use process::{Finished, Proc, free_port, run_bounded, scratch};
pub use sidecar::{Sidecar, SidecarBuilder, Upstream, sidecar};
pub use stage::{Stage, StageBuilder, stage};

/// How long `assert_eventually!` and the builders wait before failing (default 30 s; raise it
/// on slow CI with `SAIR_TEST_PATIENCE_SECONDS`).
pub fn patience() -> std::time::Duration {
    let secs = std::env::var("SAIR_TEST_PATIENCE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(30.0);
    std::time::Duration::from_secs_f64(secs)
}

/// Polls an expression until it is true or the patience runs out, then panics with the message.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $crate::patience();
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("condition not met within {:?}: {}", $crate::patience(), format!($($msg)+));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }};
}
