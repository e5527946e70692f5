//! Streamed answers: an event stream reaches the client event by event (also through a
//! chained stage), with the model server's trailers and the sidecar's Server-Timing trailers,
//! time to first byte and service time to the last byte.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::support::*;

const EVENTS: usize = 10;
const GAP: Duration = Duration::from_millis(100);

/// An OpenAI-style streaming model server: `EVENTS` server-sent events `GAP` apart (chunked,
/// no length), then a trailer `x-model-tokens`. Records when it sent each event.
async fn sse_server() -> (SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let log = log.clone();
                async move {
                    let wants_trailers = req.headers().get("te").is_some_and(|v| v == "trailers");
                    let _ = req.into_body().collect().await;
                    let (tx, rx) =
                        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                    tokio::spawn(async move {
                        for i in 0..EVENTS {
                            let event = format!("data: {{\"token\":{i}}}\n\n");
                            log.lock().unwrap().push(Instant::now());
                            if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(GAP).await;
                        }
                        let _ = tx
                            .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
                            .await;
                        if wants_trailers {
                            let mut t = HeaderMap::new();
                            t.insert("x-model-tokens", "10".parse().unwrap());
                            let _ = tx.send(Ok(Frame::trailers(t))).await;
                        }
                    });
                    let body = StreamBody::new(tokio_stream_of(rx));
                    let mut resp = Response::new(body);
                    resp.headers_mut()
                        .insert("content-type", "text/event-stream".parse().unwrap());
                    resp.headers_mut()
                        .insert("trailer", "x-model-tokens".parse().unwrap());
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, sent)
}

/// A `Stream` over an mpsc receiver (no tokio-stream dependency for one adapter).
fn tokio_stream_of<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
{
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Posts to `url` (asking for trailers when `trailers`), returns the head, each data frame
/// with the instant it arrived, and the trailers.
async fn stream_from(
    url: &str,
    trailers: bool,
) -> (
    http::response::Parts,
    Vec<(Instant, Bytes)>,
    Option<HeaderMap>,
) {
    let mut req = Request::post(url)
        .body(Full::new(Bytes::from_static(b"{\"stream\":true}")))
        .unwrap();
    if trailers {
        req.headers_mut().insert("te", "trailers".parse().unwrap());
    }
    let resp = client().request(req).await.unwrap();
    let (parts, mut body) = resp.into_parts();
    let mut frames = Vec::new();
    let mut tail = None;
    let deadline = Instant::now() + patience();
    while let Some(frame) = tokio::time::timeout_at(deadline.into(), body.frame())
        .await
        .expect("the stream ends within patience")
    {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => frames.push((Instant::now(), d)),
            Err(f) => tail = f.into_trailers().ok(),
        }
    }
    (parts, frames, tail)
}

/// Every event reaches the client before the model server sends the next one.
fn assert_event_by_event(frames: &[(Instant, Bytes)], sent: &[Instant]) {
    assert_eq!(sent.len(), EVENTS, "the model server sent every event");
    let text: String = frames
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert_eq!(text.matches("data: {").count(), EVENTS, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // The n-th event arrived before event n+1 was sent (GAP later): it was not held back.
    // Events may share a frame; find the frame that completes event n.
    let mut seen = 0;
    for (at, d) in frames {
        seen += String::from_utf8_lossy(d).matches("data: {").count();
        let last_event = seen.min(EVENTS);
        if last_event == 0 || last_event >= EVENTS {
            continue;
        }
        let next_sent = sent[last_event];
        assert!(
            *at <= next_sent + Duration::from_millis(20),
            "event {} arrived {:?} after event {} was sent: buffered, not streamed",
            last_event - 1,
            at.saturating_duration_since(next_sent),
            last_event
        );
    }
    let first_delay = frames[0].0.saturating_duration_since(sent[0]);
    tracing::info!(?first_delay, "first event: upstream send → client receive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_reaches_the_client_event_by_event() {
    let _serial = EXCLUSIVE.lock().await;
    let (up, sent) = sse_server().await;
    let sc = sidecar(&["--stage", "gen", "--upstream", &format!("http://{up}")]).await;
    let (head, frames, trailers) = stream_from(&sc.url(), true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "text/event-stream");
    assert!(head.headers.get("content-length").is_none());
    // The queue wait is known at the head; ttfb and service only at the end.
    let in_head: Vec<String> = server_timing(&head.headers)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(in_head, ["gen-queue"]);
    assert_event_by_event(&frames, &sent.lock().unwrap());
    let trailers = trailers.expect("trailers, asked for with TE: trailers");
    assert_eq!(
        trailers["x-model-tokens"], "10",
        "the model server's trailer passes"
    );
    let timing = server_timing(&trailers);
    let get = |k: &str| {
        timing
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, d)| *d)
            .unwrap()
    };
    let (ttfb, service) = (get("gen-ttfb"), get("gen-service"));
    tracing::info!(ttfb, service, "trailer timing (ms)");
    // Service ends at the last byte, after EVENTS gaps; the first byte came long before.
    assert!(
        service >= (GAP.as_millis() as f64) * (EVENTS as f64 - 1.0),
        "{service}"
    );
    assert!(ttfb < service / 2.0, "ttfb {ttfb} vs service {service}");

    // Counted once, when the stream ended, with its time to first byte.
    eventually("the stream counted ok", || async {
        let ok = sc
            .sample("sair_stage_requests_total", &["outcome=\"ok\""])
            .await?;
        (ok == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        sc.sample("sair_stage_ttfb_seconds_count", &[]).await,
        Some(1.0)
    );
    let served = sc
        .sample("sair_stage_service_seconds_sum", &[])
        .await
        .unwrap();
    assert!(
        served >= 0.9,
        "service time runs to the last byte: {served}"
    );
    assert_eq!(
        sc.sample("sair_stage_inflight", &[]).await,
        Some(0.0),
        "slot released"
    );

    // Without TE: trailers, the stream is the same and no trailers are sent.
    let before = sent.lock().unwrap().len();
    let (_, frames, trailers) = stream_from(&sc.url(), false).await;
    assert_event_by_event(&frames, &sent.lock().unwrap()[before..]);
    assert!(trailers.is_none(), "{trailers:?}");
    sc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_from_the_last_stage_passes_through_a_chained_stage() {
    let _serial = EXCLUSIVE.lock().await;
    let pre = upstream("pre", Duration::from_millis(1)).await;
    let (model, sent) = sse_server().await;
    let last = sidecar(&["--stage", "gen", "--upstream", &format!("http://{model}")]).await;
    let entry = sidecar(&[
        "--stage",
        "pre",
        "--upstream",
        &pre.url(),
        "--next",
        &last.addr.to_string(),
    ])
    .await;
    let (head, frames, trailers) = stream_from(&entry.url(), true).await;
    assert_eq!(head.status, 200);
    let in_head: Vec<String> = server_timing(&head.headers)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(in_head, ["pre-queue", "pre-service", "gen-queue"]);
    assert_event_by_event(&frames, &sent.lock().unwrap());
    let trailers = trailers.expect("the last stage's trailers pass through");
    assert_eq!(trailers["x-model-tokens"], "10");
    let names: Vec<String> = server_timing(&trailers)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["gen-ttfb", "gen-service"]);
    // The entry counts the request when the stream has ended, as ok, in the pipeline
    // histogram too.
    eventually("the entry counted the stream", || async {
        let n = entry
            .sample("sair_pipeline_request_seconds_count", &[])
            .await?;
        (n == 1.0).then_some(())
    })
    .await;
    let e2e = entry
        .sample("sair_pipeline_request_seconds_sum", &[])
        .await
        .unwrap();
    assert!(e2e >= 0.9, "end to end runs to the last byte: {e2e}");
    entry.stop().await;
    last.stop().await;
}

/// A client that hangs up mid-stream: counted `canceled`, and the slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_is_canceled_and_frees_the_slot() {
    let _serial = EXCLUSIVE.lock().await;
    let (up, _) = sse_server().await;
    let sc = sidecar(&[
        "--stage",
        "gen",
        "--upstream",
        &format!("http://{up}"),
        "--max-concurrency",
        "1",
    ])
    .await;
    let req = Request::post(sc.url())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert_eq!(
        sc.sample("sair_stage_inflight", &[]).await,
        Some(1.0),
        "held while streaming"
    );
    drop(body);
    eventually("the stream counted canceled and its slot freed", || async {
        let c = sc
            .sample("sair_stage_requests_total", &["outcome=\"canceled\""])
            .await?;
        let inflight = sc.sample("sair_stage_inflight", &[]).await?;
        (c == 1.0 && inflight == 0.0).then_some(())
    })
    .await;
    sc.stop().await;
}
