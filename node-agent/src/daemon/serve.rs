//! `run`: the control thread, the HTTP endpoint and the report ingest, with the shutdown
//! handshake described in [`super`].

use super::{ControlLoop, DaemonConfig};
use crate::AgentError;
use crate::measure::Utilization;
use crate::metrics::AgentMetrics;
use crate::reports::ReportStore;
use crate::target::TargetSource;
use metrics_exporter_prometheus::PrometheusHandle;
use sair_service::admin::Admin;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What `run` serves on.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The admin server: `/metrics`, `/healthz`, `/readyz` ([`sair_service::admin`]).
    pub metrics: Option<tokio::net::TcpListener>,
    /// QUIC endpoint receiving `StageReport`s.
    pub reports: Option<quinn::Endpoint>,
    /// The gossip mesh member (publishes the node's facts and reports, takes ρ targets);
    /// it leaves the cluster on shutdown.
    pub mesh: Option<crate::mesh::MeshMember>,
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    cfg: DaemonConfig,
    listeners: Listeners,
    util: Option<Box<dyn Utilization>>,
    targets: Box<dyn TargetSource>,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    // The daemon owns its directory (a hostPath in Kubernetes): it creates the tree, unlike
    // `set-rate`, which creates only the last component.
    std::fs::create_dir_all(&cfg.shm_dir).map_err(|source| AgentError::Io {
        op: "create shm dir",
        path: cfg.shm_dir.clone(),
        source,
    })?;
    let metrics = AgentMetrics::new(&cfg.node);
    let store = Arc::new(Mutex::new(ReportStore::new(cfg.max_report_keys)));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let period = cfg.period;
    let shm_dir = cfg.shm_dir.clone();
    let mut ctl = ControlLoop::new(cfg, util, targets, metrics.clone());
    // `/readyz` answers 200 once the first tick has adopted the segments on disk, and then
    // while the loop can list and write the shm dir and read NVML (each tick says why not).
    let readiness: Arc<Mutex<Result<(), String>>> = Arc::new(Mutex::new(Err(
        "the control loop has not adopted the segments yet".to_owned(),
    )));
    let ticked = readiness.clone();
    let control = std::thread::Builder::new()
        .name("sair-agent-control".into())
        .spawn(move || {
            let mut next = Instant::now();
            loop {
                ctl.tick(Instant::now());
                let now_ready = ctl.readiness();
                match ticked.lock() {
                    Ok(mut r) => *r = now_ready,
                    Err(poisoned) => *poisoned.into_inner() = now_ready,
                }
                next += period;
                let now = Instant::now();
                if next < now {
                    next = now;
                }
                match stop_rx.recv_timeout(next - now) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        })
        .map_err(|source| AgentError::Io {
            op: "spawn control thread",
            path: PathBuf::new(),
            source,
        })?;
    let (http_stop_tx, http_stop_rx) = tokio::sync::watch::channel(false);
    let admin = Admin::new(move || handle.render()).readiness(move || match readiness.lock() {
        Ok(r) => r.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    });
    let http = listeners.metrics.map(|l| {
        let mut stop = http_stop_rx.clone();
        tokio::spawn(sair_service::admin::run(l, admin, async move {
            // A dropped sender also means stop.
            let _ = stop.wait_for(|s| *s).await;
        }))
    });
    let ingest = listeners.reports.map(|ep| {
        tokio::spawn(crate::ingest::serve(
            ep,
            store.clone(),
            metrics.clone(),
            http_stop_rx.clone(),
        ))
    });
    let mesh = listeners
        .mesh
        .map(|m| tokio::spawn(m.run(store.clone(), shm_dir, http_stop_rx.clone())));
    shutdown.await;
    tracing::info!("shutting down");
    // Receivers gone means the tasks already ended: nothing to tell them.
    let _ = http_stop_tx.send(true);
    let _ = stop_tx.send(());
    for (what, task) in [("http", http), ("ingest", ingest), ("mesh", mesh)] {
        if let Some(Err(e)) = match task {
            Some(h) => Some(h.await),
            None => None,
        } {
            tracing::error!(task = what, error = %e, "task ended abnormally");
        }
    }
    match tokio::task::spawn_blocking(move || control.join()).await {
        Ok(Ok(())) => {}
        _ => tracing::error!("control thread panicked"),
    }
    Ok(())
}
