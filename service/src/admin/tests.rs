use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf[9..12].parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn serves_metrics_health_and_readiness_over_tcp() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let admin = Admin::new(|| "sair_up 1\n".to_owned()).readiness(move || {
        if r.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("segments not adopted yet".to_owned())
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(l, admin, async {
        let _ = stop_rx.await;
    }));

    assert_eq!(get(addr, "/metrics").await, (200, "sair_up 1\n".to_owned()));
    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = get(addr, "/readyz").await;
    tracing::info!(status, body, "before ready");
    assert_eq!(status, 503);
    assert!(body.contains("segments not adopted yet"), "{body}");
    ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert_eq!(get(addr, "/nope").await.0, 404);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("run returns on shutdown")
        .unwrap();
}

#[test]
fn only_get() {
    let admin = Admin::new(String::new);
    assert_eq!(
        admin.respond(&Method::POST, "/metrics").0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}
