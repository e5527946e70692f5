//! A scripted loopback HTTP/1.1 server that misbehaves on purpose (stalls, delays, fixed
//! statuses, silence), for testing clients such as `sair-loadgen` and the sidecar.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// What the server does with each request.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answer at once, except that requests arriving from 1 s to 2 s after the first request
    /// all wait until 2 s: the server stalls for 1 s.
    StallOneSecond,
    /// Answer after this delay (requests are served concurrently).
    Delay(Duration),
    /// Answer at once with this status.
    Status(u16),
    /// Never answer.
    BlackHole,
}

/// Starts the server on its own thread and runtime; it lives until the test process exits.
pub fn serve(behaviour: Behaviour) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the scripted server");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the scripted server");
            let _ = tx.send(listener.local_addr());
            let first: &'static Mutex<Option<tokio::time::Instant>> =
                Box::leak(Box::new(Mutex::new(None)));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| async move {
                            let _ = req.into_body().collect().await;
                            let now = tokio::time::Instant::now();
                            let t0 = *first
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(now);
                            let mut status = hyper::StatusCode::OK;
                            match behaviour {
                                Behaviour::StallOneSecond => {
                                    let since = now - t0;
                                    if since >= Duration::from_secs(1)
                                        && since < Duration::from_secs(2)
                                    {
                                        tokio::time::sleep_until(t0 + Duration::from_secs(2)).await;
                                    }
                                }
                                Behaviour::Delay(d) => tokio::time::sleep(d).await,
                                Behaviour::Status(s) => {
                                    status = hyper::StatusCode::from_u16(s)
                                        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                                }
                                Behaviour::BlackHole => std::future::pending::<()>().await,
                            }
                            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                            *r.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(r)
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the scripted server starts")
        .expect("the scripted server has an address")
}
