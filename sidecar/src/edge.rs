//! The HTTP edge: the hyper-facing service in front of the stack. It stamps the request
//! head, reads the body, calls the stack and turns its answer (or its error) into a response
//! with Server-Timing and the pipeline context headers. It never fails.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tower::{Service, ServiceExt};

use crate::body::read_to_end;
use crate::context::StageContext;
use crate::error::ProxyError;
use crate::headers::{PipelineContext, SERVER_TIMING, server_timing};
use crate::layer::ProxyResponse;
use crate::stack::{self, ProxyService};
use crate::tally::Tally;
use crate::timing::{RequestHead, StageTiming};

/// What the edge itself uses.
#[derive(Debug)]
struct EdgeParts {
    stage: Arc<str>,
    next_stage: Arc<str>,
    max_body_bytes: usize,
    retry_after: HeaderValue,
    /// For requests that fail before the stack (an unreadable or oversized body).
    tally: Arc<Tally>,
}

/// The hyper-facing service of one sidecar.
#[derive(Debug, Clone)]
pub struct Edge {
    parts: Arc<EdgeParts>,
    inner: ProxyService,
}

impl Edge {
    pub fn new(ctx: &StageContext) -> Self {
        Edge {
            inner: stack::build(ctx),
            parts: Arc::new(EdgeParts {
                stage: ctx.stage.clone(),
                next_stage: ctx.next_stage.clone(),
                max_body_bytes: ctx.max_body_bytes,
                retry_after: ctx.retry_after.clone(),
                tally: ctx.tally.clone(),
            }),
        }
    }
}

impl Service<Request<Incoming>> for Edge {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let at = Instant::now();
        let edge = self.parts.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (ctx, entry) = PipelineContext::stamp(&mut parts.headers);
            let head = RequestHead { at, entry };
            parts.extensions.insert(head);

            let result = match read_to_end(body, edge.max_body_bytes).await {
                Ok(bytes) => inner.oneshot(Request::from_parts(parts, bytes)).await,
                Err(e) => {
                    // Never reached the stack: counted here, as the metrics layer would.
                    let e = ProxyError::Body(e);
                    edge.tally.arrival();
                    edge.tally.finish_failed(&e, head);
                    Err(e)
                }
            };
            let (mut resp, timing) = match result {
                Ok(resp) => {
                    let timing = resp.extensions().get::<StageTiming>().copied();
                    (resp, timing)
                }
                Err(e) => (error_response(&edge, &e), e.timing()),
            };
            let h = resp.headers_mut();
            if let Some(t) = timing
                && let Some(v) = server_timing(&edge.stage, t, h)
            {
                h.insert(SERVER_TIMING, v);
            }
            ctx.apply(h);
            h.remove(header::CONTENT_LENGTH);
            let (parts, body) = resp.into_parts();
            Ok(Response::from_parts(parts, Full::new(body)))
        })
    }
}

fn error_response(edge: &EdgeParts, e: &ProxyError) -> ProxyResponse {
    let stage: &str = match e {
        ProxyError::Downstream { .. } | ProxyError::NoNextEndpoint { .. } => &edge.next_stage,
        _ => &edge.stage,
    };
    let body = serde_json::json!({ "error": e.to_string(), "stage": stage });
    tracing::debug!(stage, error = %e, source = e.source_kind().as_str(), "request failed");
    let mut resp = Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() = e.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if e.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, edge.retry_after.clone());
    }
    resp
}
