//! Bytes a member sends at rest over real QUIC on loopback (all of it: QUIC, TLS and the mesh
//! frames; UDP/IP headers not included), for N members with the default configuration.
//!
//!     cargo run -p sair-mesh --example quic_rest -- 8 [PROBE_MS RTT_MS SUSPECT_MS]

use std::time::Duration;

use sair_mesh::certs::ClusterCa;
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{MemberId, Mesh, MeshConfig, Role};

#[tokio::main]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8);
    let ms = |i: usize, d: u64| {
        Duration::from_millis(
            std::env::args()
                .nth(i)
                .and_then(|a| a.parse().ok())
                .unwrap_or(d),
        )
    };
    let config = MeshConfig {
        probe_period: ms(2, 500),
        probe_rtt: ms(3, 200),
        suspect_to_down: ms(4, 2000),
        expected_members: n as u32,
        ..MeshConfig::default()
    };
    println!("{config:?}");
    let ca = ClusterCa::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut members: Vec<(Mesh, QuicTransport)> = Vec::new();
    for i in 0..n {
        let name = format!("m{i}");
        let tls = ca.issue(&name).unwrap_or_else(|e| panic!("{e}"));
        let (t, inbound) = QuicTransport::bind(
            "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            &tls,
            MeshMetrics::noop(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let id = MemberId::try_new(&name, Role::Agent, t.local_addr(), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let seeds: Vec<_> = members.first().map(|(m, _)| m.addr()).into_iter().collect();
        let mesh = Mesh::start(
            id,
            config.clone(),
            t.clone(),
            inbound,
            &seeds,
            MeshMetrics::noop(),
        );
        members.push((mesh, t));
    }
    let start = tokio::time::Instant::now();
    while !members.iter().all(|(m, _)| m.view().alive().len() == n) {
        let seen: Vec<usize> = members
            .iter()
            .map(|(m, _)| m.view().alive().len())
            .collect();
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no convergence; alive seen per member: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("joined in {:?}", start.elapsed());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = |ms: &[(Mesh, QuicTransport)]| {
        ms.iter().fold((0, 0), |(b, d), (_, t)| {
            let (b2, d2) = t.udp_sent();
            (b + b2, d + d2)
        })
    };
    let (b0, d0) = sent(&members);
    let rest = Duration::from_secs(20);
    tokio::time::sleep(rest).await;
    let (b1, d1) = sent(&members);
    let per = rest.as_secs_f64() * n as f64;
    println!(
        "N={n}: at rest, per member: {:.0} bytes/s of UDP payload ({:.1} datagrams/s); with 28 bytes of UDP+IPv4 header each: {:.0} bytes/s",
        (b1 - b0) as f64 / per,
        (d1 - d0) as f64 / per,
        ((b1 - b0) as f64 + 28.0 * (d1 - d0) as f64) / per
    );
}
