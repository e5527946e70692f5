//! Receiving `StageReport`s from sidecars over QUIC (driver).
//!
//! A sidecar opens a connection and sends frames (`sair_wire::frame`) on unidirectional or
//! bidirectional streams — one report per stream or many in a row. Each frame is decoded with
//! the size limit checked first; a frame that does not decode is counted as invalid and ends
//! its stream (the framing is lost), never the connection or the agent. A report that fails
//! `StageReport::validate` is counted as invalid and not stored.

use crate::metrics::AgentMetrics;
use crate::reports::{Accepted, ReportStore};
use sair_wire::{MAX_FRAME_BYTES, Message};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Reports and invalid frames seen on one stream.
async fn read_stream<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    store: &Mutex<ReportStore>,
    metrics: &AgentMetrics,
) {
    loop {
        match sair_wire::frame::read(&mut r, MAX_FRAME_BYTES).await {
            Ok(None) => return,
            Ok(Some(env)) => match env.message {
                Message::StageReport(report) => {
                    let outcome = match store.lock() {
                        Ok(mut s) => s.accept(report.clone(), Instant::now()),
                        Err(poisoned) => {
                            poisoned.into_inner().accept(report.clone(), Instant::now())
                        }
                    };
                    match outcome {
                        Accepted::Stored { evicted } => {
                            metrics.reports_received.increment(1);
                            metrics.stage_report(&report);
                            if let Some(k) = evicted {
                                tracing::debug!(?k, "report key evicted (store full)");
                            }
                        }
                        Accepted::Invalid(why) => {
                            metrics.reports_invalid.increment(1);
                            tracing::debug!(reason = why, "invalid stage report refused");
                        }
                    }
                }
            },
            Err(e) => {
                metrics.reports_invalid.increment(1);
                tracing::debug!(error = %e, "undecodable frame; stream dropped");
                return;
            }
        }
    }
}

async fn connection(
    conn: quinn::Connection,
    store: Arc<Mutex<ReportStore>>,
    metrics: AgentMetrics,
) {
    loop {
        tokio::select! {
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    let (store, metrics) = (store.clone(), metrics.clone());
                    tokio::spawn(async move { read_stream(recv, &store, &metrics).await });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "report connection closed");
                    return;
                }
            },
            bi = conn.accept_bi() => match bi {
                Ok((_send, recv)) => {
                    let (store, metrics) = (store.clone(), metrics.clone());
                    tokio::spawn(async move { read_stream(recv, &store, &metrics).await });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "report connection closed");
                    return;
                }
            },
        }
    }
}

/// Accepts connections on `endpoint` until `stop` turns true, then closes the endpoint.
pub async fn serve(
    endpoint: quinn::Endpoint,
    store: Arc<Mutex<ReportStore>>,
    metrics: AgentMetrics,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(incoming) = incoming else { break };
        let (store, metrics) = (store.clone(), metrics.clone());
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => connection(conn, store, metrics).await,
                Err(e) => tracing::debug!(error = %e, "report handshake failed"),
            }
        });
    }
    endpoint.close(0u32.into(), b"agent shutting down");
}
