//! The one accept loop: on an accept error (EMFILE, ENFILE, ENOBUFS, a reset connection) it
//! logs and counts the error and sleeps, doubling from 1 ms up to 1 s, instead of spinning on
//! a listener that cannot accept. A success resets the backoff.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The first backoff after an accept error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(1);
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Exponential backoff state: 1 ms, 2 ms, 4 ms, … capped at 1 s (sans-IO).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The pause before retrying after one more failure.
    pub fn fail(&mut self) -> Duration {
        let d = self.next.unwrap_or(BACKOFF_MIN);
        self.next = Some((d * 2).min(BACKOFF_MAX));
        d
    }

    /// Forgets earlier failures.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

/// Accepts the next connection. Never returns an error: failures are logged, counted in
/// [`crate::metrics::ACCEPT_ERRORS_TOTAL`] and retried after a backoff.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    retry(|| listener.accept()).await
}

/// The loop of [`accept`] over any fallible accept (tests drive it with a failing one).
pub async fn retry<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let mut backoff = Backoff::default();
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                let pause = backoff.fail();
                metrics::counter!(crate::metrics::ACCEPT_ERRORS_TOTAL).increment(1);
                tracing::warn!(error = %e, backoff = ?pause, "accept failed; backing off");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
