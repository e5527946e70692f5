//! The same benchmark against chitchat (crates.io), in the same process and on the same paused
//! clock: N nodes on chitchat's in-process `ChannelTransport` (it serialises every message, so
//! its byte counter is chitchat's real wire size, compression included), gossip interval 200 ms.
//!
//! chitchat has no key classes, so "control" is a 1-byte value and "bulk" a 300-byte one, as for
//! sair-mesh. Its failure detector is phi-accrual; we use Quickwit's settings (phi threshold 8,
//! initial interval = the gossip interval): with chitchat's own default initial interval (5 s)
//! a fresh cluster would take longer to detect anything, which would flatter us.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use chitchat::transport::ChannelTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, spawn_chitchat};

use super::Row;

/// Polling step of the predicates, the same as sair-mesh's `Cluster::eventually`.
const POLL: Duration = Duration::from_millis(20);

fn addr(i: usize) -> SocketAddr {
    // Logical ports on the channel transport; nothing binds.
    SocketAddr::from((Ipv4Addr::LOCALHOST, 20_000 + i as u16))
}

fn config(i: usize, gossip_interval: Duration, seeds: Vec<String>) -> ChitchatConfig {
    ChitchatConfig {
        chitchat_id: ChitchatId::new(format!("m{i:03}"), 0, addr(i)),
        cluster_id: "bench".into(),
        gossip_interval,
        listen_addr: addr(i),
        seed_nodes: seeds,
        failure_detector_config: FailureDetectorConfig {
            initial_interval: gossip_interval,
            ..FailureDetectorConfig::default()
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        // V1 compresses the digest too: the newest format, all nodes of this cluster run it.
        protocol_version: chitchat::ProtocolVersion::V1,
    }
}

/// Polls `check` on every running node until it holds on all of them, or `within` passes.
async fn eventually<F>(
    nodes: &[Option<ChitchatHandle>],
    within: Duration,
    what: &str,
    check: F,
) -> Duration
where
    F: Fn(&chitchat::Chitchat) -> bool,
{
    let t = tokio::time::Instant::now();
    loop {
        let mut all = true;
        for node in nodes.iter().flatten() {
            let chitchat = node.chitchat();
            let guard = chitchat.lock().await;
            if !check(&guard) {
                all = false;
                break;
            }
        }
        if all {
            return t.elapsed();
        }
        if t.elapsed() > within {
            panic!("chitchat: {what}: not within {within:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Writes `key` on node `w`; time until every running node holds that value.
async fn key_time(
    nodes: &[Option<ChitchatHandle>],
    w: usize,
    key: &'static str,
    value: String,
    limit: Duration,
) -> Duration {
    let writer_id = ChitchatId::new(format!("m{w:03}"), 0, addr(w));
    if let Some(writer) = nodes[w].as_ref() {
        writer
            .with_chitchat(|c| c.self_node_state().set(key, &value))
            .await;
    }
    eventually(nodes, limit, key, |c| {
        c.node_state(&writer_id).and_then(|s| s.get(key)) == Some(value.as_str())
    })
    .await
}

pub async fn bench(n: usize, gossip_interval: Duration) -> Row {
    let wall = Instant::now();
    let transport = ChannelTransport::default();
    let limit = Duration::from_secs(120);
    let t0 = tokio::time::Instant::now();
    let mut nodes: Vec<Option<ChitchatHandle>> = Vec::with_capacity(n);
    for i in 0..n {
        // The same seeding as sair-mesh's run: each joins through one of the first three.
        let seeds = if i == 0 {
            vec![]
        } else {
            vec![addr(i.saturating_sub(1).min(i % 3)).to_string()]
        };
        let handle = spawn_chitchat(config(i, gossip_interval, seeds), Vec::new(), &transport)
            .await
            .unwrap_or_else(|e| panic!("chitchat: spawn m{i:03}: {e}"));
        nodes.push(Some(handle));
    }
    eventually(&nodes, limit, "join", |c| c.live_nodes().count() == n).await;
    let join = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;

    let b0 = transport.statistics();
    let rest = Duration::from_secs(20);
    tokio::time::sleep(rest).await;
    let b1 = transport.statistics();
    let secs = rest.as_secs_f64() * n as f64;
    let bytes_per_member_s = (b1.num_bytes_total - b0.num_bytes_total) as f64 / secs;
    let datagrams_per_member_s = (b1.num_messages_total - b0.num_messages_total) as f64 / secs;

    let w = n / 2;
    let control = key_time(&nodes, w, "ctl/bench", "1".into(), limit).await;
    let bulk = key_time(&nodes, w, "report/bench", "7".repeat(300), limit).await;

    let victim = n - 1;
    let victim_id = ChitchatId::new(format!("m{victim:03}"), 0, addr(victim));
    if let Some(handle) = nodes[victim].take() {
        // Stops its server task; its socket closes, so nothing reaches it any more.
        handle.abort();
    }
    let detect = eventually(&nodes, limit, "detect", |c| {
        c.dead_nodes().any(|id| *id == victim_id)
    })
    .await;
    for node in nodes.iter().flatten() {
        node.abort();
    }
    Row {
        n,
        join,
        control,
        bulk,
        detect,
        bytes_per_member_s,
        datagrams_per_member_s,
        exchanges_per_member_s: f64::NAN,
        wall: wall.elapsed(),
    }
}
