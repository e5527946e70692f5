//! The HTTP edge: the hyper-facing service in front of the stack. It stamps the request
//! head, reads the body (under the size limit, the buffer budget and the body read timeout),
//! calls the stack and turns its answer (or its error) into a response with Server-Timing and
//! the pipeline context headers. It never fails.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::{Service, ServiceExt};

use crate::body::{BodyError, read_buffered};
use crate::budget::Budget;
use crate::context::StageContext;
use crate::error::ProxyError;
use crate::headers::{
    PipelineContext, SERVER_TIMING, accepts_trailers, forwarded_over, is_grpc, server_timing,
    timing_value,
};
use crate::layer::ProxyResponse;
use crate::stack::{self, ProxyService};
use crate::stream::ProxyBody;
use crate::tally::Tally;
use crate::timing::{Dispatch, RequestHead, StageTiming};

/// What the edge itself uses.
#[derive(Debug)]
struct EdgeParts {
    stage: Arc<str>,
    next_stage: Arc<str>,
    max_body_bytes: usize,
    /// Header fields a forwarded request may carry (`--upstream-max-headers`).
    upstream_max_headers: usize,
    /// Every buffered body's bytes (`--max-buffered-bytes`).
    budget: Arc<Budget>,
    /// The whole request body must arrive within this of the head (`--body-read-timeout`).
    body_timeout: Duration,
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
                upstream_max_headers: ctx.upstream_max_headers,
                budget: ctx.budget.clone(),
                body_timeout: ctx.body_timeout,
                retry_after: ctx.retry_after.clone(),
                tally: ctx.tally.clone(),
            }),
        }
    }
}

impl Service<Request<Incoming>> for Edge {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        self.respond(req)
    }
}

/// hyper calls its services by reference: served directly, the edge is not cloned per request
/// (`TowerToHyperService` clones the tower service, here a boxed stack, for every call).
impl hyper::service::Service<Request<Incoming>> for Edge {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.respond(req)
    }
}

impl Edge {
    fn respond(
        &self,
        req: Request<Incoming>,
    ) -> BoxFuture<'static, Result<Response<ProxyBody>, Infallible>> {
        let at = Instant::now();
        let edge = self.parts.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (ctx, entry) = PipelineContext::stamp(&mut parts.headers);
            let head = RequestHead { at, entry };
            parts.extensions.insert(head);
            let trailers = accepts_trailers(&parts.headers);
            let grpc = is_grpc(&parts.headers);
            // The pipeline context must not push the request over the model server's limit:
            // refused here, before the body is read, rather than answered 431 downstream.
            let too_many = forwarded_over(&parts.headers, &parts.method, edge.upstream_max_headers)
                .map(|fields| ProxyError::TooManyHeaders {
                    fields,
                    limit: edge.upstream_max_headers,
                });

            // The body's bytes stay in the budget until the answer's head is back (the
            // request has been written to the model server by then).
            let mut hold = edge.budget.reserve();
            let read = if let Some(e) = too_many {
                Err(e)
            } else if http_body::Body::is_end_stream(&body) {
                // No body (a GET, `Content-Length: 0`): nothing to read, no timer to arm.
                Ok(Bytes::new())
            } else {
                let read = read_buffered(body, edge.max_body_bytes, &mut hold);
                // Counted from the head, so a body trickled at a byte a second is cut at the
                // same moment as one that stalls (issue 13).
                match tokio::time::timeout_at((at + edge.body_timeout).into(), read).await {
                    Ok(read) => read.map(|b| b.bytes).map_err(ProxyError::Body),
                    Err(_) => Err(ProxyError::Body(BodyError::Timeout {
                        after: edge.body_timeout,
                    })),
                }
            };
            let result = match read {
                Ok(body) => inner.oneshot(Request::from_parts(parts, body)).await,
                Err(e) => {
                    // Never reached the stack: counted here, as the metrics layer would.
                    edge.tally.arrival();
                    edge.tally.finish_failed(&e, head);
                    Err(e)
                }
            };
            drop(hold);
            let (mut resp, timing) = match result {
                Ok(resp) => {
                    let timing = resp.extensions().get::<StageTiming>().copied();
                    (resp, timing)
                }
                Err(e) => (error_response(&edge, &e, grpc), e.timing()),
            };
            // A stream from this stage's own model server: the queue wait goes in the head,
            // time to first byte and service time in the trailers when the client takes them.
            let streaming_from = if resp.body().is_streamed() {
                resp.extensions().get::<Dispatch>().copied()
            } else {
                None
            };
            if timing.is_none()
                && trailers
                && let Some(s) = resp.body_mut().streamed_mut()
                && s.is_timed()
            {
                s.trailer_timing(edge.stage.clone());
                resp.headers_mut()
                    .append(header::TRAILER, HeaderValue::from_static("server-timing"));
            }
            let h = resp.headers_mut();
            let value = match (timing, streaming_from) {
                (Some(t), _) => server_timing(&edge.stage, t, h),
                (None, Some(d)) => timing_value(&edge.stage, &[("queue", d.queue_wait)], h),
                (None, None) => None,
            };
            if let Some(v) = value {
                h.insert(SERVER_TIMING, v);
            }
            ctx.apply(h);
            h.remove(header::CONTENT_LENGTH);
            Ok(resp)
        })
    }
}

fn error_response(edge: &EdgeParts, e: &ProxyError, grpc: bool) -> ProxyResponse {
    let stage: &str = match e {
        ProxyError::Downstream { .. } | ProxyError::NoNextEndpoint { .. } => &edge.next_stage,
        _ => &edge.stage,
    };
    tracing::debug!(stage, error = %e, source = e.source_kind().as_str(), "request failed");
    if grpc {
        return grpc_error(e, stage);
    }
    let body = serde_json::json!({ "error": e.to_string(), "stage": stage });
    let mut resp = Response::new(ProxyBody::full(Bytes::from(body.to_string())));
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

/// The gRPC code for an error the sidecar answers itself, from its HTTP status as the gRPC
/// spec maps them (doc/http-grpc-status-mapping.md: 400 INTERNAL, 502/503/504 UNAVAILABLE),
/// with three statuses the table leaves at UNKNOWN made precise: 413 and 431
/// RESOURCE_EXHAUSTED (the message or its metadata is over a size limit, what gRPC
/// implementations answer for either) and 408 DEADLINE_EXCEEDED.
pub fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        408 => 4,              // DEADLINE_EXCEEDED
        413 | 431 => 8,        // RESOURCE_EXHAUSTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// A gRPC client reads the outcome from `grpc-status`, not from the HTTP status: the error
/// goes as a trailers-only answer (HTTP 200, `grpc-status`, `grpc-message`), as a gRPC server
/// would send it.
fn grpc_error(e: &ProxyError, stage: &str) -> ProxyResponse {
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(grpc_code(e.status()))),
    );
    let message = format!("sair-sidecar ({stage}): {e}");
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&message)) {
        h.insert("grpc-message", v);
    }
    resp
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2: every byte outside 0x20..=0x7E, and
/// `%`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_follow_the_spec_table_with_size_limits_made_precise() {
        let code = |s: u16| grpc_code(StatusCode::from_u16(s).expect("a status"));
        assert_eq!(code(400), 13);
        assert_eq!(code(408), 4);
        assert_eq!(code(413), 8);
        assert_eq!(code(431), 8);
        for s in [429, 502, 503, 504] {
            assert_eq!(code(s), 14, "{s}");
        }
        assert_eq!(code(500), 2);
    }
}
