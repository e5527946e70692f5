//! Chain: send this stage's answer on to the next stage, return the last stage's answer.

use std::sync::Arc;

use http::{Method, Request, Response, Uri, header};
use http_body_util::Full;
use tower::{Layer, Service};

use super::{ProxyRequest, ProxyResponse, always_ready};
use crate::balance::Balancer;
use crate::error::ProxyError;
use crate::headers::{PipelineContext, strip_hop_by_hop};
use crate::timing::StageTiming;
use crate::upstream::{Peer, UpstreamPool};

/// Where answers go next: the replicas to pick from and the connections to them.
#[derive(Debug)]
pub struct NextStage {
    pub balancer: Arc<Balancer>,
    pub pool: Arc<UpstreamPool>,
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
        let fut = self.inner.call(req);
        Box::pin(async move {
            let ours = fut.await?;
            if !ours.status().is_success() {
                return Ok(ours);
            }
            let timing = ours.extensions().get::<StageTiming>().copied();
            let Some(pick) = next.balancer.pick() else {
                return Err(ProxyError::NoNextEndpoint { timing });
            };
            let target = pick.endpoint().authority.clone();
            let mut req = Request::new(Full::new(ours.body().clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = Uri::from(path);
            if let Some(ct) = ours.headers().get(header::CONTENT_TYPE) {
                req.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            if let Some(ctx) = &ctx {
                ctx.apply(req.headers_mut());
            }
            let answer = next.pool.send(Peer::Next(&target), req).await;
            drop(pick);
            let (parts, body) = answer
                .map_err(|source| ProxyError::Downstream {
                    target,
                    source,
                    timing,
                })?
                .into_parts();
            let mut resp = Response::from_parts(parts, body);
            strip_hop_by_hop(resp.headers_mut());
            if let Some(t) = timing {
                resp.extensions_mut().insert(t);
            }
            Ok(resp)
        })
    }
}
