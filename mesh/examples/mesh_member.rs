//! One mesh member as its own process, for tests that put members in separate network
//! namespaces (`tests/netns.rs`): real QUIC with mutual TLS, the default configuration.
//!
//!     mesh_member NAME LISTEN_ADDR CERT_DIR [SEED_ADDR,...]
//!
//! `CERT_DIR` holds `ca.pem` and `NAME/NAME.pem`, `NAME/NAME.key` (what `certs::init_ca` and
//! `certs::issue` write). Every 100 ms it prints one line, `view alive=a,b,c dead=d keys=m:v,…`
//! (the members it holds alive and dead, and the value of the key `ctl/probe` of every alive
//! member). Each line read on stdin, `set VALUE`, writes `ctl/probe = VALUE` on this member.
//! It exits when stdin closes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use foca::State;
use sair_mesh::certs::MeshTls;
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{MemberId, Mesh, MeshConfig, Role};
use tokio::io::{AsyncBufReadExt, BufReader};

const KEY: &str = "ctl/probe";

fn fail(what: &str) -> ! {
    eprintln!("mesh_member: {what}");
    std::process::exit(64)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, listen, dir, rest @ ..] = args.as_slice() else {
        fail("usage: mesh_member NAME LISTEN_ADDR CERT_DIR [SEED_ADDR,...]")
    };
    let listen: SocketAddr = listen
        .parse()
        .unwrap_or_else(|_| fail("LISTEN_ADDR is not an address"));
    let seeds: Vec<SocketAddr> = rest
        .first()
        .map(|s| {
            s.split(',')
                .map(|a| {
                    a.parse()
                        .unwrap_or_else(|_| fail("a seed is not an address"))
                })
                .collect()
        })
        .unwrap_or_default();
    let dir = Path::new(dir);
    let tls = MeshTls::from_files(
        &dir.join(name).join(format!("{name}.pem")),
        &dir.join(name).join(format!("{name}.key")),
        &dir.join("ca.pem"),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let (transport, inbound) = QuicTransport::bind(listen, &tls, MeshMetrics::noop())
        .unwrap_or_else(|e| fail(&e.to_string()));
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let id = MemberId::try_new(name, Role::Agent, transport.local_addr(), unix_ms)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let mesh = Mesh::start(
        id,
        MeshConfig::default(),
        transport,
        inbound,
        &seeds,
        MeshMetrics::noop(),
    );

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            line = stdin.next_line() => match line {
                Ok(Some(l)) => {
                    if let Some(v) = l.strip_prefix("set ") {
                        match mesh.set(KEY, v.as_bytes().to_vec()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => eprintln!("mesh_member: set refused: {e}"),
                            Err(_) => fail("the mesh stopped"),
                        }
                    }
                }
                // stdin closed (the test ended or died): leave and exit.
                _ => break,
            },
            _ = tick.tick() => {
                let view = mesh.view();
                let alive: Vec<&str> = view.alive();
                let dead: Vec<&str> = view
                    .members
                    .iter()
                    .filter(|(_, s)| *s == State::Down)
                    .map(|(m, _)| m.name.as_str())
                    .collect();
                let mut keys = Vec::new();
                for m in &alive {
                    if let Ok(Some(v)) = mesh.get(m, KEY).await {
                        keys.push(format!("{m}:{}", String::from_utf8_lossy(&v)));
                    }
                }
                println!(
                    "view alive={} dead={} keys={}",
                    alive.join(","),
                    dead.join(","),
                    keys.join(",")
                );
            }
        }
    }
    mesh.shutdown().await;
}
