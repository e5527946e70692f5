use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A connected pair: the client half and the accepted server half.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Sends `parts` 20 ms apart and reports what the server half was told from its first bytes.
async fn sniffed(parts: &[&'static [u8]]) -> Option<bool> {
    let (mut client, server) = pair().await;
    let parts: Vec<&'static [u8]> = parts.to_vec();
    let writer = tokio::spawn(async move {
        for p in parts {
            client.write_all(p).await.unwrap();
            client.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client
    });
    let got = tokio::time::timeout(Duration::from_secs(5), opens_with_preface(&server))
        .await
        .expect("decided")
        .unwrap();
    drop(writer.await.unwrap());
    got
}

#[tokio::test]
async fn http1_is_told_at_its_first_byte() {
    assert_eq!(sniffed(&[b"GET / HTTP/1.1\r\n"]).await, Some(false));
    // "P" alone could be POST or the preface's PRI: decided when "O" comes.
    assert_eq!(sniffed(&[b"P", b"OST / HTTP/1.1\r\n"]).await, Some(false));
}

#[tokio::test]
async fn the_h2_preface_is_recognised_also_when_split() {
    assert_eq!(sniffed(&[H2_PREFACE]).await, Some(true));
    assert_eq!(
        sniffed(&[&H2_PREFACE[..5], &H2_PREFACE[5..16], &H2_PREFACE[16..]]).await,
        Some(true)
    );
}

#[tokio::test]
async fn the_peeked_bytes_stay_in_the_socket() {
    let (mut client, server) = pair().await;
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert_eq!(opens_with_preface(&server).await.unwrap(), Some(false));
    let mut buf = [0u8; 16];
    server.readable().await.unwrap();
    let n = server.try_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn a_connection_closed_before_any_byte_is_none() {
    let (client, server) = pair().await;
    drop(client);
    assert_eq!(opens_with_preface(&server).await.unwrap(), None);
}
