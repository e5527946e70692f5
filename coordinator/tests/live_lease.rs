//! Two live coordinators under an outside authority (the Kubernetes Lease, faked here by a
//! shared cell the gates read): the Lease holder leads even when it is not the lowest name,
//! exactly one coordinator decides and publishes ρ, an agent admits the holder's ρ decisions,
//! and a Lease handover fences the old holder (docs/coordinator.md, "Leadership").
//!
//! The real loops (`sair_coordinator::live::run::Live`) run on an in-process mesh
//! (`sair_mesh::transport::mem`), in real time (1 s polls), scaling one shared set of fake
//! Deployments that, as the `kubernetes` actuator does, refuse a coordinator without the Lease.
//! The two pipelines files differ (c1's starts `infer` at ρ 0.3, c2's at 0.5; both at one
//! replica while two are deployed): a coordinator that follows takes over from what is in force,
//! not from its own file.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use sair_actuator::retry::Backoff;
use sair_actuator::{Actuator, ActuatorError, BoxFuture, ReplicaStatus, StageRef};
use sair_coordinator::live::api::Shared;
use sair_coordinator::live::config::PipelinesFile;
use sair_coordinator::live::policy as live_policy;
use sair_coordinator::live::run::{Gate, Live, LoopOptions};
use sair_mesh::leader::{Admission, Decision, EPOCH_KEY, Epoch, Fence};
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::mem::MemNetwork;
use sair_mesh::{Candidacy, MemberId, Mesh, MeshConfig, Role};
use sair_wire::keys;

/// The pipelines file, `{rho}` the GPU stage's starting share.
const FILE: &str = r#"
[pipeline]
name = "p"
slo_p99_ms = 100
[[pipeline.stages]]
name = "pre"
kind = "cpu"
min_replicas = 1
max_replicas = 3
[[pipeline.stages]]
name = "infer"
kind = "gpu"
min_replicas = 1
max_replicas = 2
rho = {rho}
[cost]
cpu_replica = 1
gpu = 1
gpus = 1
"#;

/// The fake Lease: its holder and term (`leaseTransitions`).
type Lease = Arc<Mutex<Option<(&'static str, u64)>>>;

fn config(candidacy: Candidacy) -> MeshConfig {
    MeshConfig {
        gossip_interval: Duration::from_millis(100),
        probe_period: Duration::from_millis(300),
        probe_rtt: Duration::from_millis(100),
        suspect_to_down: Duration::from_millis(1200),
        forget_after: Duration::from_secs(10),
        announce_interval: Duration::from_secs(2),
        join_retry: Duration::from_millis(500),
        candidacy,
        ..MeshConfig::default()
    }
}

fn member(
    net: &MemNetwork,
    name: &str,
    role: Role,
    candidacy: Candidacy,
    seeds: &[std::net::SocketAddr],
) -> Mesh {
    let (transport, inbound) = net.bind();
    let id = MemberId::try_new(name, role, transport.local_addr(), 1)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Mesh::start(
        id,
        config(candidacy),
        transport,
        inbound,
        seeds,
        MeshMetrics::noop(),
    )
}

/// The Deployments both coordinators scale (as the API server holds them): a count per
/// stage; a scale from a coordinator that does not hold the Lease is refused and counted.
#[derive(Clone)]
struct Deployments {
    name: &'static str,
    lease: Lease,
    counts: Arc<Mutex<HashMap<StageRef, u32>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Actuator for Deployments {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn scale<'a>(
        &'a mut self,
        stage: &'a StageRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ActuatorError>> {
        Box::pin(async move {
            let holder = self
                .lease
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map(|l| l.0);
            if holder != Some(self.name) {
                let why = format!(
                    "{} scaled {stage} to {replicas} without the Lease",
                    self.name
                );
                self.refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(why.clone());
                return Err(ActuatorError::InvalidConfig {
                    stage: stage.clone(),
                    reason: why,
                });
            }
            self.counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(stage.clone(), replicas);
            Ok(())
        })
    }

    fn status<'a>(
        &'a mut self,
        stage: &'a StageRef,
    ) -> BoxFuture<'a, Result<ReplicaStatus, ActuatorError>> {
        Box::pin(async move {
            let n = self
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(stage)
                .copied()
                .ok_or_else(|| ActuatorError::UnknownStage {
                    actuator: "kubernetes",
                    stage: stage.clone(),
                })?;
            Ok(ReplicaStatus {
                desired: n,
                serving: n,
            })
        })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

struct Coordinator {
    shared: Arc<Mutex<Shared>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Coordinator {
    fn decisions(&self) -> usize {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .decisions
            .len()
    }

    /// The replica counts of the latest decision recorded.
    fn latest_replicas(&self) -> Option<Vec<u32>> {
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared
            .decisions
            .latest(1)
            .first()
            .map(|r| r.action.replicas.clone())
    }
}

fn coordinator(
    name: &'static str,
    rho: f64,
    mesh: Mesh,
    lease: &Lease,
    deployments: &Deployments,
) -> Coordinator {
    let text = FILE.replace("{rho}", &rho.to_string());
    let file = PipelinesFile::parse(&text, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let ctx = file.context(1.0, 1, None, None);
    let policy = live_policy::build("static", &file, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let actuator = Deployments {
        name,
        ..deployments.clone()
    };
    let shared = Shared::new(100);
    let lease = Arc::clone(lease);
    // As `LeaderWatch::held_term`: the Lease's term while this coordinator holds it.
    let gate: Gate = Box::new(move || {
        lease
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .filter(|(holder, _)| *holder == name)
            .map(|(_, term)| term)
    });
    let live = Live::new(
        file,
        name,
        policy,
        Box::new(actuator),
        mesh,
        Arc::clone(&shared),
        LoopOptions {
            interval: Duration::from_secs(1),
            stale_windows: 3.0,
            decisions_log: None,
            backoff: Backoff::default(),
        },
    )
    .gated_by(gate);
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let r = live
            .run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = r {
            panic!("{name}: the live loop failed: {e}");
        }
    });
    Coordinator { shared, stop, task }
}

/// The agent's reading of the mesh: its leader, and the ρ decision of `infer` by each author.
async fn agent_view(agent: &Mesh) -> (Option<String>, Vec<(String, Decision)>) {
    let leader = agent.view().leader;
    let decisions = agent
        .scan(keys::RHO_PREFIX)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(m, _, v)| Decision::from_bytes(&v).map(|d| (m, d)))
        .collect();
    (leader, decisions)
}

/// Waits (up to 20 s) until the agent follows `leader` and holds its ρ decision; returns it.
async fn until_leader_decides(agent: &Mesh, leader: &str) -> Decision {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (seen, decisions) = agent_view(agent).await;
        if seen.as_deref() == Some(leader)
            && let Some((_, d)) = decisions
                .iter()
                .find(|(m, d)| m == leader && d.epoch.leader == leader)
            && agent
                .get(leader, EPOCH_KEY)
                .await
                .ok()
                .flatten()
                .and_then(|b| Epoch::from_bytes(&b))
                .is_some_and(|e| e == d.epoch)
        {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the agent never followed {leader}: leader {seen:?}, decisions {decisions:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_holder_leads_though_not_the_lowest_name_and_a_handover_fences_it() {
    let net = MemNetwork::new();
    let agent = member(&net, "a1", Role::Agent, Candidacy::LowestName, &[]);
    let seed = [agent.addr()];
    // The Lease goes to c2, which sorts after c1: by name c1 would lead.
    let lease: Lease = Arc::new(Mutex::new(Some(("c2", 0))));
    // Deployed: pre 1, infer 2 (both files start infer at 1).
    let deployments = Deployments {
        name: "",
        lease: Arc::clone(&lease),
        counts: Arc::new(Mutex::new(HashMap::from([
            (StageRef::new("p", "pre"), 1),
            (StageRef::new("p", "infer"), 2),
        ]))),
        refused: Arc::new(Mutex::new(Vec::new())),
    };
    let c1 = coordinator(
        "c1",
        0.3,
        member(&net, "c1", Role::Coordinator, Candidacy::NotHolder, &seed),
        &lease,
        &deployments,
    );
    let c2 = coordinator(
        "c2",
        0.5,
        member(&net, "c2", Role::Coordinator, Candidacy::NotHolder, &seed),
        &lease,
        &deployments,
    );

    let first = until_leader_decides(&agent, "c2").await;
    tracing::info!(epoch = ?first.epoch, "the agent follows the Lease holder c2");
    // Let a few decision intervals pass: only the holder decides and publishes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (leader, decisions) = agent_view(&agent).await;
    assert_eq!(leader.as_deref(), Some("c2"));
    assert!(
        decisions.iter().all(|(m, _)| m == "c2"),
        "only the holder publishes ρ: {decisions:?}"
    );
    assert!(c2.decisions() > 0, "the holder decides");
    assert_eq!(c1.decisions(), 0, "c1 holds no Lease and stands by");
    // No report reaches the mesh here, so every decision holds the allocation in force: the
    // deployed counts, not the file's starting one.
    assert_eq!(c2.latest_replicas(), Some(vec![1, 2]));
    // The agent's fence admits the holder's ρ decision.
    let mut fence = Fence::default();
    assert_eq!(
        fence.admit(&first.epoch, leader.as_deref()),
        Admission::Admitted
    );
    let rho: keys::RhoTarget = keys::decode(&first.body).unwrap_or_else(|| panic!("a ρ body"));
    assert_eq!(rho.rho, 0.5);

    // Handover: c2 loses the Lease, c1 takes it (leaseTransitions 1).
    tracing::info!("the Lease passes to c1");
    *lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(("c1", 1));
    let second = until_leader_decides(&agent, "c1").await;
    assert!(
        second.epoch > first.epoch,
        "{:?} > {:?}",
        second.epoch,
        first.epoch
    );
    let (leader, _) = agent_view(&agent).await;
    assert_eq!(
        fence.admit(&second.epoch, leader.as_deref()),
        Admission::Admitted
    );
    // c1 took over from what was in force: c2's ρ (not its own file's 0.3) and the deployed
    // counts.
    let rho: keys::RhoTarget = keys::decode(&second.body).unwrap_or_else(|| panic!("a ρ body"));
    assert_eq!(rho.rho, 0.5, "the new leader republishes the ρ in force");
    // The old holder's decision is fenced: not the leader, and older than the admitted epoch.
    assert!(matches!(
        fence.admit(&first.epoch, leader.as_deref()),
        Admission::NotLeader { .. }
    ));
    assert!(matches!(
        fence.admit(&first.epoch, Some("c2")),
        Admission::StaleEpoch { .. }
    ));
    // c2 stands by: it records no further decision and publishes no newer ρ.
    let before = c2.decisions();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c2.decisions(), before, "the old holder stopped deciding");
    assert_eq!(c1.latest_replicas(), Some(vec![1, 2]));
    let (_, decisions) = agent_view(&agent).await;
    for (m, d) in &decisions {
        if m == "c1" {
            let t: keys::RhoTarget = keys::decode(&d.body).unwrap_or_else(|| panic!("a ρ body"));
            assert_eq!(t.rho, 0.5, "c1 holds the ρ it took over");
        }
    }
    // Nobody scaled without the Lease (a follower adopts the counts instead of imposing its
    // file's), and the counts are as deployed.
    let refused = deployments
        .refused
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        deployments
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&StageRef::new("p", "infer"))
            .copied(),
        Some(2)
    );
    let (_, decisions) = agent_view(&agent).await;
    for (m, d) in &decisions {
        if m == "c2" {
            assert_eq!(
                d.epoch, first.epoch,
                "c2 published nothing after the handover"
            );
        }
    }

    for c in [c1, c2] {
        let _ = c.stop.send(true);
        if let Err(e) = c.task.await {
            panic!("a coordinator task failed: {e}");
        }
    }
    agent.shutdown().await;
}
