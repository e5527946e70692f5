//! The StageReport driver: a window ticker and a QUIC sender joined by a bounded,
//! drop-oldest buffer. Nothing here is on the request path; the request path only pushes events
//! onto the lock-free queue of [`crate::window::WindowFeed`].
//!
//! Transport: one QUIC connection to the agent, one unidirectional stream per report carrying
//! exactly one sair-wire frame, then `finish`. A stream per report costs nothing at one report
//! per second, needs no resynchronisation after a lost or reset stream, and lets the agent
//! read each report independently.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::Counter;
use sair_wire::transport::{Identity, TransportError, Trust, client_config, client_endpoint};
use sair_wire::{Envelope, MAX_FRAME_BYTES, Message, StageReport};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::window::WindowFeed;

/// Bounded buffer of reports waiting to be sent; full → the oldest is dropped and counted.
#[derive(Debug)]
pub struct ReportBuffer {
    queue: Mutex<VecDeque<StageReport>>,
    capacity: usize,
    notify: Notify,
    dropped: Counter,
}

impl ReportBuffer {
    pub fn new(capacity: usize, dropped: Counter) -> Arc<Self> {
        Arc::new(ReportBuffer {
            queue: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
            notify: Notify::new(),
            dropped,
        })
    }

    pub fn push(&self, r: StageReport) {
        self.put(r, false);
    }

    /// Puts a report that failed to send back at the front (it is the oldest).
    fn push_front(&self, r: StageReport) {
        self.put(r, true);
    }

    fn put(&self, r: StageReport, front: bool) {
        if let Ok(mut q) = self.queue.lock() {
            if q.len() >= self.capacity {
                if front {
                    // The returning report is itself the oldest: drop it.
                    self.dropped.increment(1);
                    return;
                }
                q.pop_front();
                self.dropped.increment(1);
            }
            if front {
                q.push_front(r);
            } else {
                q.push_back(r);
            }
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<StageReport> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }

    pub fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn next(&self, stop: &CancellationToken) -> Option<StageReport> {
        loop {
            let notified = self.notify.notified();
            if let Some(r) = self.pop() {
                return Some(r);
            }
            tokio::select! {
                _ = notified => {}
                _ = stop.cancelled() => return None,
            }
        }
    }
}

/// Closes a window every `interval` and buffers its report.
pub async fn tick(
    window: Arc<WindowFeed>,
    admission: Arc<Admission>,
    buffer: Option<Arc<ReportBuffer>>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let Some(report) = window.take(Instant::now(), admission.queue_depth(), unix_ms) else {
            continue;
        };
        if let Some(b) = &buffer {
            b.push(report);
        }
    }
}

/// Where and how to send reports.
#[derive(Debug, Clone)]
pub struct AgentTarget {
    pub address: String,
    pub server_name: String,
    pub trust: Trust,
    pub identity: Option<Identity>,
}

impl AgentTarget {
    /// Builds the client TLS configuration (fails early, before anything binds).
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TransportError> {
        client_config(&self.trust, self.identity.as_ref())
    }
}

/// Why one connection attempt or send failed (logged, then retried with backoff).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("could not resolve {0}")]
    Resolve(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("frame: {0}")]
    Frame(#[from] sair_wire::FrameError),
    #[error("stream: {0}")]
    Closed(#[from] quinn::ClosedStream),
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Sends buffered reports to the agent until `stop`, reconnecting with exponential backoff.
pub async fn send_loop(target: AgentTarget, buffer: Arc<ReportBuffer>, stop: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let conn = tokio::select! {
            c = connect(&target) => c,
            _ = stop.cancelled() => return,
        };
        let (endpoint, conn) = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(agent = %target.address, error = %e, retry_in = ?backoff, "agent unreachable");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        tracing::info!(agent = %target.address, "connected to agent");
        backoff = BACKOFF_MIN;
        loop {
            let Some(report) = buffer.next(&stop).await else {
                conn.close(0u32.into(), b"sidecar stopping");
                endpoint.wait_idle().await;
                return;
            };
            if let Err(e) = send_one(&conn, &report).await {
                tracing::warn!(agent = %target.address, error = %e, "report send failed; reconnecting");
                buffer.push_front(report);
                break;
            }
        }
    }
}

async fn connect(target: &AgentTarget) -> Result<(quinn::Endpoint, quinn::Connection), SendError> {
    let addr: SocketAddr = tokio::net::lookup_host(target.address.as_str())
        .await
        .map_err(|_| SendError::Resolve(target.address.clone()))?
        .next()
        .ok_or_else(|| SendError::Resolve(target.address.clone()))?;
    let endpoint = client_endpoint(addr, target.client_config()?)?;
    let conn = endpoint.connect(addr, &target.server_name)?.await?;
    Ok((endpoint, conn))
}

async fn send_one(conn: &quinn::Connection, report: &StageReport) -> Result<(), SendError> {
    let mut stream = conn.open_uni().await?;
    let envelope = Envelope::new(Message::StageReport(report.clone()));
    sair_wire::frame::write(&mut stream, &envelope, MAX_FRAME_BYTES).await?;
    stream.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests;
