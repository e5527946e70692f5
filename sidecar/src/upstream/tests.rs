//! Each way an exchange fails is told apart by type, never by the text of a message.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn get() -> Request<Full<Bytes>> {
    Request::get("/").body(Full::new(Bytes::new())).unwrap()
}

/// A peer that reads a request head, then does `answer` with the socket.
async fn peer<F, Fut>(answer: F) -> Authority
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            answer(s).await;
        }
    });
    authority
}

async fn kind_of(authority: Authority, timeout: Duration) -> UpstreamErrorKind {
    let pool = UpstreamPool::new(authority, 100, timeout);
    let e = pool.send(Peer::Model, get()).await.unwrap_err();
    tracing::info!(error = %e, "exchange failed");
    e.kind()
}

#[tokio::test]
async fn refused_timed_out_oversized_and_broken_are_four_kinds() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string().parse().unwrap()
    };
    assert_eq!(
        kind_of(closed, Duration::from_secs(5)).await,
        UpstreamErrorKind::Refused
    );

    let silent = peer(|s| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    })
    .await;
    assert_eq!(
        kind_of(silent, Duration::from_millis(100)).await,
        UpstreamErrorKind::Timeout
    );

    let big = peer(|mut s| async move {
        let body = "x".repeat(1000);
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{body}");
        let _ = s.write_all(answer.as_bytes()).await;
    })
    .await;
    assert_eq!(
        kind_of(big, Duration::from_secs(5)).await,
        UpstreamErrorKind::Oversized
    );

    let cut = peer(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nonly a part")
            .await;
    })
    .await;
    assert_eq!(
        kind_of(cut, Duration::from_secs(5)).await,
        UpstreamErrorKind::Broken
    );
}

#[test]
fn event_streams_grpc_and_unsized_answers_stream_sized_ones_do_not() {
    fn answer(ct: Option<&'static str>, body: Full<Bytes>) -> Response<Full<Bytes>> {
        let mut r = Response::new(body);
        if let Some(ct) = ct {
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        r
    }
    let sized = || Full::new(Bytes::from_static(b"{}"));
    assert!(!streams(&answer(Some("application/json"), sized())));
    assert!(streams(&answer(
        Some("text/event-stream; charset=utf-8"),
        sized()
    )));
    assert!(streams(&answer(Some("application/grpc+proto"), sized())));
    let unsized_body = http_body_util::StreamBody::new(futures::stream::empty::<
        Result<http_body::Frame<Bytes>, std::convert::Infallible>,
    >());
    let mut r = Response::new(unsized_body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    assert!(streams(&r), "no length known: streamed");
}
