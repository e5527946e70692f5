//! gRPC through the sidecar: a tonic client talks h2c to the sidecar, the sidecar talks h2c
//! to a tonic server; unary calls, a server stream, an error status, and the sidecar's own
//! errors mapped to gRPC codes. Messages are raw bytes (a codec of our own), so no protobuf
//! code generation is needed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Request, Response, Status};

use crate::support::*;

/// Messages as they are: bytes in, bytes out.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `Echo/Unary` answers `echo:<request>`.
#[derive(Clone)]
struct Unary;
impl tonic::server::UnaryService<Bytes> for Unary {
    type Response = Bytes;
    type Future = futures::future::Ready<Result<Response<Bytes>, Status>>;
    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let mut out = b"echo:".to_vec();
        out.extend_from_slice(req.get_ref());
        futures::future::ready(Ok(Response::new(Bytes::from(out))))
    }
}

/// `Echo/Fail` answers RESOURCE_EXHAUSTED, as a busy model server would.
#[derive(Clone)]
struct Fail;
impl tonic::server::UnaryService<Bytes> for Fail {
    type Response = Bytes;
    type Future = futures::future::Ready<Result<Response<Bytes>, Status>>;
    fn call(&mut self, _: Request<Bytes>) -> Self::Future {
        futures::future::ready(Err(Status::resource_exhausted("model busy")))
    }
}

/// `Echo/Tokens` streams 5 messages 100 ms apart.
#[derive(Clone)]
struct Tokens;
impl tonic::server::ServerStreamingService<Bytes> for Tokens {
    type Response = Bytes;
    type ResponseStream = futures::stream::BoxStream<'static, Result<Bytes, Status>>;
    type Future = futures::future::Ready<Result<Response<Self::ResponseStream>, Status>>;
    fn call(&mut self, _: Request<Bytes>) -> Self::Future {
        let s = futures::stream::unfold(0u32, |i| async move {
            if i == 5 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some((Ok(Bytes::from(format!("token{i}"))), i + 1))
        });
        futures::future::ready(Ok(Response::new(Box::pin(s) as Self::ResponseStream)))
    }
}

/// A tonic server over h2c (prior knowledge), as a gRPC model server listens.
async fn grpc_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let mut grpc = tonic::server::Grpc::new(Raw);
                    let resp = match req.uri().path() {
                        "/sair.test.Echo/Unary" => grpc.unary(Unary, req).await,
                        "/sair.test.Echo/Fail" => grpc.unary(Fail, req).await,
                        "/sair.test.Echo/Tokens" => grpc.server_streaming(Tokens, req).await,
                        _ => Status::unimplemented("no such method").into_http(),
                    };
                    Ok::<_, Infallible>(resp)
                },
            );
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

type Channel = Client<HttpConnector, tonic::body::Body>;

/// A tonic client over h2c to `addr`.
fn grpc_client(addr: SocketAddr) -> tonic::client::Grpc<Channel> {
    let c = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    tonic::client::Grpc::with_origin(c, format!("http://{addr}").parse().unwrap())
}

async fn unary(
    grpc: &mut tonic::client::Grpc<Channel>,
    method: &'static str,
    msg: &'static [u8],
) -> Result<Response<Bytes>, Status> {
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    grpc.unary(
        Request::new(Bytes::from_static(msg)),
        PathAndQuery::from_static(method),
        Raw,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_streaming_and_error_grpc_calls_pass_with_their_status() {
    let server = grpc_server().await;
    let sc = sidecar(&["--stage", "rpc", "--upstream", &format!("http://{server}")]).await;
    let mut grpc = grpc_client(sc.addr);

    let ok = unary(&mut grpc, "/sair.test.Echo/Unary", b"hi")
        .await
        .unwrap();
    assert_eq!(&ok.get_ref()[..], b"echo:hi");
    // The sidecar's timing rides along in the response metadata: tonic merges a unary
    // answer's trailers into it, so the trailers' Server-Timing (time to first byte and
    // service, known at the end) replaces the head's (the queue wait).
    let md = ok.metadata().clone().into_headers();
    assert!(md.get("x-sair-request-id").is_some(), "{md:?}");
    assert_eq!(md["grpc-status"], "0");
    let names: Vec<String> = server_timing(&md).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["rpc-ttfb", "rpc-service"], "{md:?}");

    // The model server's own status passes through in its trailers, untouched.
    let e = unary(&mut grpc, "/sair.test.Echo/Fail", b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(e.message(), "model busy");

    // A server stream arrives message by message, then grpc-status 0 in the trailers.
    grpc.ready().await.unwrap();
    let resp = grpc
        .server_streaming(
            Request::new(Bytes::from_static(b"go")),
            PathAndQuery::from_static("/sair.test.Echo/Tokens"),
            Raw,
        )
        .await
        .unwrap();
    let mut stream = resp.into_inner();
    let began = Instant::now();
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(patience(), stream.message())
        .await
        .expect("the stream ends within patience")
        .unwrap()
    {
        got.push((began.elapsed(), m));
    }
    let trailers = stream
        .trailers()
        .await
        .unwrap()
        .expect("trailers")
        .into_headers();
    assert_eq!(got.len(), 5);
    assert_eq!(&got[0].1[..], b"token0");
    // The first message came long before the last one was produced (400 ms later).
    assert!(
        got[0].0 + Duration::from_millis(250) < got[4].0,
        "{:?}",
        got.iter().map(|(t, _)| *t).collect::<Vec<_>>()
    );
    let timing: Vec<String> = server_timing(&trailers)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(timing, ["rpc-ttfb", "rpc-service"], "{trailers:?}");

    eventually("three calls counted ok", || async {
        let ok = sc
            .sample("sair_stage_requests_total", &["outcome=\"ok\""])
            .await?;
        (ok == 3.0).then_some(())
    })
    .await;
    sc.stop().await;
}

/// Errors the sidecar answers itself reach a gRPC client as gRPC statuses: an unreachable
/// model server is UNAVAILABLE with the sidecar's reason, not an HTTP 502 the client cannot
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecars_own_errors_are_grpc_statuses() {
    let dead = closed_port().await;
    let sc = sidecar(&[
        "--stage",
        "rpc",
        "--upstream",
        &format!("http://{dead}"),
        "--connect-retry-for",
        "0",
    ])
    .await;
    let mut grpc = grpc_client(sc.addr);
    let e = unary(&mut grpc, "/sair.test.Echo/Unary", b"hi")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains("sair-sidecar (rpc)"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("model server failed"),
        "{}",
        e.message()
    );
    sc.stop().await;

    // Over the body limit: RESOURCE_EXHAUSTED.
    let server = grpc_server().await;
    let sc = sidecar(&[
        "--stage",
        "rpc",
        "--upstream",
        &format!("http://{server}"),
        "--max-body-bytes",
        "8",
    ])
    .await;
    let mut grpc = grpc_client(sc.addr);
    let e = unary(
        &mut grpc,
        "/sair.test.Echo/Unary",
        b"far more than eight bytes",
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    sc.stop().await;
}
