//! Members over real QUIC on loopback, with certificates made by `certs::init_ca`/`issue`.
//! Real time: the bounds are generous so a loaded 2-core machine passes.
#![allow(clippy::unwrap_used)] // test helpers: a failed fixture should panic

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use foca::State;
use sair_mesh::certs::{self, ClusterCa, MeshTls};
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{MemberId, Mesh, MeshConfig, Role};

fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

fn config() -> MeshConfig {
    MeshConfig {
        gossip_interval: Duration::from_millis(200),
        probe_period: Duration::from_millis(500),
        probe_rtt: Duration::from_millis(250),
        suspect_to_down: Duration::from_secs(2),
        join_retry: Duration::from_millis(300),
        ..MeshConfig::default()
    }
}

fn scratch(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("sair-mesh-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Member {
    mesh: Mesh,
    transport: QuicTransport,
}

fn start(name: &str, tls: &MeshTls, seeds: &[SocketAddr]) -> Member {
    let (transport, inbound) =
        QuicTransport::bind("127.0.0.1:0".parse().unwrap(), tls, MeshMetrics::noop()).unwrap();
    use sair_mesh::transport::Transport;
    let id = MemberId::try_new(name, Role::Agent, transport.local_addr(), 1).unwrap();
    let mesh = Mesh::start(
        id,
        config(),
        transport.clone(),
        inbound,
        seeds,
        MeshMetrics::noop(),
    );
    Member { mesh, transport }
}

async fn eventually(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(elapsed = ?start.elapsed(), what, "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_share_state_and_detect_a_kill_over_quic() {
    init();
    let dir = scratch("quic");
    let ca = certs::init_ca(&dir.join("ca")).unwrap();
    let tls = |name: &str| {
        let f = certs::issue(&dir.join("ca"), name, &dir.join(name)).unwrap();
        MeshTls::from_files(&f.cert, &f.key, &ca.cert).unwrap()
    };
    let a = start("a", &tls("a"), &[]);
    let seed = [a.mesh.addr()];
    let b = start("b", &tls("b"), &seed);
    let c = start("c", &tls("c"), &seed);
    let all = [&a, &b, &c];
    eventually(
        "three alive everywhere",
        Duration::from_secs(20),
        async || all.iter().all(|m| m.mesh.view().alive() == ["a", "b", "c"]),
    )
    .await;

    b.mesh
        .set("gpu/0", b"util=0.7".to_vec())
        .await
        .unwrap()
        .unwrap();
    eventually("b's key everywhere", Duration::from_secs(10), async || {
        for m in all {
            if m.mesh.get("b", "gpu/0").await.unwrap().as_deref() != Some(&b"util=0.7"[..]) {
                return false;
            }
        }
        true
    })
    .await;

    c.mesh.abort();
    c.transport.close();
    eventually("c declared dead", Duration::from_secs(20), async || {
        [&a, &b]
            .iter()
            .all(|m| m.mesh.view().state_of("c") == Some(State::Down))
    })
    .await;
    assert_eq!(a.transport.tls_refused() + b.transport.tls_refused(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_foreign_ca_is_refused_and_counted() {
    init();
    let cluster = ClusterCa::generate().unwrap();
    let foreign = ClusterCa::generate().unwrap();
    let a = start("a", &cluster.issue("a").unwrap(), &[]);
    let b = start("b", &cluster.issue("b").unwrap(), &[a.mesh.addr()]);
    // x belongs to another cluster: it refuses a's certificate (client side).
    let x = start("x", &foreign.issue("x").unwrap(), &[a.mesh.addr()]);
    // y trusts our CA but holds a certificate from another: a refuses it (server side).
    let mut y_tls = foreign.issue("y").unwrap();
    y_tls.ca = cluster.cert_der();
    let y = start("y", &y_tls, &[a.mesh.addr()]);
    eventually("a and b joined", Duration::from_secs(20), async || {
        [&a, &b].iter().all(|m| m.mesh.view().alive() == ["a", "b"])
    })
    .await;
    eventually("refusals counted", Duration::from_secs(20), async || {
        a.transport.tls_refused() > 0 && x.transport.tls_refused() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(x.mesh.view().alive(), ["x"]);
    assert_eq!(y.mesh.view().alive(), ["y"]);
    for m in [&a, &b] {
        assert_eq!(m.mesh.view().alive(), ["a", "b"]);
        assert_eq!(m.mesh.view().state_of("x"), None);
        assert_eq!(m.mesh.view().state_of("y"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_and_streams_are_refused_and_the_member_stays_healthy() {
    init();
    let ca = ClusterCa::generate().unwrap();
    let a = start("a", &ca.issue("a").unwrap(), &[]);
    let b = start("b", &ca.issue("b").unwrap(), &[a.mesh.addr()]);
    eventually("joined", Duration::from_secs(20), async || {
        a.mesh.view().alive() == ["a", "b"]
    })
    .await;
    // A CA-signed but misbehaving peer: raw garbage on its own transport.
    let (rogue, _inbound) = QuicTransport::bind(
        "127.0.0.1:0".parse().unwrap(),
        &ca.issue("rogue").unwrap(),
        MeshMetrics::noop(),
    )
    .unwrap();
    use sair_mesh::transport::Transport;
    use tokio::io::AsyncWriteExt;
    rogue.send_datagram(a.mesh.addr(), bytes::Bytes::from_static(&[0xff; 40]));
    let mut s = rogue.open_stream(a.mesh.addr()).await.unwrap();
    s.send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    s.send.shutdown().await.unwrap();
    eventually("refusals counted", Duration::from_secs(10), async || {
        a.mesh.stats().await.unwrap().frames_refused >= 2
    })
    .await;
    b.mesh.set("k", b"v".to_vec()).await.unwrap().unwrap();
    eventually("still converging", Duration::from_secs(10), async || {
        a.mesh.get("b", "k").await.unwrap().is_some()
    })
    .await;
}
