//! Upstream: the model server itself. A sized answer is read to its end so service time is
//! exact and goes in a header; a streaming one (see [`crate::upstream::streams`]) is handed up
//! at its head, unless `mode` says the whole body is needed (a chained stage).

use std::sync::Arc;

use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use tower::Service;

use super::{ProxyRequest, always_ready};
use crate::config::UpstreamProtocol;
use crate::error::ProxyError;
use crate::headers::{accepts_trailers, is_grpc, strip_hop_by_hop};
use crate::stream::{Origin, ProxyBody, Streamed};
use crate::upstream::{Answer, Mode, Peer, UpstreamPool};

/// The innermost service: forwards to `--upstream`.
#[derive(Debug, Clone)]
pub struct UpstreamService {
    pool: Arc<UpstreamPool>,
    mode: Mode,
    protocol: UpstreamProtocol,
}

impl UpstreamService {
    pub fn new(pool: Arc<UpstreamPool>, mode: Mode, protocol: UpstreamProtocol) -> Self {
        UpstreamService {
            pool,
            mode,
            protocol,
        }
    }
}

/// Turns an answer into the stack's response: hop-by-hop fields removed, a buffered body
/// keeping its budget reservation, a stream wrapped to do the request's end-of-life work.
pub(crate) fn into_response(
    answer: Answer,
    origin: Origin,
    pool: &UpstreamPool,
) -> Response<ProxyBody> {
    match answer {
        Answer::Whole {
            resp,
            first_byte,
            hold,
        } => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(
                parts,
                ProxyBody::Full {
                    data: Some(body),
                    hold: Some(hold),
                    first_byte,
                },
            )
        }
        Answer::Streaming(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // Forwarded chunked (HTTP/1) or as DATA frames (h2), whatever length it announced.
            parts.headers.remove(header::CONTENT_LENGTH);
            let s = Streamed::new(body, origin, parts.status, pool.exchange_timeout());
            Response::from_parts(parts, ProxyBody::Streamed(Box::new(s)))
        }
    }
}

impl Service<ProxyRequest> for UpstreamService {
    always_ready!();

    fn call(&mut self, req: ProxyRequest) -> Self::Future {
        let pool = self.pool.clone();
        let mode = self.mode;
        let protocol = self.protocol;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let h2 = match protocol {
                UpstreamProtocol::Http1 => false,
                UpstreamProtocol::H2c => true,
                UpstreamProtocol::Auto => {
                    parts.version == http::Version::HTTP_2 && is_grpc(&parts.headers)
                }
            };
            // `TE` is hop-by-hop, but "trailers" is also true of this hop: the sidecar passes
            // trailers on (gRPC servers need to be told).
            let trailers = accepts_trailers(&parts.headers);
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
            if trailers {
                parts
                    .headers
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
            let req = Request::from_parts(parts, Full::new(body));
            let answer = if h2 {
                pool.fetch_h2(req, mode).await
            } else {
                pool.fetch(Peer::Model, req, mode).await
            };
            let answer = answer.map_err(|source| ProxyError::Upstream {
                source,
                timing: None,
            })?;
            Ok(into_response(answer, Origin::Model, &pool))
        })
    }
}
