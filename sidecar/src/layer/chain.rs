//! Chain: send this stage's answer on to the next stage, return the last stage's answer.
//!
//! This stage's own answer is always read whole (the upstream layer is built in
//! [`Mode::Buffer`] on a chained stage): it is the next stage's request body, and a request
//! body is buffered. The next stage's answer streams back through here when it streams.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::Full;
use tower::{Layer, Service};

use super::upstream::into_response;
use super::{ProxyRequest, ProxyResponse, always_ready};
use crate::balance::Balancer;
use crate::body::read_to_end;
use crate::error::ProxyError;
use crate::headers::{PipelineContext, accepts_trailers};
use crate::retry::ConnectRetry;
use crate::stream::{Origin, ProxyBody};
use crate::timing::StageTiming;
use crate::upstream::{Mode, Peer, UpstreamPool};

/// Where answers go next: the replicas to pick from and the connections to them.
#[derive(Debug)]
pub struct NextStage {
    pub balancer: Arc<Balancer>,
    pub pool: Arc<UpstreamPool>,
    /// How long a request that reached no next-stage process waits for one.
    pub retry: ConnectRetry,
}

#[derive(Debug, Clone)]
pub struct ChainLayer {
    next: Arc<NextStage>,
}

impl ChainLayer {
    pub fn new(next: NextStage) -> Self {
        ChainLayer {
            next: Arc::new(next),
        }
    }
}

impl<S> Layer<S> for ChainLayer {
    type Service = ChainService<S>;
    fn layer(&self, inner: S) -> ChainService<S> {
        ChainService {
            inner,
            next: self.next.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChainService<S> {
    inner: S,
    next: Arc<NextStage>,
}

impl<S> Service<ProxyRequest> for ChainService<S>
where
    S: Service<ProxyRequest, Response = ProxyResponse, Error = ProxyError> + Send + 'static,
    S::Future: Send,
{
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let next = self.next.clone();
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let ctx = PipelineContext::of(req.headers());
        let trailers = accepts_trailers(req.headers());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let ours = fut.await?;
            if !ours.status().is_success() {
                return Ok(ours);
            }
            let timing = ours.extensions().get::<StageTiming>().copied();
            let (head, body) = ours.into_parts();
            let body = match body {
                ProxyBody::Full { data, .. } => data.unwrap_or_default(),
                // Not built this way (see the module docs); read it whole rather than fail.
                stream @ ProxyBody::Streamed(_) => read_to_end(stream, next.pool.max_body_bytes())
                    .await
                    .map_err(|e| ProxyError::Upstream {
                        source: crate::upstream::UpstreamError::Body(e),
                        timing,
                    })?,
            };
            let build = || {
                let mut req = Request::new(Full::new(body.clone()));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = Uri::from(path.clone());
                if let Some(ct) = head.headers.get(header::CONTENT_TYPE) {
                    req.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
                }
                if let Some(ctx) = &ctx {
                    ctx.apply(req.headers_mut());
                }
                if trailers {
                    // The client takes trailers, so the next stage may send them (its
                    // Server-Timing of a streamed answer) and they are passed back.
                    req.headers_mut()
                        .insert(header::TE, HeaderValue::from_static("trailers"));
                }
                req
            };
            // No endpoint, or a connect that failed before the request was written: nothing
            // reached a next-stage process, so wait (within --connect-retry-for) and pick
            // again from the endpoints discovery knows by then.
            let mut retry = next.retry.start();
            let (answer, target) = loop {
                let failure = match next.balancer.pick() {
                    None => ProxyError::NoNextEndpoint { timing },
                    Some(pick) => {
                        let target = pick.endpoint().authority.clone();
                        let answer = next
                            .pool
                            .fetch(Peer::Next(&target), build(), Mode::Auto)
                            .await;
                        drop(pick);
                        match answer {
                            Ok(answer) => break (answer, target),
                            Err(source) => {
                                let retriable = source.before_sent();
                                let e = ProxyError::Downstream {
                                    target,
                                    source,
                                    timing,
                                };
                                if !retriable {
                                    return Err(e);
                                }
                                e
                            }
                        }
                    }
                };
                if !retry.pause(&failure).await {
                    return Err(failure);
                }
            };
            let mut resp = into_response(answer, Origin::Next(target), &next.pool);
            if let Some(t) = timing {
                resp.extensions_mut().insert(t);
            }
            Ok(resp)
        })
    }
}
