//! Upstream: the model server itself; the body is read to its end so service time is exact.

use std::sync::Arc;

use http::{Request, Response, header};
use http_body_util::Full;
use tower::Service;

use super::{ProxyRequest, always_ready};
use crate::error::ProxyError;
use crate::headers::strip_hop_by_hop;
use crate::upstream::{Peer, UpstreamPool};

/// The innermost service: forwards to `--upstream`.
#[derive(Debug, Clone)]
pub struct UpstreamService {
    pool: Arc<UpstreamPool>,
}

impl UpstreamService {
    pub fn new(pool: Arc<UpstreamPool>) -> Self {
        UpstreamService { pool }
    }
}

impl Service<ProxyRequest> for UpstreamService {
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let pool = self.pool.clone();
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
            let resp =
                pool.send(Peer::Model, req)
                    .await
                    .map_err(|source| ProxyError::Upstream {
                        source,
                        timing: None,
                    })?;
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, body))
        })
    }
}
