//! `LocalActuator`: a process supervisor on this machine. A replica is the stage's command (the
//! model server) plus a `sair-sidecar` in front of it; the supervisor keeps each stage's
//! `file:` endpoint list to the sidecars of its serving replicas. Replicas outlive a crashed
//! supervisor, and a restarted one adopts them. docs/actuator.md describes ports, files,
//! readiness, the drain order, restarts and adoption.

mod config;
mod endpoints;
mod process;
mod replica;

pub use config::{AgentLink, AgentTrust, LocalOptions, LocalStage, LocalStageRun};
pub use replica::{Phase, ReplicaView};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use endpoints::{ReplicaRecord, ServingSet};
use process::ProcId;
use replica::{SharedView, StagePlan};

use crate::{Actuator, ActuatorError, BoxFuture, ReplicaStatus, StageRef};

const NAME: &str = "local";

/// The local process supervisor. Build it with [`LocalActuator::new`] (checks every stage and
/// resolves every program before anything starts; adopts the replicas an earlier supervisor
/// with the same work dir left running; writes the endpoints files), then `scale` each stage
/// to its count. `scale`, `status` and `shutdown` must run inside a tokio runtime (replicas
/// are tasks). Only [`Actuator::shutdown`] stops replicas: dropping the actuator, or the
/// process dying, leaves them running for the next supervisor to adopt.
#[derive(Debug)]
pub struct LocalActuator {
    stages: BTreeMap<StageRef, StageRuntime>,
    /// Stage order for shutdown: each pipeline from its entry stage down, so that upstream
    /// stages drain while the stages they call still serve.
    order: Vec<StageRef>,
    /// Replicas told to stop, still draining.
    stopping: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct StageRuntime {
    plan: Arc<StagePlan>,
    desired: u32,
    next_id: u32,
    replicas: BTreeMap<u32, ReplicaHandle>,
}

#[derive(Debug)]
struct ReplicaHandle {
    stop: CancellationToken,
    /// `None` until the first call inside the runtime starts it (`start_adopted`): replicas
    /// adopted by `new` wait there, since `new` may run outside a runtime.
    task: Option<JoinHandle<()>>,
    view: SharedView,
    adopt: Option<ReplicaRecord>,
}

impl LocalActuator {
    /// Checks every stage (names, command, bounds, that the next stage exists), resolves the
    /// programs (a bare name beside `options.bin_dir` or the current executable, then `PATH`),
    /// creates the work dir and writes each stage's empty endpoints file.
    pub fn new(options: LocalOptions, stages: Vec<LocalStage>) -> Result<Self, ActuatorError> {
        let options = Arc::new(options);
        let bin_dir = config::bin_dir(&options);
        let path = std::env::var_os("PATH");
        let names: BTreeSet<StageRef> = stages.iter().map(|s| s.stage.clone()).collect();
        if names.len() != stages.len() {
            let dup = stages
                .iter()
                .find(|s| stages.iter().filter(|t| t.stage == s.stage).count() > 1)
                .map(|s| s.stage.clone())
                .unwrap_or_else(|| StageRef::new("", ""));
            return Err(ActuatorError::InvalidConfig {
                stage: dup,
                reason: "the stage is given twice".into(),
            });
        }
        let log_dir = options.work_dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|source| ActuatorError::File {
            stage: stages
                .first()
                .map(|s| s.stage.clone())
                .unwrap_or_else(|| StageRef::new("", "")),
            path: log_dir.clone(),
            source,
        })?;
        if let Some(lib) = &options.intercept_lib
            && let Some(s) = stages.iter().find(|s| s.gpu)
            && !lib.is_file()
        {
            return Err(ActuatorError::InvalidConfig {
                stage: s.stage.clone(),
                reason: format!("interception library {} does not exist", lib.display()),
            });
        }
        let endpoints_path = |s: &StageRef| {
            options
                .work_dir
                .join(format!("{}.{}.endpoints", s.pipeline, s.stage))
        };
        let resolve = |stage: &StageRef, program: &str| {
            config::resolve_program(program, &bin_dir, path.clone()).ok_or_else(|| {
                ActuatorError::ProgramNotFound {
                    stage: stage.clone(),
                    program: program.to_owned(),
                    beside: bin_dir.clone(),
                }
            })
        };
        let mut runtimes = BTreeMap::new();
        for spec in &stages {
            config::validate(spec)?;
            let stage = &spec.stage;
            let next_file = match &spec.next {
                None => None,
                Some(next) => {
                    let next_ref = StageRef::new(stage.pipeline.clone(), next.clone());
                    if !names.contains(&next_ref) {
                        return Err(ActuatorError::InvalidConfig {
                            stage: stage.clone(),
                            reason: format!("its next stage {next_ref} is not configured"),
                        });
                    }
                    Some(endpoints_path(&next_ref))
                }
            };
            let program = resolve(stage, &spec.run.command[0])?;
            let sidecar = resolve(stage, "sair-sidecar")?;
            let node_agent = if spec.gpu && options.shm_dir.is_some() {
                Some(resolve(stage, "sair-node-agent")?)
            } else {
                None
            };
            let records_path = options
                .work_dir
                .join(format!("{}.{}.replicas.json", stage.pipeline, stage.stage));
            let records = endpoints::load_records(stage, &records_path);
            // New ids continue after every recorded replica, the ones not adopted too: a killed
            // half-started replica's last report may still be on the mesh, and a new replica
            // reusing its id would be merged with it.
            let next_id = records
                .iter()
                .map(|r| r.replica.saturating_add(1))
                .max()
                .unwrap_or(0);
            let (adopted, serving_now) = adoptable(stage, records);
            let serving = Arc::new(ServingSet::create(
                stage.clone(),
                endpoints_path(stage),
                records_path,
                serving_now,
                adopted.clone(),
            )?);
            let plan = StagePlan {
                spec: spec.clone(),
                options: Arc::clone(&options),
                program,
                sidecar,
                node_agent,
                next_file,
                log_dir: log_dir.clone(),
                serving,
                restarts: AtomicU64::new(0),
            };
            tracing::info!(%stage, program = %plan.program.display(),
                endpoints = %plan.serving.path().display(), "local actuator: stage configured");
            let replicas: BTreeMap<u32, ReplicaHandle> = adopted
                .into_iter()
                .map(|rec| {
                    let view = new_view(rec.replica, Phase::Serving);
                    replica::update(&view, |v| {
                        v.address = rec.listen;
                        v.server_pid = rec.server.map(|p| p.pid);
                        v.sidecar_pid = rec.sidecar.map(|p| p.pid);
                    });
                    let handle = ReplicaHandle {
                        stop: CancellationToken::new(),
                        task: None,
                        view,
                        adopt: Some(rec.clone()),
                    };
                    (rec.replica, handle)
                })
                .collect();
            if !replicas.is_empty() {
                tracing::info!(%stage, adopted = replicas.len(), "adopting replicas left running");
            }
            runtimes.insert(
                stage.clone(),
                StageRuntime {
                    plan: Arc::new(plan),
                    desired: u32::try_from(replicas.len()).unwrap_or(u32::MAX),
                    next_id,
                    replicas,
                },
            );
        }
        Ok(Self {
            order: shutdown_order(&stages),
            stages: runtimes,
            stopping: Vec::new(),
        })
    }

    /// The stage's endpoints file: give it to `sair-loadgen --target file:PATH` for the entry
    /// stage.
    pub fn endpoints_file(&self, stage: &StageRef) -> Option<&Path> {
        self.stages.get(stage).map(|s| s.plan.serving.path())
    }

    /// Every replica of the stage that is not yet stopped, oldest first.
    pub fn replicas(&self, stage: &StageRef) -> Vec<ReplicaView> {
        self.stages
            .get(stage)
            .map(|s| {
                s.replicas
                    .values()
                    .map(|r| r.view.lock().unwrap_or_else(|p| p.into_inner()).clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Restarts of the stage's replicas (after dying or failing to start) since the start.
    pub fn restarts(&self, stage: &StageRef) -> u64 {
        self.stages
            .get(stage)
            .map(|s| s.plan.restarts.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The log files of a replica's model server and sidecar.
    pub fn log_files(&self, stage: &StageRef, replica: u32) -> Option<(PathBuf, PathBuf)> {
        let plan = &self.stages.get(stage)?.plan;
        let base = format!("{}.{}.{replica}", stage.pipeline, stage.stage);
        Some((
            plan.log_dir.join(format!("{base}.server.log")),
            plan.log_dir.join(format!("{base}.sidecar.log")),
        ))
    }

    /// Starts the tasks of adopted replicas (first call inside the runtime).
    fn start_adopted(&mut self) {
        for rt in self.stages.values_mut() {
            for (id, r) in &mut rt.replicas {
                if r.task.is_none() {
                    r.task = Some(tokio::spawn(replica::supervise(
                        Arc::clone(&rt.plan),
                        *id,
                        r.stop.clone(),
                        Arc::clone(&r.view),
                        r.adopt.take(),
                    )));
                }
            }
        }
    }

    fn scale_now(&mut self, stage: &StageRef, replicas: u32) -> Result<(), ActuatorError> {
        self.start_adopted();
        self.stopping.retain(|t| !t.is_finished());
        let rt = self
            .stages
            .get_mut(stage)
            .ok_or_else(|| ActuatorError::UnknownStage {
                actuator: NAME,
                stage: stage.clone(),
            })?;
        let max = rt.plan.options.max_replicas;
        if replicas > max {
            return Err(ActuatorError::TooManyReplicas {
                stage: stage.clone(),
                requested: replicas,
                max,
            });
        }
        let running = u32::try_from(rt.replicas.len()).unwrap_or(u32::MAX);
        // Ids come after every id in the records file (outside input): refuse, rather than
        // overflow or reuse one, when they would run past u32::MAX.
        if rt
            .next_id
            .checked_add(replicas.saturating_sub(running))
            .is_none()
        {
            return Err(ActuatorError::InvalidConfig {
                stage: stage.clone(),
                reason: format!(
                    "no replica id is left after {} (named in the replica records file {}; \
                     remove the file once its processes are stopped)",
                    rt.next_id,
                    rt.plan.serving.records_path().display()
                ),
            });
        }
        let before = rt.desired;
        rt.desired = replicas;
        if replicas > running {
            for _ in running..replicas {
                let id = rt.next_id;
                rt.next_id += 1;
                let stop = CancellationToken::new();
                let view = new_view(id, Phase::Starting);
                let task = tokio::spawn(replica::supervise(
                    Arc::clone(&rt.plan),
                    id,
                    stop.clone(),
                    Arc::clone(&view),
                    None,
                ));
                rt.replicas.insert(
                    id,
                    ReplicaHandle {
                        stop,
                        task: Some(task),
                        view,
                        adopt: None,
                    },
                );
            }
        } else if replicas < running {
            // Remove replicas that are not serving yet first (they carry no traffic and have
            // not paid their start-up), then the newest.
            let serving: BTreeSet<u32> = rt
                .replicas
                .iter()
                .filter(|(_, r)| {
                    r.view.lock().unwrap_or_else(|p| p.into_inner()).phase == Phase::Serving
                })
                .map(|(id, _)| *id)
                .collect();
            let mut victims: Vec<u32> = rt
                .replicas
                .keys()
                .rev()
                .filter(|id| !serving.contains(id))
                .chain(rt.replicas.keys().rev().filter(|id| serving.contains(id)))
                .copied()
                .collect();
            victims.truncate((running - replicas) as usize);
            for id in victims {
                // Out of the list before it is told to stop; if the list cannot be written
                // the replica keeps running (it is still listed) and the error is returned.
                rt.plan.serving.remove(id)?;
                if let Some(r) = rt.replicas.remove(&id) {
                    r.stop.cancel();
                    self.stopping.extend(r.task);
                }
            }
        }
        tracing::info!(actuator = NAME, %stage, from = before, to = replicas,
            serving = rt.plan.serving.count(), "scale");
        Ok(())
    }
}

impl Actuator for LocalActuator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn scale<'a>(
        &'a mut self,
        stage: &'a StageRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ActuatorError>> {
        Box::pin(async move { self.scale_now(stage, replicas) })
    }

    fn status<'a>(
        &'a mut self,
        stage: &'a StageRef,
    ) -> BoxFuture<'a, Result<ReplicaStatus, ActuatorError>> {
        Box::pin(async move {
            self.start_adopted();
            let rt = self
                .stages
                .get(stage)
                .ok_or_else(|| ActuatorError::UnknownStage {
                    actuator: NAME,
                    stage: stage.clone(),
                })?;
            Ok(ReplicaStatus {
                desired: rt.desired,
                serving: rt.plan.serving.count(),
            })
        })
    }

    fn shutdown(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Adopted replicas are stopped like the others: their tasks run the stop order.
            self.start_adopted();
            let order = std::mem::take(&mut self.order);
            for stage in order {
                let Some(rt) = self.stages.get_mut(&stage) else {
                    continue;
                };
                if let Err(e) = rt.plan.serving.clear() {
                    tracing::error!(%stage, error = %e, "cannot empty the endpoints file");
                }
                let o = &rt.plan.options;
                // A replica's own stop is bounded by this (deregister, drain, two graces, the
                // segment removal); past it the task is aborted, which SIGKILLs its children.
                let bound = o
                    .deregister_delay
                    .saturating_add(o.drain_timeout)
                    .saturating_add(o.stop_grace.saturating_mul(2))
                    .saturating_add(Duration::from_secs(20));
                let handles: Vec<_> = std::mem::take(&mut rt.replicas).into_values().collect();
                for h in &handles {
                    h.stop.cancel();
                }
                for h in handles {
                    if let Some(task) = h.task {
                        join_bounded(task, bound, &stage).await;
                    }
                }
            }
            for task in std::mem::take(&mut self.stopping) {
                join_bounded(task, Duration::from_secs(60), &StageRef::new("", "")).await;
            }
            tracing::info!(actuator = NAME, "every replica stopped");
        })
    }
}

async fn join_bounded(mut task: JoinHandle<()>, bound: Duration, stage: &StageRef) {
    match tokio::time::timeout(bound, &mut task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(%stage, error = %e, "replica task failed"),
        Err(_) => {
            // Every stop inside a replica task is bounded, so this is a bug, not a slow
            // process; its processes (if any) stay recorded for the next supervisor.
            tracing::error!(%stage, "replica task did not stop in time; abandoning it");
            task.abort();
        }
    }
}

fn new_view(replica: u32, phase: Phase) -> SharedView {
    Arc::new(Mutex::new(ReplicaView {
        replica,
        phase,
        address: None,
        restarts: 0,
        last_error: None,
        server_pid: None,
        sidecar_pid: None,
    }))
}

/// Splits an earlier supervisor's records: replicas whose two processes still run (the same
/// processes: pid and start time) and that were serving are adopted, listed at once (their
/// readiness is checked again by their task); any process of another record (a replica that
/// was starting, or half dead) is stopped here with SIGKILL to its group — it never served.
fn adoptable(
    stage: &StageRef,
    records: Vec<ReplicaRecord>,
) -> (Vec<ReplicaRecord>, BTreeMap<u32, std::net::SocketAddr>) {
    let mut adopted = Vec::new();
    let mut serving = BTreeMap::new();
    for rec in records {
        let live = |p: Option<ProcId>| p.is_some_and(ProcId::running);
        match (live(rec.server), live(rec.sidecar), rec.listen, rec.admin) {
            (true, true, Some(listen), Some(_)) => {
                serving.insert(rec.replica, listen);
                adopted.push(rec);
            }
            _ => {
                for p in [rec.server, rec.sidecar].into_iter().flatten() {
                    if p.running() {
                        tracing::warn!(%stage, replica = rec.replica, pid = p.pid,
                            "stopping a process of a replica that was not serving");
                        p.group().signal(nix::sys::signal::Signal::SIGKILL);
                    }
                }
            }
        }
    }
    (adopted, serving)
}

/// Each pipeline's stages from its entry (the stage no other stage names as `next`) along the
/// chain, then any stage not on a chain.
fn shutdown_order(stages: &[LocalStage]) -> Vec<StageRef> {
    let mut order = Vec::with_capacity(stages.len());
    let is_next = |s: &LocalStage| {
        stages.iter().any(|t| {
            t.stage.pipeline == s.stage.pipeline && t.next.as_deref() == Some(&*s.stage.stage)
        })
    };
    for entry in stages.iter().filter(|s| !is_next(s)) {
        let mut cur = Some(entry);
        // Bounded by the number of stages, so a cycle in `next` cannot loop forever.
        for _ in 0..stages.len() {
            let Some(s) = cur else { break };
            if order.contains(&s.stage) {
                break;
            }
            order.push(s.stage.clone());
            cur = s.next.as_ref().and_then(|n| {
                stages
                    .iter()
                    .find(|t| t.stage.pipeline == s.stage.pipeline && &t.stage.stage == n)
            });
        }
    }
    for s in stages {
        if !order.contains(&s.stage) {
            order.push(s.stage.clone());
        }
    }
    order
}
