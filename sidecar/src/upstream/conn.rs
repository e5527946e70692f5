//! One keep-alive HTTP/1.1 connection, driven on the task of the request that uses it.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Answer, Mode, UpstreamError};
use crate::body::read_buffered;
use crate::budget::Budget;

type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// One HTTP/1.1 connection: the request half and the connection future that does its IO.
pub(super) struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended (peer closed or IO failed). Dropping the driver
    /// is what tells `sender` the connection is gone (its readiness never resolves otherwise).
    driver: Option<Driver>,
    pub(super) idle_since: Instant,
}

/// How an exchange failed.
pub(super) enum Failure {
    /// The request never left: the connection was already closed. Safe to send elsewhere.
    NotSent(Box<Request<Full<Bytes>>>, UpstreamError),
    /// The request may have reached the peer.
    Failed(UpstreamError),
}

impl Conn {
    pub(super) async fn connect(
        authority: &Authority,
        timeout: Duration,
    ) -> Result<Conn, UpstreamError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                authority: authority.clone(),
                after: timeout,
            })?
            .map_err(|source| UpstreamError::Connect {
                authority: authority.clone(),
                source,
            })?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%authority, error = %e, "could not set TCP_NODELAY");
        }
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Connection)?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(driver)),
            idle_since: Instant::now(),
        })
    }

    /// Whether the connection is still up (its driver has not completed).
    pub(super) fn is_open(&self) -> bool {
        self.driver.is_some()
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

    /// Sends `req`; reads the whole response body (at most `max_body` bytes, taken from
    /// `budget`), or — in [`Mode::Auto`], for an answer that streams — returns at its head.
    pub(super) async fn exchange(
        &mut self,
        req: Request<Full<Bytes>>,
        max_body: usize,
        budget: &Arc<Budget>,
        mode: Mode,
    ) -> Result<Answer, Failure> {
        let Conn { sender, driver, .. } = &mut *self;
        let exchange = async move {
            if let Err(e) = poll_fn(|cx| sender.poll_ready(cx)).await {
                return Err(Failure::NotSent(
                    Box::new(req),
                    UpstreamError::Connection(e),
                ));
            }
            let resp =
                sender
                    .try_send_request(req)
                    .await
                    .map_err(|mut e| match e.take_message() {
                        Some(req) => Failure::NotSent(
                            Box::new(req),
                            UpstreamError::Connection(e.into_error()),
                        ),
                        None => Failure::Failed(UpstreamError::Connection(e.into_error())),
                    })?;
            if mode == Mode::Auto && super::streams(&resp) {
                return Ok(Answer::Streaming(resp));
            }
            let (parts, body) = resp.into_parts();
            let mut hold = budget.reserve();
            let body = read_buffered(body, max_body, &mut hold)
                .await
                .map_err(|e| Failure::Failed(UpstreamError::Body(e)))?;
            Ok(Answer::Whole {
                resp: Response::from_parts(parts, body.bytes),
                first_byte: body.first_byte,
                hold,
            })
        };
        let answer = Self::drive(driver, exchange).await;
        if let Ok(Answer::Streaming(_)) = &answer
            && let Some(d) = self.driver.take()
        {
            // The body is read by the client connection long after this request's future has
            // returned, so from here the connection needs a task of its own (as hyper-util's
            // pool gives every connection). It is not reused: it closes after this answer,
            // a cost a long stream does not notice.
            tokio::spawn(async move {
                if let Err(e) = d.await {
                    tracing::debug!(error = %e, "streamed upstream connection ended with an error");
                }
            });
        }
        answer
    }
}
