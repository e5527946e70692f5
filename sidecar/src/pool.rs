//! Keep-alive HTTP/1.1 connections to the model server and the next-stage replicas, each
//! exchange driven on the task of the request that uses it.
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

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::chain;
use crate::layer::collect;

type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// One HTTP/1.1 connection: the request half and the connection future that does its IO.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended (peer closed or IO failed). Dropping the driver
    /// is what tells `sender` the connection is gone (its readiness never resolves otherwise).
    driver: Option<Driver>,
    idle_since: Instant,
}

/// How an exchange failed.
enum Failure {
    /// The request never left: the connection was already closed. Safe to send elsewhere.
    NotSent(Box<Request<Full<Bytes>>>, String),
    /// The request may have reached the peer.
    Failed(String),
}

impl Conn {
    async fn connect(authority: &Authority, timeout: Duration) -> Result<Conn, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| format!("connect to {authority} timed out after {timeout:?}"))?
            .map_err(|e| format!("connect to {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| chain(&e))?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(driver)),
            idle_since: Instant::now(),
        })
    }

    /// Polls `fut` to completion while driving this connection's IO on the same task.
    async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        poll_fn(|cx| {
            // Driver first: it notices a peer that closed the idle connection before the
            // request is handed over, and writes/reads what the exchange asked for. A few
            // rounds save the self-wake that each hand-over between the two would cost.
            for _ in 0..3 {
                if let Some(d) = driver
                    && d.as_mut().poll(cx).is_ready()
                {
                    // Closed or failed: the exchange learns why through its own channel.
                    *driver = None;
                }
                if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                    return Poll::Ready(out);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Sends `req`, reads the whole response body (at most `max_body` bytes).
    async fn exchange(
        &mut self,
        req: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<Response<Bytes>, Failure> {
        let Conn { sender, driver, .. } = self;
        let exchange = async move {
            if let Err(e) = poll_fn(|cx| sender.poll_ready(cx)).await {
                return Err(Failure::NotSent(Box::new(req), chain(&e)));
            }
            let resp =
                sender
                    .try_send_request(req)
                    .await
                    .map_err(|mut e| match e.take_message() {
                        Some(req) => Failure::NotSent(Box::new(req), chain(e.error())),
                        None => Failure::Failed(chain(e.error())),
                    })?;
            let (parts, body) = resp.into_parts();
            let body = collect(body, max_body).await.map_err(Failure::Failed)?;
            Ok(Response::from_parts(parts, body))
        };
        Self::drive(driver, exchange).await
    }
}

/// Idle connections to one `host:port`.
#[derive(Default)]
struct HostPool {
    idle: Mutex<Vec<Conn>>,
}

impl HostPool {
    fn take(&self, idle_timeout: Duration) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        // Most recently used first: the warmest connection, and stale ones age out below.
        while let Some(c) = idle.pop() {
            if c.driver.is_some() && c.idle_since.elapsed() < idle_timeout {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, mut c: Conn) {
        c.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(c);
        }
    }

    fn evict(&self, idle_timeout: Duration) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| c.driver.is_some() && c.idle_since.elapsed() < idle_timeout);
        }
    }
}

/// Keep-alive connections to the model server (a dedicated pool) and to next-stage replicas.
pub struct Pool {
    upstream: Authority,
    upstream_host: HeaderValue,
    upstream_idle: HostPool,
    others: Mutex<HashMap<Authority, Arc<HostPool>>>,
    idle_timeout: Duration,
    connect_timeout: Duration,
    max_body_bytes: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(upstream: Authority, max_body_bytes: usize) -> Self {
        let upstream_host = HeaderValue::from_str(upstream.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Pool {
            upstream,
            upstream_host,
            upstream_idle: HostPool::default(),
            others: Mutex::new(HashMap::new()),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes,
        }
    }

    /// The model server's `host:port`.
    pub fn upstream(&self) -> &Authority {
        &self.upstream
    }

    fn host_pool(&self, authority: &Authority) -> Option<Arc<HostPool>> {
        let mut others = self.others.lock().ok()?;
        Some(others.entry(authority.clone()).or_default().clone())
    }

    /// Sends `req` (origin-form URI) to the model server and reads the whole answer.
    pub async fn send_upstream(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, String> {
        req.headers_mut()
            .insert(header::HOST, self.upstream_host.clone());
        self.send_on(&self.upstream_idle, &self.upstream, req).await
    }

    /// Sends `req` (origin-form URI) to `authority` and reads the whole answer.
    pub async fn send_to(
        &self,
        authority: &Authority,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, String> {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, host);
        }
        let pool = self
            .host_pool(authority)
            .ok_or_else(|| "connection pool poisoned".to_owned())?;
        self.send_on(&pool, authority, req).await
    }

    async fn send_on(
        &self,
        pool: &HostPool,
        authority: &Authority,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, String> {
        loop {
            let (mut conn, reused) = match pool.take(self.idle_timeout) {
                Some(c) => (c, true),
                None => (Conn::connect(authority, self.connect_timeout).await?, false),
            };
            match conn.exchange(req, self.max_body_bytes).await {
                Ok(resp) => {
                    if conn.driver.is_some() {
                        pool.put(conn);
                    }
                    return Ok(resp);
                }
                // A reused connection the peer had closed: the request never left; try the
                // next idle connection or a new one. Each pass drops one connection, so this
                // ends after a fresh connection at the latest.
                Err(Failure::NotSent(r, _)) if reused => req = *r,
                Err(Failure::NotSent(_, why) | Failure::Failed(why)) => return Err(why),
            }
        }
    }

    /// Drops connections idle for longer than the idle timeout (called periodically, so a
    /// peer's half-closed sockets do not linger while there is no traffic).
    pub fn evict_idle(&self) {
        self.upstream_idle.evict(self.idle_timeout);
        if let Ok(mut others) = self.others.lock() {
            for p in others.values() {
                p.evict(self.idle_timeout);
            }
            others.retain(|_, p| p.idle.lock().map(|i| !i.is_empty()).unwrap_or(false));
        }
    }
}
