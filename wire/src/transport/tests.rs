use super::*;
use crate::frame;
use crate::message::{Envelope, Message};
use crate::report::StageReport;

async fn exchange(server_cfg: quinn::ServerConfig, client_cfg: quinn::ClientConfig) {
    let server = server_endpoint("127.0.0.1:0".parse().unwrap(), server_cfg).unwrap();
    let addr = server.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        frame::read(&mut recv, frame::MAX_FRAME_BYTES)
            .await
            .unwrap()
    });
    let client = client_endpoint(addr, client_cfg).unwrap();
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    let mut send = conn.open_uni().await.unwrap();
    let env = Envelope::new(Message::StageReport(StageReport {
        pipeline: "p".into(),
        stage: "s".into(),
        window_seconds: 1.0,
        ..Default::default()
    }));
    frame::write(&mut send, &env, frame::MAX_FRAME_BYTES)
        .await
        .unwrap();
    send.finish().unwrap();
    assert_eq!(accept.await.unwrap(), Some(env));
}

#[tokio::test]
async fn mutual_tls_round_trip() {
    let ca = DevCa::new().unwrap();
    let server_id = ca.issue(&["localhost"]).unwrap();
    let client_id = ca.issue(&["client"]).unwrap();
    let root = ca.root();
    exchange(
        server_config(&server_id, Some(std::slice::from_ref(&root))).unwrap(),
        client_config(&Trust::Roots(vec![root.clone()]), Some(&client_id)).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn insecure_skip_verify_round_trip() {
    let id = Identity::self_signed(&["localhost"]).unwrap();
    exchange(
        server_config(&id, None).unwrap(),
        client_config(&Trust::InsecureSkipVerify, None).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn untrusted_server_is_refused() {
    let id = Identity::self_signed(&["localhost"]).unwrap();
    let other = DevCa::new().unwrap();
    let server = server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        server_config(&id, None).unwrap(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        if let Some(inc) = server.accept().await {
            let _ = inc.await;
        }
    });
    let client = client_endpoint(
        addr,
        client_config(&Trust::Roots(vec![other.root()]), None).unwrap(),
    )
    .unwrap();
    let res = client.connect(addr, "localhost").unwrap().await;
    assert!(
        res.is_err(),
        "handshake with an untrusted certificate must fail"
    );
}
