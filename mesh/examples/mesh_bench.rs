//! Mesh benchmark, in process: how long one key change takes to reach every member, how long
//! a killed member takes to be declared dead everywhere, and the bytes each member sends per
//! second at rest, for N members on the cuttable in-process network.
//!
//! Times are cluster time on tokio's paused clock: they measure the protocol (rounds, probe
//! periods, suspicion), not this machine's CPU. Bytes are mesh frame bytes (datagram payloads
//! and stream frames); QUIC, UDP and IP headers come on top (see the packet counts).
//!
//! Each N runs twice in the same process: sair-mesh, then chitchat (crates.io, Quickwit's
//! scuttlebutt gossip, see `mesh_bench/chitchat.rs`) with the same gossip interval, seeding,
//! writes and kill, on the same paused clock. `--no-chitchat` skips the second.
//!
//!     cargo run -p sair-mesh --example mesh_bench -- 8 32 128

#[path = "mesh_bench/chitchat.rs"]
mod chitchat;

use std::time::{Duration, Instant};

use foca::State;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::test_util::{Cluster, On, Predicate};
use sair_mesh::{MeshConfig, Role};

fn counter(rec: &PrometheusRecorder, line_start: &str) -> f64 {
    rec.handle()
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn exchanges(c: &Cluster) -> u64 {
    let mut n = 0;
    for name in c.running() {
        n += c.mesh(&name).stats().await.map_or(0, |s| s.exchanges);
    }
    n
}

struct Row {
    n: usize,
    join: Duration,
    control: Duration,
    bulk: Duration,
    detect: Duration,
    bytes_per_member_s: f64,
    datagrams_per_member_s: f64,
    exchanges_per_member_s: f64,
    wall: Duration,
}

async fn bench(n: usize) -> Row {
    let wall = Instant::now();
    let config = MeshConfig {
        expected_members: n as u32,
        ..MeshConfig::default()
    };
    let rec = PrometheusBuilder::new().build_recorder();
    let mut c = Cluster::with_metrics(config, MeshMetrics::register(&rec));
    let names: Vec<String> = (0..n).map(|i| format!("m{i:03}")).collect();
    let t0 = tokio::time::Instant::now();
    for (i, name) in names.iter().enumerate() {
        let role = if i < 2 {
            Role::Coordinator
        } else {
            Role::Agent
        };
        // Each joins through one of the first three members.
        let seed = names[i.saturating_sub(1).min(i % 3)].clone();
        let seeds: Vec<&str> = if i == 0 { vec![] } else { vec![seed.as_str()] };
        c.spawn(name, role, &seeds);
    }
    let everyone: Vec<String> = names.clone();
    let limit = Duration::from_secs(120);
    c.eventually(
        limit,
        &Predicate::Alive {
            on: On::All,
            members: everyone.clone(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("N={n}: join: {}", e.lines().next().unwrap_or("")));
    let join = t0.elapsed();
    // Let announcements and the initial state settle.
    tokio::time::sleep(Duration::from_secs(10)).await;

    // At rest.
    let b0 = counter(&rec, "sair_mesh_bytes_total{direction=\"out\"}");
    let d0 = c.net.stats().datagrams;
    let x0 = exchanges(&c).await;
    let rest = Duration::from_secs(20);
    tokio::time::sleep(rest).await;
    let secs = rest.as_secs_f64() * n as f64;
    let bytes_per_member_s =
        (counter(&rec, "sair_mesh_bytes_total{direction=\"out\"}") - b0) / secs;
    let datagrams_per_member_s = (c.net.stats().datagrams - d0) as f64 / secs;
    let exchanges_per_member_s = (exchanges(&c).await - x0) as f64 / secs;

    // One control key and one bulk key written on one member.
    let writer = &names[n / 2];
    let t = tokio::time::Instant::now();
    c.mesh(writer)
        .set("ctl/bench", b"1".to_vec())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("set"));
    let sees = |key: &str, value: &[u8]| Predicate::Sees {
        on: On::All,
        member: writer.clone(),
        key: key.into(),
        value: Some(value.to_vec()),
    };
    c.eventually(limit, &sees("ctl/bench", b"1"))
        .await
        .unwrap_or_else(|e| panic!("N={n}: control: {e}"));
    let control = t.elapsed();
    let t = tokio::time::Instant::now();
    c.mesh(writer)
        .set("report/bench", vec![7; 300])
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("set"));
    c.eventually(limit, &sees("report/bench", &[7; 300]))
        .await
        .unwrap_or_else(|e| panic!("N={n}: bulk: {e}"));
    let bulk = t.elapsed();

    // Kill one member; time until every other member holds it dead.
    let victim = names[n - 1].clone();
    c.kill(&victim);
    let t = tokio::time::Instant::now();
    c.eventually(
        limit,
        &Predicate::MemberState {
            on: On::All,
            member: victim.clone(),
            state: Some(State::Down),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("N={n}: detect: {}", e.lines().next().unwrap_or("")));
    let detect = t.elapsed();
    for name in c.running() {
        c.mesh(&name).abort();
    }
    Row {
        n,
        join,
        control,
        bulk,
        detect,
        bytes_per_member_s,
        datagrams_per_member_s,
        exchanges_per_member_s,
        wall: wall.elapsed(),
    }
}

fn print_row(system: &str, r: &Row) {
    let exchanges = if r.exchanges_per_member_s.is_nan() {
        "-".to_string()
    } else {
        format!("{:.1}", r.exchanges_per_member_s)
    };
    println!(
        "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.0} | {:.1} | {} | {:.1} s |",
        r.n,
        system,
        r.join.as_secs_f64(),
        r.control.as_secs_f64(),
        r.bulk.as_secs_f64(),
        r.detect.as_secs_f64(),
        r.bytes_per_member_s,
        r.datagrams_per_member_s,
        exchanges,
        r.wall.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_chitchat = !args.iter().any(|a| a == "--no-chitchat");
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![8, 32, 128]
    } else {
        sizes
    };
    let c = MeshConfig::default();
    println!(
        "gossip interval {:?}, fanout {}, probe period {:?}, probe rtt {:?}, suspect->dead {:?}",
        c.gossip_interval, c.gossip_fanout, c.probe_period, c.probe_rtt, c.suspect_to_down
    );
    println!(
        "| N | system | join (all see N alive) | 1-byte key to all | 300-byte key to all | kill to dead on all | bytes/member/s at rest | messages/member/s at rest | exchanges started/member/s | wall time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    };
    for n in sizes {
        // A fresh runtime per run, so no task of one run (or of the other system) is left.
        let r = runtime().block_on(bench(n));
        print_row("sair-mesh (ctl/ key; bulk key)", &r);
        if with_chitchat {
            let r = runtime().block_on(chitchat::bench(n, c.gossip_interval));
            print_row("chitchat 0.13", &r);
        }
    }
}
