//! The one admin HTTP server of every long-running binary (HTTP/1, GET only):
//!
//! - `/metrics`: Prometheus text from the render closure;
//! - `/healthz`: 200 while the process runs (liveness);
//! - `/readyz`: 200, or 503 with the reason the readiness closure gives (readiness).
//!
//! Shutdown handshake: [`run`] stops accepting when its `shutdown` future resolves and returns;
//! connections already accepted finish their current request on their own tasks.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

type Render = Arc<dyn Fn() -> String + Send + Sync>;
type Ready = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the admin server serves: a metrics renderer and a readiness check.
#[derive(Clone)]
pub struct Admin {
    render: Render,
    ready: Ready,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// `/metrics` answers with `render()`; `/readyz` is always ready until
    /// [`Admin::readiness`] says otherwise.
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Self {
            render: Arc::new(render),
            ready: Arc::new(|| Ok(())),
        }
    }

    /// `/readyz` answers 503 with the `Err` reason while `ready()` returns one.
    pub fn readiness(
        mut self,
        ready: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.ready = Arc::new(ready);
        self
    }

    /// The response to one request (sans-IO; [`run`] is the driver).
    pub fn respond(&self, method: &Method, path: &str) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        let label = match path {
            "/metrics" => "metrics",
            "/healthz" => "healthz",
            "/readyz" => "readyz",
            _ => "other",
        };
        metrics::counter!(crate::metrics::ADMIN_REQUESTS_TOTAL, "path" => label).increment(1);
        if method != Method::GET && method != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "GET only\n".to_owned(),
            );
        }
        match path {
            "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", (self.render)()),
            "/healthz" => (StatusCode::OK, TEXT, "ok\n".to_owned()),
            "/readyz" => match (self.ready)() {
                Ok(()) => (StatusCode::OK, TEXT, "ready\n".to_owned()),
                Err(reason) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("not ready: {reason}\n"),
                ),
            },
            _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".to_owned()),
        }
    }

    fn response(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, ctype, body) = self.respond(req.method(), req.uri().path());
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(ctype),
        );
        resp
    }
}

/// Serves `admin` on `listener` until `shutdown` resolves. Accept errors back off
/// ([`crate::accept`]); a failed connection is logged at debug level.
pub async fn run(listener: TcpListener, admin: Admin, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            a = crate::accept::accept(&listener) => a,
            () = &mut shutdown => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let resp = admin.response(&req);
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests;
