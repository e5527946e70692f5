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

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
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
    /// The first bytes must arrive within this (`--header-read-timeout`), or the connection
    /// is closed, as hyper closes one whose head does not arrive.
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

impl Serve {
    /// Serves `stream` on the current runtime to its end, watched by `graceful`. The caller
    /// has counted it in `open`; its end uncounts it and frees its `permit`.
    pub(super) fn spawn(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
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
        let open = self.open.clone();
        gauge.increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            gauge.decrement(1.0);
            open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
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
async fn serve_connection(
    stream: TcpStream,
    protocols: Arc<Protocols>,
    service: Edge,
    watcher: Watcher,
    stop: CancellationToken,
) -> Result<(), hyper::Error> {
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
        Box::pin(watcher.watch(protocols.http2.serve_connection(io, service))).await
    } else {
        watcher
            .watch(protocols.http1.serve_connection(io, service))
            .await
    }
}

/// Whether the connection opens with the HTTP/2 preface (`None`: closed before any byte). A
/// connection whose first bytes differ from the preface is HTTP/1, decided at its first byte
/// for any HTTP/1 method.
async fn opens_with_preface(stream: &TcpStream) -> std::io::Result<Option<bool>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(false));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(true));
        }
        // A preface split across segments: peeking again at once would return the same
        // bytes, so wait a little for the rest (bounded by the caller's timeout).
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A connection accepted for another thread.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
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
    /// tie) and counts it there. Returns it (and its permit) when the accepting thread is to
    /// serve it.
    pub(super) fn place(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Option<(TcpStream, Option<OwnedSemaphorePermit>)> {
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
            self.local.fetch_add(1, Ordering::Relaxed);
            return Some((stream, permit));
        };
        // Deregisters it from this thread's IO driver; the worker registers it with its own.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand a connection over; closed");
                return None;
            }
        };
        w.open.fetch_add(1, Ordering::Relaxed);
        if w.tx
            .send(Handoff {
                stream,
                peer,
                permit,
            })
            .is_err()
        {
            // The thread has stopped (only during shutdown): the connection is closed.
            w.open.fetch_sub(1, Ordering::Relaxed);
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
        Ok(stream) => serve.spawn(stream, h.peer, h.permit, graceful),
        Err(e) => {
            serve.open.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(peer = %h.peer, error = %e, "could not adopt a connection; closed");
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
