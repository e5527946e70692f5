use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// A part of the preface and then nothing: the sniff sleeps until more comes (or the caller's
/// timeout), instead of peeking the same bytes again and again.
#[tokio::test]
async fn a_partial_preface_is_waited_on_without_polling() {
    let (mut client, server) = pair().await;
    client.write_all(&H2_PREFACE[..3]).await.unwrap();
    client.flush().await.unwrap();
    let mut polls = 0u32;
    let sniff = opens_with_preface(&server);
    tokio::pin!(sniff);
    let counted = std::future::poll_fn(|cx| {
        polls += 1;
        sniff.as_mut().poll(cx)
    });
    let waited = tokio::time::timeout(Duration::from_millis(300), counted).await;
    assert!(waited.is_err(), "undecided on a part of the preface");
    // A wake-up per segment and readiness change, not one per millisecond (about 300).
    assert!(polls <= 10, "the sniff was polled {polls} times in 300 ms");
    drop(client);
}

/// Closed after a part of the preface: told at the close, not at the caller's timeout.
#[tokio::test]
async fn a_connection_closed_after_a_partial_preface_is_none() {
    let (mut client, server) = pair().await;
    client.write_all(&H2_PREFACE[..7]).await.unwrap();
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(client);
    });
    let got = tokio::time::timeout(Duration::from_secs(5), opens_with_preface(&server))
        .await
        .expect("decided at the close")
        .unwrap();
    assert_eq!(got, None);
    closer.await.unwrap();
}

/// A serving thread beside the accepting one, without its thread: what `place` hands it
/// arrives on the returned receiver.
fn worker() -> (Worker, mpsc::UnboundedReceiver<Handoff>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (_, done) = oneshot::channel();
    let worker = Worker {
        tx,
        open: Arc::default(),
        done,
    };
    (worker, rx)
}

fn counts(threads: &Threads) -> Vec<usize> {
    std::iter::once(&threads.local)
        .chain(threads.workers.iter().map(|w| &w.open))
        .map(|open| open.load(Ordering::Relaxed))
        .collect()
}

#[tokio::test]
async fn connections_go_to_the_thread_with_the_fewest_ties_to_the_acceptor() {
    let (w1, mut rx1) = worker();
    let (w2, mut rx2) = worker();
    let threads = Threads {
        local: Arc::default(),
        workers: vec![w1, w2],
    };
    let mut clients = Vec::new();
    let place = || async {
        let (client, server) = pair().await;
        let peer = server.peer_addr().unwrap();
        (client, threads.place(server, peer, None))
    };
    let mut local = Vec::new();
    // All at 0: a tie, kept by the accepting thread.
    let (c, kept) = place().await;
    clients.push(c);
    local.push(kept.expect("a tie stays on the accepting thread"));
    assert_eq!(counts(&threads), [1, 0, 0]);
    // Then the first of the workers with fewest, then the other.
    let (c, kept) = place().await;
    clients.push(c);
    assert!(kept.is_none());
    assert_eq!(counts(&threads), [1, 1, 0]);
    let (c, kept) = place().await;
    clients.push(c);
    assert!(kept.is_none());
    assert_eq!(counts(&threads), [1, 1, 1]);
    // A tie again: the accepting thread.
    let (c, kept) = place().await;
    clients.push(c);
    local.push(kept.expect("a tie stays on the accepting thread"));
    assert_eq!(counts(&threads), [2, 1, 1]);
    let to_w1 = rx1.try_recv().expect("handed to the first worker");
    let to_w2 = rx2.try_recv().expect("handed to the second worker");
    assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());
    // A connection closing on a worker makes it the one with the fewest.
    drop(to_w2);
    assert_eq!(counts(&threads), [2, 1, 0]);
    let (c, kept) = place().await;
    clients.push(c);
    assert!(kept.is_none());
    assert_eq!(counts(&threads), [2, 1, 1]);
    let to_w2 = rx2.try_recv().expect("handed to the second worker again");
    // Every count returns to 0 as the connections close.
    drop((to_w1, to_w2));
    drop(local);
    assert_eq!(counts(&threads), [0, 0, 0]);
    drop(clients);
}

#[tokio::test]
async fn a_connection_for_a_stopped_thread_is_closed_and_uncounted() {
    let (w1, rx1) = worker();
    let threads = Threads {
        local: Arc::new(AtomicUsize::new(1)),
        workers: vec![w1],
    };
    drop(rx1);
    let (mut client, server) = pair().await;
    let peer = server.peer_addr().unwrap();
    assert!(threads.place(server, peer, None).is_none());
    assert_eq!(counts(&threads), [1, 0]);
    let mut buf = [0u8; 1];
    let n = client.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "closed");
}
