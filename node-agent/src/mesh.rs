//! The node agent as a member of the gossip mesh (`sair-mesh`), on when `--mesh-listen` is
//! given.
//!
//! It publishes what the node knows — its GPUs (count, measured utilisation), its segments
//! (GPU, mode, ρ target, measured share) and the latest StageReport per (pipeline, stage,
//! replica) — as bulk keys ([`sair_wire::keys`], shared with the coordinator), and takes the leader's ρ targets (`ctl/rho/…`, control
//! keys) through the [`crate::target::TargetSource`] seam, fenced by epoch ([`rho`]), so the
//! commitment check (Σρ ≤ 1) applies to them exactly as to `set-rate`.
//!
//! Start-up: [`MeshArgs::plan`] (`sair_service::mesh`, shared with the coordinator) checks
//! the flags before anything binds (a bad `--mesh-listen`
//! or `--seeds` is exit 64 naming the flag); [`MeshMember::start`] loads the certificates
//! (unreadable files: exit 64 naming `--cert`, `--key` or `--ca`) and binds the QUIC endpoint.
//! Shutdown: [`MeshMember::run`] returns when its stop signal turns true, after leaving the
//! cluster gracefully (peers are told at once instead of suspecting it).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Counter;
use sair_mesh::certs::MeshTls;
use sair_mesh::leader::EPOCH_KEY;
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{MemberId, Mesh, MeshConfig, Role};
use sair_shm::Mode;
use sair_wire::keys;
use tokio::sync::{mpsc, watch};

use crate::AgentError;
use crate::measure::{NvmlMeter, Utilization};
use crate::reports::ReportStore;
use crate::target::TargetUpdate;

pub mod rho;

use rho::{Outcome, RhoBook};

/// How often the node's facts are published (and decisions re-read).
pub const PUBLISH_PERIOD: Duration = Duration::from_secs(1);

/// The mesh options of `run` (`--mesh-listen`, `--seeds`, `--cert`, `--key`, `--ca`), shared
/// with the coordinator: without `--mesh-listen` the agent is not on the mesh and the others
/// must not be given. A bad one is a configuration error (exit 64) naming the flag; a seed
/// name that does not resolve yet exits 69.
pub use sair_service::mesh::{MeshArgs, MeshFlagError, MeshPlan};

impl From<MeshFlagError> for AgentError {
    fn from(e: MeshFlagError) -> Self {
        if e.is_unavailable() {
            // Not the operator's mistake: the seed's name has no address yet (exit 69).
            AgentError::Mesh(e.to_string())
        } else {
            AgentError::Config(e.to_string())
        }
    }
}

fn config_error(msg: String) -> AgentError {
    AgentError::Config(msg)
}

/// Loads `--cert`, `--key` and `--ca` of `plan`; an error names the flag and the file.
pub fn tls(plan: &MeshPlan) -> Result<MeshTls, AgentError> {
    MeshTls::from_files(&plan.cert, &plan.key, &plan.ca).map_err(|e| {
        config_error(format!(
            "{}: {e}",
            e.member_file(&plan.key, &plan.ca).flag()
        ))
    })
}

/// Pre-resolved handles of `sair_agent_mesh_decisions_total`, one per [`Outcome`].
#[derive(Debug, Clone)]
struct DecisionMetrics([Counter; 4]);

impl DecisionMetrics {
    fn new(node: &str) -> Self {
        Self(Outcome::ALL.map(|o| {
            metrics::counter!(
                crate::metrics::AGENT_MESH_DECISIONS_TOTAL,
                "node" => node.to_owned(),
                "outcome" => o.as_str()
            )
        }))
    }

    fn count(&self, o: Outcome) {
        if let Some(c) = Outcome::ALL
            .iter()
            .position(|x| *x == o)
            .and_then(|i| self.0.get(i))
        {
            c.increment(1);
        }
    }
}

/// A running mesh member of this agent.
#[derive(Debug)]
pub struct MeshMember {
    mesh: Mesh,
    targets: mpsc::UnboundedSender<TargetUpdate>,
    meter: Option<NvmlMeter>,
    decisions: DecisionMetrics,
}

/// What one look at the node found.
#[derive(Debug, Default)]
struct Facts {
    /// Key → value to publish.
    keys: BTreeMap<String, Vec<u8>>,
    /// The segments and their modes (for ρ targets).
    segments: Vec<(String, Mode)>,
}

impl MeshMember {
    /// Loads the certificates, binds the endpoint on `plan.listen` and joins through the
    /// seeds, as member `node`. Updates for the segments go to `targets` (the daemon's
    /// [`crate::target::ChannelSource`]). The mesh metrics are registered on the process's
    /// recorder (install it first), so they appear on the agent's `/metrics`.
    pub fn start(
        plan: &MeshPlan,
        node: &str,
        nvml_lib: Option<&PathBuf>,
        targets: mpsc::UnboundedSender<TargetUpdate>,
    ) -> Result<Self, AgentError> {
        sair_mesh::id::validate_name(node)
            .map_err(|e| config_error(format!("--node {node:?}: {e}")))?;
        let tls = tls(plan)?;
        let config = MeshConfig::default();
        config
            .validate()
            .map_err(|e| config_error(format!("mesh configuration: {e}")))?;
        let metrics = metrics::with_recorder(MeshMetrics::register);
        let (transport, inbound) = QuicTransport::bind(plan.listen, &tls, metrics.clone())
            .map_err(|e| AgentError::Mesh(e.to_string()))?;
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let id = MemberId::try_new(node, Role::Agent, transport.local_addr(), generation)
            .map_err(|e| config_error(format!("--node {node:?}: {e}")))?;
        let mesh = Mesh::start(id, config, transport, inbound, &plan.seeds, metrics);
        // A second handle on NVML for the GPU facts; the control loop keeps its own.
        let meter = NvmlMeter::load(nvml_lib).ok();
        Ok(Self {
            mesh,
            targets,
            meter,
            decisions: DecisionMetrics::new(node),
        })
    }

    /// The bound mesh address (role `mesh` on the bound line).
    pub fn addr(&self) -> SocketAddr {
        self.mesh.addr()
    }

    /// Publishes the node's facts every [`PUBLISH_PERIOD`] and hands admitted ρ targets on,
    /// until `stop` turns true; then leaves the cluster.
    pub async fn run(
        mut self,
        store: Arc<Mutex<ReportStore>>,
        shm_dir: PathBuf,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut changes = match self.mesh.subscribe("ctl/") {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::error!(error = %e, "mesh member stopped before it could subscribe");
                None
            }
        };
        let mut book = RhoBook::default();
        let mut published: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut refused: HashSet<String> = HashSet::new();
        let mut segments: Vec<(String, Mode)> = Vec::new();
        let mut tick = tokio::time::interval(PUBLISH_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        enum Wake {
            Stop,
            Tick,
            Control,
        }
        loop {
            let wake = tokio::select! {
                _ = stop.wait_for(|s| *s) => Wake::Stop,
                _ = tick.tick() => Wake::Tick,
                Some(_) = async {
                    match changes.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => Wake::Control,
            };
            match wake {
                Wake::Stop => break,
                Wake::Tick => {
                    let facts = self.gather(&store, &shm_dir).await;
                    segments = facts.segments;
                    self.publish(facts.keys, &mut published, &mut refused).await;
                }
                Wake::Control => {
                    // A control key changed: read them all now (drain what else queued).
                    if let Some(rx) = changes.as_mut() {
                        while rx.try_recv().is_ok() {}
                    }
                }
            }
            self.take_targets(&mut book, &segments).await;
        }
        self.mesh.shutdown().await;
        tracing::info!("left the mesh");
    }

    /// Reads the segments, the GPUs and the reports (file and NVML I/O off the runtime).
    async fn gather(&mut self, store: &Arc<Mutex<ReportStore>>, shm_dir: &Path) -> Facts {
        let meter = self.meter.take();
        let dir = shm_dir.to_path_buf();
        let joined = tokio::task::spawn_blocking(move || {
            let mut meter = meter;
            let facts = node_facts(&dir, meter.as_mut());
            (meter, facts)
        })
        .await;
        let mut facts = match joined {
            Ok((meter, facts)) => {
                self.meter = meter;
                facts
            }
            Err(e) => {
                tracing::error!(error = %e, "gathering the node's facts failed");
                Facts::default()
            }
        };
        let reports: Vec<(String, Vec<u8>)> = {
            let store = store.lock().unwrap_or_else(|p| p.into_inner());
            store
                .iter()
                .map(|r| (keys::report_key(r), keys::encode(r)))
                .collect()
        };
        facts.keys.extend(reports);
        facts
    }

    /// Writes what changed since the last round and deletes what is gone.
    async fn publish(
        &self,
        want: BTreeMap<String, Vec<u8>>,
        published: &mut BTreeMap<String, Vec<u8>>,
        refused: &mut HashSet<String>,
    ) {
        let gone: Vec<String> = published
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            match self.mesh.delete(&k).await {
                Ok(Ok(())) | Ok(Err(_)) => {
                    published.remove(&k);
                }
                Err(_) => return,
            }
        }
        for (k, v) in want {
            if published.get(&k) == Some(&v) {
                continue;
            }
            match self.mesh.set(&k, v.clone()).await {
                Ok(Ok(())) => {
                    refused.remove(&k);
                    published.insert(k, v);
                }
                Ok(Err(e)) => {
                    if refused.insert(k.clone()) {
                        tracing::warn!(key = k, error = %e, "mesh refused a key (logged once per key)");
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Re-reads the epoch claims and the ρ decisions, and hands on what is new.
    async fn take_targets(&self, book: &mut RhoBook, segments: &[(String, Mode)]) {
        let leader = self.mesh.view().leader;
        let (Ok(claims), Ok(decisions)) = (
            self.mesh.scan(EPOCH_KEY).await,
            self.mesh.scan(keys::RHO_PREFIX).await,
        ) else {
            return;
        };
        let claims: Vec<_> = claims
            .into_iter()
            .filter(|(_, k, _)| k == EPOCH_KEY)
            .collect();
        book.observe(&claims, leader.as_deref());
        for outcome in book.evaluate(decisions, leader.as_deref()) {
            self.decisions.count(outcome);
            match outcome {
                Outcome::Admitted => tracing::info!(?leader, "ρ decision admitted"),
                other => tracing::warn!(outcome = other.as_str(), ?leader, "ρ decision ignored"),
            }
        }
        for u in book.updates(segments) {
            tracing::info!(
                segment = u.segment,
                rate = u.rate,
                "ρ target from the leader"
            );
            if self.targets.send(u).is_err() {
                return; // the daemon has stopped
            }
        }
    }
}

/// Rounds a share to 1e-3 so that noise below the meter's resolution does not rewrite keys.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The GPU and segment keys of the node.
fn node_facts(shm_dir: &Path, meter: Option<&mut NvmlMeter>) -> Facts {
    let mut facts = Facts::default();
    match crate::ops::status(shm_dir, Duration::ZERO) {
        Ok(rows) => {
            for r in rows {
                let (Some(gpu), Some(mode), Some(target)) = (r.gpu, r.mode, r.target) else {
                    continue;
                };
                let value = keys::SegmentFacts {
                    gpu,
                    mode: mode.to_owned(),
                    target: round(target),
                    measured: r.measured.map(round),
                };
                facts
                    .keys
                    .insert(keys::segment_key(&r.segment), keys::encode(&value));
                if let Ok(m) = mode.parse::<Mode>() {
                    facts.segments.push((r.segment, m));
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "segments unreadable for the mesh"),
    }
    if let Some(meter) = meter {
        match meter.device_count() {
            Ok(count) => {
                for gpu in 0..count.min(crate::bounds::MAX_GPUS) {
                    let value = keys::GpuFacts {
                        count,
                        utilization: meter.device(gpu).ok().map(round),
                    };
                    facts.keys.insert(keys::gpu_key(gpu), keys::encode(&value));
                }
            }
            Err(e) => tracing::debug!(error = %e, "GPU count unavailable for the mesh"),
        }
    }
    facts
}

#[cfg(test)]
mod tests;
