//! The shutdown signal: SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C).

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM.
    Terminate,
    /// SIGINT.
    Interrupt,
}

/// Resolves on the first SIGTERM or SIGINT. Needs a Tokio runtime with signals enabled. If
/// the SIGTERM handler cannot be installed, logs it and waits for SIGINT only.
pub async fn signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "SIGINT handler failed; waiting for SIGTERM");
                        term.recv().await;
                        Signal::Terminate
                    } else {
                        Signal::Interrupt
                    }
                }
                _ = term.recv() => Signal::Terminate,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; only SIGINT stops the process");
            match tokio::signal::ctrl_c().await {
                Ok(()) => Signal::Interrupt,
                Err(e) => {
                    tracing::error!(error = %e, "no signal handler at all; never stopping on a signal");
                    std::future::pending().await
                }
            }
        }
    };
    tracing::info!(signal = ?sig, "shutting down");
    sig
}
