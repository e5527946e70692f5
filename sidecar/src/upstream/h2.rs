//! One multiplexed h2c (HTTP/2 over cleartext, prior knowledge) connection to the model
//! server, for gRPC: gRPC needs HTTP/2 end to end (trailers carry its status).
//!
//! Unlike the HTTP/1 pool, the connection is driven by a task of its own: HTTP/2 multiplexes
//! every request on it, so no one request's task can own its IO. A closed connection is
//! replaced on the next request; connects are serialised so a burst opens one connection.

use std::future::poll_fn;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::{UpstreamError, lock};

type Sender = http2::SendRequest<Full<Bytes>>;

/// The h2c connection to one peer, made on first use.
#[derive(Default)]
pub(super) struct H2Conn {
    sender: Mutex<Option<Sender>>,
    connecting: tokio::sync::Mutex<()>,
}

impl H2Conn {
    /// The live sender, connecting first when there is none.
    async fn sender(
        &self,
        authority: &Authority,
        timeout: Duration,
    ) -> Result<Sender, UpstreamError> {
        if let Some(s) = lock(&self.sender).as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let _one = self.connecting.lock().await;
        // Another request may have connected while this one waited.
        if let Some(s) = lock(&self.sender).as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
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
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Connection)?;
        let peer = authority.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "h2c upstream connection ended with an error");
            }
        });
        *lock(&self.sender) = Some(sender.clone());
        Ok(sender)
    }

    /// Sends `req` (absolute URI) and returns the answer's head.
    pub(super) async fn send(
        &self,
        authority: &Authority,
        connect_timeout: Duration,
        req: Request<Full<Bytes>>,
        mut retry: crate::retry::Retrying<'_>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = loop {
            match self.sender(authority, connect_timeout).await {
                Ok(s) => break s,
                // Nothing was written: wait for the model server to come (back), if allowed.
                Err(e) if e.before_sent() && retry.pause(&e).await => {}
                Err(e) => return Err(e),
            }
        };
        poll_fn(|cx| sender.poll_ready(cx))
            .await
            .map_err(UpstreamError::Connection)?;
        sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Connection)
    }
}
