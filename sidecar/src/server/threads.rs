//! Per-core serving (`--runtime per-core`): the thread [`super::Sidecar::run`] runs on accepts
//! every connection and either serves it itself or hands it to one of the other serving
//! threads, each a current-thread tokio runtime of its own, whichever has the fewest
//! connections. The connection then lives on that thread to its end, with its requests, their
//! upstream connections (each thread has its own pool) and their timers: a request never
//! changes thread, so serving it costs no cross-thread wake-up (a futex and an eventfd write
//! each on a work-stealing runtime).
//!
//! Why one acceptor and a hand-off rather than one `SO_REUSEPORT` listener per thread: the
//! kernel spreads `SO_REUSEPORT` connections by a hash of their addresses, which leaves a few
//! long-lived keep-alive connections (a load balancer's, a previous stage's pool) unevenly
//! spread; and any other process of the same user could bind the same port and silently take
//! a share of the traffic instead of failing with "address in use". The hand-off costs two
//! `epoll_ctl` calls once per connection, not per request.
//!
//! Shutdown: when `stop` is cancelled (after the acceptor has stopped accepting) each thread
//! adopts what was handed to it in the meantime, tells its connections to finish the request
//! they serve and close, waits for that up to the drain timeout, then drops its runtime (which
//! ends whatever is left) and reports done.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::edge::Edge;

/// How connections are spoken to: HTTP/1.1, or h2c with prior knowledge, told apart by the
/// connection's first bytes.
#[derive(Debug)]
pub(super) struct Protocols {
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
    /// `--header-read-timeout`: the first bytes must arrive within this, or the connection is
    /// closed, as hyper closes one whose head does not arrive; and the first request head is
    /// due this long after the connection was taken up, not this long after its first byte.
    pub(super) first_bytes_timeout: Duration,
}

/// What serving a connection takes on one thread.
pub(super) struct Serve {
    pub(super) protocols: Arc<Protocols>,
    pub(super) service: Edge,
    /// Cancelled at shutdown: a connection that has not sent its first bytes yet is closed.
    pub(super) stop: CancellationToken,
    /// `sair_sidecar_connections`.
    pub(super) gauge: metrics::Gauge,
    /// The connections given to this thread and not yet closed (the hand-off's measure).
    pub(super) open: Arc<AtomicUsize>,
}

/// One connection counted as open on the thread it was given to (the hand-off's measure). It
/// travels with the connection (through the hand-off, into its task), so whichever way the
/// connection ends (closed, failed to be adopted, dropped with its runtime) the count is
/// taken back and its `--max-connections` permit freed.
#[derive(Debug)]
pub(super) struct Counted {
    open: Arc<AtomicUsize>,
    /// Held for the connection's life; freed with it.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Counted {
    fn new(open: &Arc<AtomicUsize>, permit: Option<OwnedSemaphorePermit>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        Counted {
            open: open.clone(),
            _permit: permit,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Serve {
    /// Serves `stream` on the current runtime to its end, watched by `graceful`; its end (or
    /// the runtime's) drops `counted`.
    pub(super) fn spawn(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        counted: Counted,
        graceful: &GracefulShutdown,
    ) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        let conn = serve_connection(
            stream,
            self.protocols.clone(),
            self.service.clone(),
            graceful.watcher(),
            self.stop.clone(),
        );
        let gauge = self.gauge.clone();
        gauge.increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            gauge.decrement(1.0);
            drop(counted);
        });
    }
}

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one connection: HTTP/1.1, or h2c when it opens with the HTTP/2 preface.
///
/// The protocol is told from the first bytes *peeked* (left in the socket for hyper), before
/// anything of hyper's exists: a connection that has sent nothing yet holds no buffers, and an
/// HTTP/1 connection's task does not carry the size of the h2 connection state (hyper-util's
/// `auto` connection is an enum of both, 3.5 KB, in every connection's task). The h2 state is
/// boxed instead: gRPC clients keep few, long-lived connections.
///
/// `--header-read-timeout` bounds the whole wait for the first request head once: an HTTP/1
/// connection whose first byte came late gives hyper only what is left of it for that head
/// ([`FirstHeadBy`]).
async fn serve_connection(
    stream: TcpStream,
    protocols: Arc<Protocols>,
    service: Edge,
    watcher: Watcher,
    stop: CancellationToken,
) -> Result<(), hyper::Error> {
    let began = TokioTimer::new().now();
    let h2 = tokio::select! {
        sniffed = tokio::time::timeout(protocols.first_bytes_timeout, opens_with_preface(&stream)) => {
            match sniffed {
                Ok(Ok(Some(h2))) => h2,
                // Closed before sending anything.
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "connection failed before its first request");
                    return Ok(());
                }
                Err(_) => {
                    tracing::debug!("no request within --header-read-timeout; closed");
                    return Ok(());
                }
            }
        }
        () = stop.cancelled() => return Ok(()),
    };
    let io = TokioIo::new(stream);
    if h2 {
        return Box::pin(watcher.watch(protocols.http2.serve_connection(io, service))).await;
    }
    // (The cloned builder is dropped before the await: it is not kept in the task.)
    let conn = if TokioTimer::new().now().saturating_duration_since(began) < LATE {
        protocols.http1.serve_connection(io, service)
    } else {
        let mut http1 = protocols.http1.clone();
        http1.timer(FirstHeadBy::new(began + protocols.first_bytes_timeout));
        http1.serve_connection(io, service)
    };
    watcher.watch(conn).await
}

/// A first byte that came within this of the connection being taken up leaves hyper its own
/// whole `--header-read-timeout` for the first head (no per-connection timer, which costs an
/// allocation); the head is then due at most this much late.
const LATE: Duration = Duration::from_millis(1);

/// hyper's timer for an HTTP/1 connection whose first byte came late: the first deadline hyper
/// sets (that of the first request head) is moved up to `first_head_by`, so the time spent
/// waiting for the first byte counts against the head's timeout; later deadlines (the heads of
/// later requests on the connection) are hyper's own.
#[derive(Debug)]
struct FirstHeadBy {
    first_head_by: Instant,
    used: AtomicBool,
}

impl FirstHeadBy {
    fn new(first_head_by: Instant) -> FirstHeadBy {
        FirstHeadBy {
            first_head_by,
            used: AtomicBool::new(false),
        }
    }

    fn deadline(&self, hypers: Instant) -> Instant {
        if self.used.swap(true, Ordering::Relaxed) {
            hypers
        } else {
            hypers.min(self.first_head_by)
        }
    }
}

impl Timer for FirstHeadBy {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep_until(self.deadline(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        TokioTimer::new().reset(sleep, self.deadline(new_deadline));
    }

    fn now(&self) -> Instant {
        TokioTimer::new().now()
    }
}

/// Whether the connection opens with the HTTP/2 preface (`None`: closed before its bytes told).
/// A connection whose first bytes differ from the preface is HTTP/1, decided at its first byte
/// for any HTTP/1 method.
async fn opens_with_preface(stream: &TcpStream) -> std::io::Result<Option<bool>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut n = stream.peek(&mut buf).await?;
    // Where a split preface is peeked again: the same socket under another descriptor.
    let mut dup = None;
    loop {
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(false));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(true));
        }
        let dup = match &dup {
            Some(dup) => dup,
            None => dup.insert(std::net::TcpStream::from(
                stream.as_fd().try_clone_to_owned()?,
            )),
        };
        n = more(stream, dup, &mut buf, n).await?;
    }
}

/// Waits for the connection to hold more than the `seen` bytes peeked so far and peeks them
/// (0: it was closed first), sleeping meanwhile (the caller's timeout bounds the wait).
///
/// The socket stays readable while the bytes are there, so `peek` would return the same
/// bytes at once, again and again. Instead the peek runs inside `try_io`, which clears the
/// socket's readiness when it finds nothing new, and the task sleeps until the next segment
/// (or the peer's close) makes it readable again. A segment that arrives while the peek runs
/// is not lost: `try_io` clears only the readiness it saw before. (`dup` is the same socket,
/// non-blocking as well; tokio's own `peek` cannot run inside `try_io`.)
async fn more(
    stream: &TcpStream,
    dup: &std::net::TcpStream,
    buf: &mut [u8],
    seen: usize,
) -> std::io::Result<usize> {
    loop {
        let ready = stream.ready(Interest::READABLE).await?;
        let peeked = stream.try_io(Interest::READABLE, || match dup.peek(buf)? {
            n if n > seen => Ok(n),
            // Closed after a part of the preface: it will never be whole.
            _ if ready.is_read_closed() => Ok(0),
            _ => Err(ErrorKind::WouldBlock.into()),
        });
        match peeked {
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// A connection accepted for another thread.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    counted: Counted,
}

/// A serving thread beside the accepting one.
pub(super) struct Worker {
    tx: mpsc::UnboundedSender<Handoff>,
    open: Arc<AtomicUsize>,
    done: oneshot::Receiver<()>,
}

impl Worker {
    /// Starts serving thread `index` with its own current-thread runtime.
    pub(super) fn start(
        index: usize,
        serve: Serve,
        stop: CancellationToken,
        drain: Duration,
    ) -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done) = oneshot::channel();
        let open = serve.open.clone();
        std::thread::Builder::new()
            .name(format!("sair-serve-{index}"))
            .spawn(move || {
                runtime.block_on(serve_handed(rx, serve, stop, drain));
                // Ends the connections that outlived the drain.
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        Ok(Worker { tx, open, done })
    }

    /// Waits until the thread has drained and stopped.
    pub(super) async fn stopped(self) {
        // An error means the thread is gone already (it dropped the sender).
        let _ = self.done.await;
    }
}

/// The serving threads and the accepting thread's own share.
pub(super) struct Threads {
    /// Connections served by the accepting thread itself.
    pub(super) local: Arc<AtomicUsize>,
    pub(super) workers: Vec<Worker>,
}

impl Threads {
    /// Gives `stream` to the thread with the fewest connections (the accepting thread on a
    /// tie) and counts it there. Returns it, counted, when the accepting thread is to serve
    /// it.
    pub(super) fn place(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Option<(TcpStream, Counted)> {
        let mut fewest = self.local.load(Ordering::Relaxed);
        let mut best = None;
        for w in &self.workers {
            let n = w.open.load(Ordering::Relaxed);
            if n < fewest {
                fewest = n;
                best = Some(w);
            }
        }
        let Some(w) = best else {
            return Some((stream, Counted::new(&self.local, permit)));
        };
        // Deregisters it from this thread's IO driver; the worker registers it with its own.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand a connection over; closed");
                return None;
            }
        };
        let counted = Counted::new(&w.open, permit);
        if w.tx
            .send(Handoff {
                stream,
                peer,
                counted,
            })
            .is_err()
        {
            // The thread has stopped (only during shutdown): the connection is closed (and
            // uncounted with the hand-off).
            tracing::debug!(%peer, "serving thread gone; connection closed");
        }
        None
    }

    /// Waits for every worker to drain and stop (they were told by `stop`).
    pub(super) async fn stopped(self) {
        futures::future::join_all(self.workers.into_iter().map(Worker::stopped)).await;
    }
}

/// A worker's loop: serve what is handed over until `stop`, then drain.
async fn serve_handed(
    mut rx: mpsc::UnboundedReceiver<Handoff>,
    serve: Serve,
    stop: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let adopt = |h: Handoff, graceful: &GracefulShutdown| match TcpStream::from_std(h.stream) {
        Ok(stream) => serve.spawn(stream, h.peer, h.counted, graceful),
        // The connection is closed and uncounted with `h`.
        Err(e) => {
            tracing::debug!(peer = %h.peer, error = %e, "could not adopt a connection; closed")
        }
    };
    loop {
        tokio::select! {
            h = rx.recv() => match h {
                Some(h) => adopt(h, &graceful),
                None => break,
            },
            () = stop.cancelled() => break,
        }
    }
    // Connections handed over just before the acceptor stopped are served like the others.
    rx.close();
    while let Ok(h) = rx.try_recv() {
        adopt(h, &graceful);
    }
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached on a serving thread; abandoning its requests");
    }
}

#[cfg(test)]
mod tests;
