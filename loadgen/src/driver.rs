//! The open-loop driver: one loop that walks a seeded schedule (drawn lazily, so memory does
//! not grow with rate × duration), and a pool of HTTP/1.1 connections that the scheduled
//! requests borrow.
//!
//! The dispatcher (an OS thread that sleeps precisely between arrivals) never waits for a
//! response. At each intended send time it spawns the request onto the runtime
//! and moves on; the request borrows a free connection, and if none frees up within
//! `drop_after` the arrival is counted as dropped (never sent late without being counted).
//! Latency is measured from the intended send time, so a stalled server shows up as the full
//! stall in the tail (no coordinated omission); send lag (actual minus intended send time) is
//! recorded separately so the generator's own accuracy is visible.
//!
//! Bounds: the connections are opened in parallel, all within [`CONNECT_TIMEOUT`] (the target
//! is reachable when at least one opened); the dispatcher gives up on arrivals it reaches more
//! than [`BEHIND_GRACE`] after the end of the run (they are counted as undispatched, and the
//! generator fell behind); in-flight requests then get at most `drain`. A run therefore ends
//! within `duration + drain + CONNECT_TIMEOUT + BEHIND_GRACE`, plus the process's own start
//! and exit.

use crate::endpoints::{EndpointList, WAIT_FOR_ENTRIES};
use crate::pattern::Arrivals;
use crate::recorder::{ErrorKind, Recorder};
use crate::server_timing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Bound on resolving the target and opening the connections before the run (all of them
/// together: they are opened in parallel). Connections not open by then are opened lazily by
/// the requests that need them, within each request's own timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How late after the end of the run the dispatcher still sends a scheduled arrival; the
/// arrivals it reaches later are not sent but counted as undispatched.
pub const BEHIND_GRACE: Duration = Duration::from_millis(100);

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The target URL is not an `http://host:port/path` URL.
    #[error("target URL {url:?} is invalid: {reason}")]
    BadTarget {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("cannot resolve target host {host:?}")]
    Resolve {
        /// host:port.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// No TCP connection could be made before the run.
    #[error("target {addr} is unreachable (is the server running? no request was sent)")]
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
        /// The connect error.
        source: std::io::Error,
    },
    /// A `file:PATH` target listed no endpoint in time.
    #[error("target file {path} has no endpoint: {reason}")]
    NoEndpoints {
        /// The file.
        path: std::path::PathBuf,
        /// What was last seen.
        reason: String,
    },
    /// The connection was made but the HTTP/1.1 handshake failed.
    #[error("HTTP/1.1 handshake with {addr} failed")]
    Handshake {
        /// The address.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// What every request of a run sends.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The resolved address (for a `file:` target: the first entry when the run started).
    pub addr: SocketAddr,
    /// A `file:PATH` target: the entries requests are spread over (round-robin).
    pub endpoints: Option<Arc<EndpointList>>,
    /// Request method.
    pub method: http::Method,
    /// `Host` header value.
    pub host: http::HeaderValue,
    /// Path and query.
    pub path: http::uri::PathAndQuery,
    /// Extra headers.
    pub headers: http::HeaderMap,
    /// Request body (may be empty).
    pub body: Bytes,
}

impl Target {
    /// Parses `url` (`http://` only) and resolves its host; or, for `file:PATH`, reads the
    /// endpoints file, waiting up to [`WAIT_FOR_ENTRIES`] for it to list an entry (requests
    /// then go to path `/`, with the entry as `Host`).
    pub async fn resolve(
        url: &str,
        method: http::Method,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<Target, DriverError> {
        let bad = |reason| DriverError::BadTarget {
            url: url.to_owned(),
            reason,
        };
        if let Some(path) = url.strip_prefix("file:") {
            if path.is_empty() {
                return Err(bad("file: needs a path"));
            }
            let list = EndpointList::new(path);
            list.wait_for_entries(WAIT_FOR_ENTRIES)
                .await
                .map_err(|reason| DriverError::NoEndpoints {
                    path: path.into(),
                    reason,
                })?;
            let addr = list.pick().ok_or_else(|| DriverError::NoEndpoints {
                path: path.into(),
                reason: "the list emptied".into(),
            })?;
            return Ok(Target {
                url: url.to_owned(),
                addr,
                endpoints: Some(list),
                method,
                host: http::HeaderValue::from_static("localhost"),
                path: http::uri::PathAndQuery::from_static("/"),
                headers,
                body,
            });
        }
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// targets are supported"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = format!("{}:{port}", authority.host());
        let addr = tokio::net::lookup_host(&host)
            .await
            .map_err(|source| DriverError::Resolve {
                host: host.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| DriverError::Resolve {
                host: host.clone(),
                source: std::io::Error::other("no addresses"),
            })?;
        let host_value =
            http::HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        Ok(Target {
            url: url.to_owned(),
            addr,
            endpoints: None,
            method,
            host: host_value,
            path,
            headers,
            body,
        })
    }

    /// Where the next request goes: the URL's address, or the next entry of the file (`None`
    /// while the file lists nothing).
    pub fn pick(&self) -> Option<SocketAddr> {
        match &self.endpoints {
            None => Some(self.addr),
            Some(list) => list.pick(),
        }
    }

    fn request(&self, addr: SocketAddr) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = http::Uri::from(self.path.clone());
        let h = req.headers_mut();
        let host = match &self.endpoints {
            None => self.host.clone(),
            Some(_) => {
                http::HeaderValue::from_str(&addr.to_string()).unwrap_or_else(|_| self.host.clone())
            }
        };
        h.insert(http::header::HOST, host);
        for (k, v) in &self.headers {
            h.append(k, v.clone());
        }
        req
    }
}

type Conn = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Conn, DriverError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| DriverError::Unreachable { addr, source })?;
    handshake(addr, stream).await
}

async fn handshake(addr: SocketAddr, stream: TcpStream) -> Result<Conn, DriverError> {
    // Requests are small and latency-bound; Nagle would add up to 40 ms.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    let (send, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| DriverError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    });
    Ok(send)
}

/// `--connections` connection slots: a semaphore bounds concurrent requests, idle connections
/// wait in a stack (each with the address it is connected to, for `file:` targets) and are
/// reopened lazily when one broke.
#[derive(Debug)]
pub struct Pool {
    target: Target,
    permits: Semaphore,
    idle: Mutex<Vec<(SocketAddr, Conn)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Opens `connections` connections before the run, in parallel, each given until
    /// `deadline`. The target is reachable when at least one opened; the others are opened
    /// lazily by the requests that find no idle connection. When none opened, the first error
    /// is returned, so an unreachable target is reported before any request is scheduled.
    pub async fn connect(
        target: Target,
        connections: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Pool, DriverError> {
        let n = connections.max(1);
        let mut tries = JoinSet::new();
        for _ in 0..n {
            let addr = target.pick().unwrap_or(target.addr);
            tries.spawn(async move {
                match tokio::time::timeout_at(deadline, connect(addr)).await {
                    Ok(r) => r.map(|c| (addr, c)),
                    Err(_) => Err(DriverError::Unreachable {
                        addr,
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no connection within {CONNECT_TIMEOUT:?}"),
                        ),
                    }),
                }
            });
        }
        let mut idle = Vec::with_capacity(n);
        let mut first_error = None;
        while let Some(r) = tries.join_next().await {
            match r {
                Ok(Ok(c)) => idle.push(c),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => tracing::debug!(error = %e, "a connect task failed"),
            }
        }
        if idle.is_empty() {
            return Err(first_error.unwrap_or_else(|| DriverError::Unreachable {
                addr: target.addr,
                source: std::io::Error::other("no connection could be opened"),
            }));
        }
        if idle.len() < n {
            tracing::warn!(
                opened = idle.len(),
                wanted = n,
                error = first_error.as_ref().map(|e| match e {
                    DriverError::Unreachable { source, .. } => source.to_string(),
                    other => other.to_string(),
                }),
                "not every connection could be opened before the run; the rest are opened as requests need them"
            );
        }
        Ok(Pool {
            target,
            permits: Semaphore::new(n),
            idle: Mutex::new(idle),
        })
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// An idle connection to `addr`, if one waits.
    fn take_idle(&self, addr: SocketAddr) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        let i = idle.iter().rposition(|(a, _)| *a == addr)?;
        Some(idle.swap_remove(i).1)
    }
}

/// How requests are sent.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    /// Longest an arrival waits for a free connection before it is counted as dropped.
    pub drop_after: Duration,
    /// Per-request limit from the actual send to the end of the response body.
    pub timeout: Duration,
}

/// When the run ends: the schedule's end, `duration`, `max_requests` or the shutdown future,
/// whichever comes first; then in-flight requests get at most `drain` to finish.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// Scheduled length of the run.
    pub duration: Duration,
    /// At most this many arrivals are dispatched.
    pub max_requests: u64,
    /// Bound on the wait for in-flight requests after the last arrival.
    pub drain: Duration,
}

/// What the driver observed about the run as a whole.
#[derive(Debug, Clone, Copy)]
pub struct RunOutcome {
    /// From the start of the schedule to the end of the drain.
    pub elapsed: Duration,
    /// Arrivals dispatched (sent or dropped).
    pub dispatched: u64,
    /// True when the dispatcher was still behind the schedule [`BEHIND_GRACE`] after the end
    /// of the run and left the rest of it undispatched: the generator fell behind (never for
    /// an interrupted run, which stops on purpose).
    pub gave_up: bool,
    /// True when the shutdown future ended the run early.
    pub interrupted: bool,
}

#[derive(Debug)]
struct Shared {
    pool: Arc<Pool>,
    cfg: DriverConfig,
    rec: Arc<Mutex<Recorder>>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Sleeps the dispatcher thread until `t` (or until `stop` is set). `nanosleep` wakes within
/// the kernel's timer slack (50 µs by default), where tokio's timer rounds up to the next
/// millisecond; the thread never spins, so it does not steal the core from the runtime.
fn sleep_until(t: Instant, stop: &AtomicBool) {
    const CHECK: Duration = Duration::from_millis(50);
    loop {
        let now = Instant::now();
        if now >= t || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((t - now).min(CHECK));
    }
}

type Exchange = Result<(Conn, Vec<server_timing::Entry>), (ErrorKind, Option<Conn>)>;

async fn exchange(target: &Target, addr: SocketAddr, conn: Option<Conn>) -> Exchange {
    let mut c = match conn {
        Some(c) if !c.is_closed() => c,
        _ => connect(addr)
            .await
            .map_err(|_| (ErrorKind::Connect, None))?,
    };
    c.ready().await.map_err(|_| (ErrorKind::Send, None))?;
    let resp = c
        .send_request(target.request(addr))
        .await
        .map_err(|_| (ErrorKind::Send, None))?;
    let status = resp.status();
    let mut timings = Vec::new();
    for v in resp.headers().get_all("server-timing") {
        if let Ok(s) = v.to_str() {
            server_timing::parse_into(s, &mut timings);
        }
    }
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return Err((ErrorKind::Body, None));
        }
    }
    if status.is_success() {
        Ok((c, timings))
    } else {
        Err((ErrorKind::from_status(status.as_u16()), Some(c)))
    }
}

async fn one(shared: Arc<Shared>, intended: Instant, intended_s: f64) {
    let dispatch_lag = micros(intended.elapsed());
    let acquired = tokio::time::timeout(shared.cfg.drop_after, shared.pool.permits.acquire()).await;
    let Ok(Ok(permit)) = acquired else {
        lock(&shared.rec).dropped(intended_s, dispatch_lag);
        return;
    };
    lock(&shared.rec).sent(intended_s, dispatch_lag, micros(intended.elapsed()));
    // A `file:` target whose list is empty right now: the request fails at once as a connect
    // error rather than wait for an entry, so the schedule is kept.
    let Some(addr) = shared.pool.target.pick() else {
        lock(&shared.rec).error(intended_s, ErrorKind::Connect);
        drop(permit);
        return;
    };
    let conn = shared.pool.take_idle(addr);
    let result = tokio::time::timeout(
        shared.cfg.timeout,
        exchange(&shared.pool.target, addr, conn),
    )
    .await;
    let latency = micros(intended.elapsed());
    match result {
        Ok(Ok((c, timings))) => {
            lock(&shared.pool.idle).push((addr, c));
            lock(&shared.rec).completed(intended_s, latency, &timings);
        }
        Ok(Err((kind, c))) => {
            if let Some(c) = c {
                lock(&shared.pool.idle).push((addr, c));
            }
            lock(&shared.rec).error(intended_s, kind);
        }
        // The connection is mid-exchange; it is dropped and reopened by a later request.
        Err(_) => lock(&shared.rec).error(intended_s, ErrorKind::Timeout),
    }
    drop(permit);
}

/// What the dispatcher thread hands back: the request tasks, arrivals dispatched, and whether
/// it gave up on the rest of the schedule because it fell behind.
type Dispatched = (JoinSet<()>, u64, bool);

/// Walks the schedule on its own OS thread (precise sleeps, see [`sleep_until`]) and spawns
/// one task per arrival onto the runtime behind `handle`. Finished tasks are reaped as it goes.
fn dispatch(
    handle: tokio::runtime::Handle,
    shared: Arc<Shared>,
    schedule: Arrivals,
    stop: Stop,
    start: Instant,
    halt: Arc<AtomicBool>,
) -> Dispatched {
    let duration_s = stop.duration.as_secs_f64();
    let give_up_at = start + stop.duration + BEHIND_GRACE;
    let mut set = JoinSet::new();
    let mut dispatched = 0u64;
    let mut gave_up = false;
    for off in schedule {
        if off >= duration_s || dispatched >= stop.max_requests {
            break;
        }
        if Instant::now() > give_up_at {
            // Behind schedule past the end of the run: none of the rest is sent.
            gave_up = true;
            break;
        }
        let intended = start + Duration::from_secs_f64(off.max(0.0));
        sleep_until(intended, &halt);
        if halt.load(Ordering::Relaxed) {
            break;
        }
        dispatched += 1;
        set.spawn_on(one(shared.clone(), intended, off), &handle);
        while set.try_join_next().is_some() {}
    }
    (set, dispatched, gave_up)
}

/// Runs `schedule` (sorted offsets in seconds) against `pool` until `stop` or `shutdown`,
/// recording into `rec`. Requests still in flight after the drain are counted as
/// `unfinished` errors. Must be called inside a tokio runtime.
pub async fn run(
    pool: Arc<Pool>,
    cfg: DriverConfig,
    schedule: Arrivals,
    stop: Stop,
    rec: Arc<Mutex<Recorder>>,
    shutdown: impl Future<Output = ()>,
) -> RunOutcome {
    let shared = Arc::new(Shared {
        pool,
        cfg,
        rec: rec.clone(),
    });
    let start = Instant::now();
    let end = tokio::time::Instant::from_std(start + stop.duration);
    let halt = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::runtime::Handle::current();
    let h = halt.clone();
    let thread = std::thread::Builder::new()
        .name("sair-dispatch".into())
        .spawn(move || {
            let _ = tx.send(dispatch(handle, shared, schedule, stop, start, h));
        });
    let mut interrupted = false;
    tokio::pin!(shutdown);
    let dispatched = match thread {
        Ok(_) => {
            tokio::pin!(rx);
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    interrupted = true;
                    halt.store(true, Ordering::Relaxed);
                    rx.await.ok()
                }
                r = &mut rx => r.ok(),
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the dispatcher thread");
            None
        }
    };
    let (mut set, dispatched, gave_up) = dispatched.unwrap_or_else(|| (JoinSet::new(), 0, false));
    if !interrupted {
        tokio::select! {
            biased;
            () = &mut shutdown => interrupted = true,
            () = tokio::time::sleep_until(end) => {}
        }
    }
    let drained = tokio::time::timeout(stop.drain, async {
        while set.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
    let elapsed = start.elapsed();
    let mut r = lock(&rec);
    let c = r.counts();
    let unfinished = c.sent.saturating_sub(c.completed + c.errors);
    r.errors_untimed(ErrorKind::Unfinished, unfinished);
    RunOutcome {
        elapsed,
        dispatched,
        gave_up,
        interrupted,
    }
}
