//! Workspace integration harness: builders that start real SAIR processes on loopback, and an
//! [`assert_eventually!`] whose patience is set by `SAIR_TEST_PATIENCE_SECONDS`.
//!
//! It must not reimplement component logic: tests talk to real binaries over real protocols.
//! Every child process is killed when its guard drops, so a failing test leaves nothing behind.

#![forbid(unsafe_code)]

pub mod binary;
pub mod emulator;
pub mod http;
pub mod process;

pub use binary::binary;
pub use process::{Proc, free_port};

/// How long `assert_eventually!` waits before failing (default 30 s; raise it on slow CI).
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
