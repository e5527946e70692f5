//! Keep-alive HTTP/1.1 connections to the model server and the next-stage replicas
//! ([`UpstreamPool`]), each exchange driven on the task of the request that uses it, and the
//! typed [`UpstreamError`] of an exchange.
//!
//! hyper-util's pooled client runs every connection on a task of its own: a request is handed
//! to that task through a channel and the response handed back, two cross-task wake-ups (often
//! cross-thread, a futex each) per request. Here an idle connection is taken out of the pool,
//! its hyper `Connection` future is polled *inside* the request's own future next to the
//! exchange, and the connection goes back to the pool when the response body has ended. Nothing
//! polls an idle connection; a connection the peer closed while idle is noticed when it is
//! next taken (its driver completes before the request is written) and the request moves to
//! another connection, so a stale keep-alive connection never fails a request. Exchanges that
//! fail after the request was written are not retried (a model request is not known to be
//! idempotent), as before.

mod conn;
mod h2;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;

use hyper::body::Incoming;

use self::conn::{Conn, Failure};
use self::h2::H2Conn;
use crate::body::BodyError;
use crate::budget::{Budget, Reservation};
use crate::display::ErrorChain;
use crate::metrics::ErrorSource;
use crate::retry::{ConnectRetry, Retrying};

/// Whether an answer may be forwarded as a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Always read the whole body (a chained stage posts it on to the next stage).
    Buffer,
    /// Stream an answer that streams (see [`streams`]); buffer the rest.
    Auto,
}

/// An answer read whole, or one whose body is still to come.
#[derive(Debug)]
pub enum Answer {
    Whole {
        resp: Response<Bytes>,
        /// When the first body byte arrived (`None`: empty body).
        first_byte: Option<Instant>,
        /// The body's bytes in the buffer budget.
        hold: Reservation,
    },
    /// The head; the body streams (its connection is driven by a task of its own).
    Streaming(Response<Incoming>),
}

/// Whether an answer streams: an event stream or gRPC (whatever its framing), or a body of
/// unknown length (chunked, or delimited by the connection's close). Sized answers are
/// buffered — up to `--max-body-bytes`, 502 beyond, as before — because model servers' sized
/// answers are small JSON documents, and buffering them is what puts the exact service time in
/// the Server-Timing *header*, which every client reads; a streamed answer can carry it only in
/// trailers, which most HTTP/1 clients never ask for.
pub fn streams<B: http_body::Body>(resp: &Response<B>) -> bool {
    let streaming_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            starts_with_ignore_case(ct, "text/event-stream")
                || starts_with_ignore_case(ct, "application/grpc")
        });
    streaming_type || resp.body().size_hint().exact().is_none()
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Why an exchange with the model server or a next-stage replica failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made (refused, unreachable, no such host).
    #[error("connect to {authority}: {source}")]
    Connect {
        authority: Authority,
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection was not made within the connect timeout.
    #[error("connect to {authority} timed out after {after:?}")]
    ConnectTimeout {
        authority: Authority,
        after: Duration,
    },
    /// The HTTP exchange failed: handshake, reset, closed mid-answer, a malformed answer.
    #[error("{}", ErrorChain(.0))]
    Connection(#[source] hyper::Error),
    /// The response body could not be read whole (too large, or the stream failed).
    #[error("response {0}")]
    Body(#[source] BodyError),
    /// No complete answer within the upstream timeout.
    #[error("no answer within {after:?}")]
    Timeout { after: Duration },
}

/// What kind of failure an [`UpstreamError`] is: the metric reason, whichever peer it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Nothing listens there (connection refused).
    Refused,
    /// Any other connect failure.
    Unreachable,
    /// Connect or answer took longer than allowed.
    Timeout,
    /// The response body exceeds the limit.
    Oversized,
    /// The connection failed mid-exchange.
    Broken,
    /// The answer did not fit the sidecar's buffer budget (`--max-buffered-bytes`).
    OverBudget,
}

impl UpstreamError {
    /// Whether the request was certainly never written: the connection could not be made.
    /// Only these are retried ([`crate::retry`]).
    pub fn before_sent(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. }
        )
    }

    pub fn kind(&self) -> UpstreamErrorKind {
        match self {
            UpstreamError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                UpstreamErrorKind::Refused
            }
            UpstreamError::Connect { .. } => UpstreamErrorKind::Unreachable,
            UpstreamError::ConnectTimeout { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Body(BodyError::Timeout { .. }) => UpstreamErrorKind::Timeout,
            UpstreamError::Connection(e) if e.is_timeout() => UpstreamErrorKind::Timeout,
            UpstreamError::Connection(_)
            | UpstreamError::Body(BodyError::Read(_) | BodyError::Malformed(_)) => {
                UpstreamErrorKind::Broken
            }
            UpstreamError::Body(BodyError::TooLarge { .. }) => UpstreamErrorKind::Oversized,
            UpstreamError::Body(BodyError::OverBudget { .. }) => UpstreamErrorKind::OverBudget,
        }
    }
}

/// Where an exchange goes.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// The model server this sidecar fronts (`--upstream`).
    Model,
    /// A next-stage replica.
    Next(&'a Authority),
}

/// Idle connections to one `host:port`.
#[derive(Default)]
struct HostPool {
    idle: Mutex<Vec<Conn>>,
}

/// Locks `m`, also when a panic elsewhere poisoned it: the guarded collections are never left
/// half-updated (single push/pop/retain calls).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HostPool {
    fn take(&self, idle_timeout: Duration) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        // Most recently used first: the warmest connection, and stale ones age out below.
        while let Some(c) = idle.pop() {
            if c.is_open() && c.idle_since.elapsed() < idle_timeout {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, mut c: Conn) {
        c.idle_since = std::time::Instant::now();
        lock(&self.idle).push(c);
    }

    fn evict(&self, idle_timeout: Duration) {
        lock(&self.idle).retain(|c| c.is_open() && c.idle_since.elapsed() < idle_timeout);
    }
}

/// Keep-alive connections to the model server (a dedicated pool) and to next-stage replicas.
pub struct UpstreamPool {
    upstream: Authority,
    upstream_host: HeaderValue,
    upstream_idle: HostPool,
    /// The h2c connection to the model server (gRPC), made on first use.
    upstream_h2: H2Conn,
    others: Mutex<HashMap<Authority, Arc<HostPool>>>,
    idle_timeout: Duration,
    connect_timeout: Duration,
    exchange_timeout: Duration,
    max_body_bytes: usize,
    budget: Arc<Budget>,
    /// Connect retries toward the model server (`--connect-retry-for`); next-stage retries
    /// are the chain's, which picks a replica again for each.
    retry: ConnectRetry,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl UpstreamPool {
    /// A pool for the model server at `upstream`; every exchange (connect included) must end
    /// within `exchange_timeout`, and response bodies are limited to `max_body_bytes`.
    pub fn new(upstream: Authority, max_body_bytes: usize, exchange_timeout: Duration) -> Self {
        let upstream_host = HeaderValue::from_str(upstream.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        UpstreamPool {
            upstream,
            upstream_host,
            upstream_idle: HostPool::default(),
            upstream_h2: H2Conn::default(),
            others: Mutex::new(HashMap::new()),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            exchange_timeout,
            max_body_bytes,
            budget: Budget::new(usize::MAX),
            retry: ConnectRetry::disabled(ErrorSource::Upstream),
        }
    }

    /// A pool with the same peer, limits, budget and retry policy and no connections yet:
    /// each serving thread of `--runtime per-core` has its own, so a connection is only ever
    /// driven by the thread whose IO driver it is registered with.
    pub fn sibling(&self) -> Self {
        UpstreamPool {
            upstream: self.upstream.clone(),
            upstream_host: self.upstream_host.clone(),
            upstream_idle: HostPool::default(),
            upstream_h2: H2Conn::default(),
            others: Mutex::new(HashMap::new()),
            idle_timeout: self.idle_timeout,
            connect_timeout: self.connect_timeout,
            exchange_timeout: self.exchange_timeout,
            max_body_bytes: self.max_body_bytes,
            budget: self.budget.clone(),
            retry: self.retry.clone(),
        }
    }

    /// Connects to the model server that fail before the request is written are retried
    /// under `retry`, within the exchange timeout.
    pub fn with_connect_retry(mut self, retry: ConnectRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Buffered answers take their bytes from `budget` (`--max-buffered-bytes`).
    pub fn with_budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = budget;
        self
    }

    /// The response body limit of buffered answers.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// How long an exchange may take: a buffered answer whole, a streamed one to its end.
    pub fn exchange_timeout(&self) -> Duration {
        self.exchange_timeout
    }

    /// The model server's `host:port`.
    pub fn upstream(&self) -> &Authority {
        &self.upstream
    }

    fn host_pool(&self, authority: &Authority) -> Arc<HostPool> {
        lock(&self.others)
            .entry(authority.clone())
            .or_default()
            .clone()
    }

    /// Sends `req` (origin-form URI) to `peer` and reads the whole answer, within the
    /// exchange timeout.
    pub async fn send(
        &self,
        peer: Peer<'_>,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, UpstreamError> {
        match self.fetch(peer, req, Mode::Buffer).await? {
            Answer::Whole { resp, .. } => Ok(resp),
            // Mode::Buffer never streams; read it whole anyway rather than fail.
            Answer::Streaming(resp) => {
                let (parts, body) = resp.into_parts();
                let body = crate::body::read_to_end(body, self.max_body_bytes)
                    .await
                    .map_err(UpstreamError::Body)?;
                Ok(Response::from_parts(parts, body))
            }
        }
    }

    /// Sends `req` (origin-form URI) to `peer`; the answer's head (and, unless it streams
    /// under `mode`, its whole body) must come within the exchange timeout.
    pub async fn fetch(
        &self,
        peer: Peer<'_>,
        mut req: Request<Full<Bytes>>,
        mode: Mode,
    ) -> Result<Answer, UpstreamError> {
        let exchange = async {
            match peer {
                Peer::Model => {
                    req.headers_mut()
                        .insert(header::HOST, self.upstream_host.clone());
                    let retry = Some(self.retry.start());
                    self.send_on(&self.upstream_idle, &self.upstream, req, mode, retry)
                        .await
                }
                Peer::Next(authority) => {
                    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                        req.headers_mut().insert(header::HOST, host);
                    }
                    let pool = self.host_pool(authority);
                    self.send_on(&pool, authority, req, mode, None).await
                }
            }
        };
        tokio::time::timeout(self.exchange_timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Timeout {
                    after: self.exchange_timeout,
                })
            })
    }

    /// Sends `req` to the model server over h2c (gRPC); as [`UpstreamPool::fetch`].
    pub async fn fetch_h2(
        &self,
        mut req: Request<Full<Bytes>>,
        mode: Mode,
    ) -> Result<Answer, UpstreamError> {
        // HTTP/2 carries the target as :scheme and :authority: the URI must be absolute.
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        if let Ok(uri) = http::Uri::builder()
            .scheme("http")
            .authority(self.upstream.clone())
            .path_and_query(path)
            .build()
        {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = http::Version::HTTP_2;
        let exchange = async {
            let resp = self
                .upstream_h2
                .send(
                    &self.upstream,
                    self.connect_timeout,
                    req,
                    self.retry.start(),
                )
                .await?;
            if mode == Mode::Auto && streams(&resp) {
                return Ok(Answer::Streaming(resp));
            }
            let (parts, body) = resp.into_parts();
            let mut hold = self.budget.reserve();
            let body = crate::body::read_buffered(body, self.max_body_bytes, &mut hold)
                .await
                .map_err(UpstreamError::Body)?;
            Ok(Answer::Whole {
                resp: Response::from_parts(parts, body.bytes),
                first_byte: body.first_byte,
                hold,
            })
        };
        tokio::time::timeout(self.exchange_timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Timeout {
                    after: self.exchange_timeout,
                })
            })
    }

    async fn send_on(
        &self,
        pool: &HostPool,
        authority: &Authority,
        mut req: Request<Full<Bytes>>,
        mode: Mode,
        mut retry: Option<Retrying<'_>>,
    ) -> Result<Answer, UpstreamError> {
        loop {
            let (mut conn, reused) = match pool.take(self.idle_timeout) {
                Some(c) => (c, true),
                None => match Conn::connect(authority, self.connect_timeout).await {
                    Ok(c) => (c, false),
                    // Nothing was written: wait for the peer to come (back), if allowed.
                    Err(e) => match retry.as_mut() {
                        Some(r) if e.before_sent() => {
                            if r.pause(&e).await {
                                continue;
                            }
                            return Err(e);
                        }
                        _ => return Err(e),
                    },
                },
            };
            match conn
                .exchange(req, self.max_body_bytes, &self.budget, mode)
                .await
            {
                Ok(resp) => {
                    if conn.is_open() {
                        pool.put(conn);
                    }
                    return Ok(resp);
                }
                // A reused connection the peer had closed: the request never left; try the
                // next idle connection or a new one. Each pass drops one connection, so this
                // ends after a fresh connection at the latest.
                Err(Failure::NotSent(r, _)) if reused => req = *r,
                Err(Failure::NotSent(_, e) | Failure::Failed(e)) => return Err(e),
            }
        }
    }

    /// Drops connections idle for longer than the idle timeout (called periodically, so a
    /// peer's half-closed sockets do not linger while there is no traffic).
    pub fn evict_idle(&self) {
        self.upstream_idle.evict(self.idle_timeout);
        let mut others = lock(&self.others);
        for p in others.values() {
            p.evict(self.idle_timeout);
        }
        others.retain(|_, p| !lock(&p.idle).is_empty());
    }
}

#[cfg(test)]
mod tests;
