//! The tower layers of the request stack. [`crate::stack::build`] assembles them; each one does
//! one thing and passes `Request<Bytes>` in and `Result<Response<Bytes>, ProxyError>` out.
//!
//! Every service is always ready: back-pressure is the admission queue's job, and it must be
//! per-request (FIFO, capacity, timeout), which `poll_ready` cannot express.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use tower::{Layer, Service};

use crate::error::{ProxyError, StageTiming, chain};
use crate::metrics::Outcome;
use crate::stack::{Head, Shared, X_REQUEST_ID, X_START, strip_hop_by_hop};
use crate::window::Event;

pub type ProxyRequest = Request<Bytes>;
pub type ProxyResponse = Response<Bytes>;
pub type ProxyResult = Result<ProxyResponse, ProxyError>;

macro_rules! layer {
    ($layer:ident, $svc:ident) => {
        #[derive(Debug, Clone)]
        pub struct $layer(pub Arc<Shared>);

        #[derive(Debug, Clone)]
        pub struct $svc<S> {
            inner: S,
            shared: Arc<Shared>,
        }

        impl<S> Layer<S> for $layer {
            type Service = $svc<S>;
            fn layer(&self, inner: S) -> $svc<S> {
                $svc {
                    inner,
                    shared: self.0.clone(),
                }
            }
        }
    };
}

macro_rules! always_ready {
    () => {
        type Response = ProxyResponse;
        type Error = ProxyError;
        type Future = BoxFuture<'static, ProxyResult>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
            Poll::Ready(Ok(()))
        }
    };
}

fn head(req: &ProxyRequest) -> Head {
    req.extensions().get::<Head>().copied().unwrap_or(Head {
        at: Instant::now(),
        entry: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Metrics: outcome counter, request histogram, pipeline histogram, window counts.

layer!(MetricsLayer, MetricsService);

/// Counts a request exactly once, also when its future is dropped (client gone → canceled).
struct Finish {
    shared: Arc<Shared>,
    head: Head,
    done: bool,
}

impl Finish {
    fn record(&mut self, outcome: Outcome) {
        self.done = true;
        self.shared.finish(outcome, self.head);
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.done {
            self.shared.finish(Outcome::Canceled, self.head);
        }
    }
}

impl<S> Service<ProxyRequest> for MetricsService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let mut finish = Finish {
            shared: self.shared.clone(),
            head: head(&req),
            done: false,
        };
        self.shared.arrival();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let outcome = match &result {
                Ok(resp) => resp.extensions().get::<Outcome>().copied().unwrap_or(
                    if resp.status().is_server_error() {
                        Outcome::UpstreamError
                    } else {
                        Outcome::Ok
                    },
                ),
                Err(e) => e.outcome(),
            };
            finish.record(outcome);
            result
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Chain: send this stage's answer on to the next stage, return the last stage's answer.

layer!(ChainLayer, ChainService);

impl<S> Service<ProxyRequest> for ChainService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let shared = self.shared.clone();
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let ctx = [X_REQUEST_ID, X_START].map(|h| req.headers().get(h).cloned());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let ours = fut.await?;
            let Some(balancer) = shared.balancer.as_ref() else {
                return Ok(ours);
            };
            if !ours.status().is_success() {
                return Ok(ours);
            }
            let timing = ours.extensions().get::<StageTiming>().copied();
            let fail = |target: String, why: String| ProxyError::Downstream {
                target,
                why,
                timing,
            };
            let Some(pick) = balancer.pick() else {
                return Err(fail("-".into(), "no next-stage endpoints known".into()));
            };
            let authority = pick.endpoint().authority.clone();
            let mut next = Request::post(http::Uri::from(path))
                .body(Full::new(ours.body().clone()))
                .map_err(|e| fail(authority.to_string(), e.to_string()))?;
            if let Some(ct) = ours.headers().get(header::CONTENT_TYPE) {
                next.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            for (name, value) in [X_REQUEST_ID, X_START].iter().zip(ctx) {
                if let Some(v) = value {
                    next.headers_mut().insert(name.clone(), v);
                }
            }
            let (parts, body) = shared
                .send(Some(&authority), next)
                .await
                .map_err(|why| fail(authority.to_string(), why))?
                .into_parts();
            drop(pick);
            let mut resp = Response::from_parts(parts, body);
            strip_hop_by_hop(resp.headers_mut());
            if let Some(t) = timing {
                resp.extensions_mut().insert(t);
            }
            Ok(resp)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Admission: FIFO wait for a concurrency slot, held until the model server's body has ended.

layer!(AdmissionLayer, AdmissionService);

impl<S> Service<ProxyRequest> for AdmissionService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Clone + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let shared = self.shared.clone();
        // The inner service is called only once the slot is held; take a ready clone now.
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        Box::pin(async move {
            let slot = shared
                .admission
                .acquire(head(&req).at)
                .await
                .map_err(|r| match r {
                    crate::admission::Refusal::QueueFull { capacity } => {
                        ProxyError::QueueFull { capacity }
                    }
                    crate::admission::Refusal::QueueTimeout { waited } => {
                        ProxyError::QueueTimeout { waited }
                    }
                })?;
            let result = inner.call(req).await;
            drop(slot);
            result
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Timing: queue wait = head → dispatch, service = dispatch → end of the upstream body.

layer!(TimingLayer, TimingService);

impl<S> Service<ProxyRequest> for TimingService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let dispatch = Instant::now();
        let queue = dispatch.saturating_duration_since(head(&req).at);
        let shared = self.shared.clone();
        shared.metrics.queue_wait.record(queue.as_secs_f64());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let timing = StageTiming {
                queue,
                service: dispatch.elapsed(),
            };
            match result {
                Ok(mut resp) => {
                    shared.metrics.service.record(timing.service.as_secs_f64());
                    shared.window.record(Event::Served {
                        service: timing.service,
                    });
                    resp.extensions_mut().insert(timing);
                    Ok(resp)
                }
                Err(e) => Err(e.with_timing(timing)),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream: the model server itself; the body is read to its end so service time is exact.

/// The innermost service: forwards to `--upstream`.
#[derive(Debug, Clone)]
pub struct Upstream(pub Arc<Shared>);

impl Service<ProxyRequest> for Upstream {
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            // Origin form: the pool's connection is to the model server already.
            if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
                parts.uri = parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))
                    .into();
            }
            parts.version = http::Version::HTTP_11;
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.remove(header::HOST);
            parts.headers.remove(header::CONTENT_LENGTH);
            let req = Request::from_parts(parts, Full::new(body));
            let resp = shared
                .send(None, req)
                .await
                .map_err(|why| ProxyError::Upstream { why, timing: None })?;
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// Reads a body to its end, refusing more than `max` bytes.
pub async fn collect<B>(body: B, max: usize) -> Result<Bytes, String>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Limited::new(body, max)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("body exceeds the limit of {max} bytes")
            } else {
                chain(e.as_ref())
            }
        })
}

/// `HeaderValue` for a number (always valid).
pub fn number_value(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}
