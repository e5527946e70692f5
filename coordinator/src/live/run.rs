//! The live loop: every poll (1 s) it reads the reports and segment facts off the mesh and the
//! replica counts off the actuator, and refreshes the status view; every interval it asks the
//! policy and carries the decision out.
//!
//! - **Only the leader decides.** The leader is the live coordinator with the newest epoch
//!   claim on the mesh (`sair_mesh::leader`); who may claim is the lowest-named live
//!   coordinator, or, under a [`Gate`] (the Kubernetes Lease), only the Lease holder, with the
//!   Lease's term as the floor of its epoch's term. The others observe and serve the API, and
//!   stand by, following the allocation in force (the leader's ρ; under a gate the actuator's
//!   replica counts) so that they take over from it. ρ targets are published with
//!   `Mesh::decide`, which stamps them with the leader's epoch, so agents ignore a deposed
//!   leader's.
//! - **Stale data is never decided on.** A stage without a fresh report, or an interval before
//!   the load is known (`observe::Traffic`), makes the decision a
//!   hold of the allocation, recorded with the stale stages in its rationale; the policy is
//!   not asked.
//! - **Actions fail softly.** Replica counts go through `retry::scale` (bounded retries with
//!   backoff); a count that still fails is logged and counted, and the next interval tries
//!   again. A ρ target the mesh refuses is logged and counted.
//! - **Decisions are recorded** in the API's ring and appended to `decisions.jsonl` one
//!   decision late, once the policy has scored it (its reward), and the last at shutdown.
//!
//! Shutdown: [`Live::run`] returns when its `shutdown` future resolves, after writing the
//! pending record, stopping what the actuator started, and leaving the mesh.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sair_actuator::retry::{self, Backoff};
use sair_actuator::{Actuator, StageRef};
use sair_mesh::{Candidacy, Epoch, Mesh};
use sair_wire::keys::{self, RhoTarget};

use super::api::{PipelineView, Shared};
use super::config::PipelinesFile;
use super::journal::Journal;
use super::metrics::{ActionKind, LiveMetrics, RefusedReason};
use super::observe::{Observation, Observer, PipelineSpec, StageAlloc};
use crate::policy::{
    Action, Decision, DecisionSource, Explanation, PipelineState, Policy, StageKind,
};
use crate::record::DecisionRecord;
use crate::scenario::{MIN_SHARE, StageConfig};

/// How often the mesh and the actuator are read (the agents publish every second).
pub const POLL: Duration = Duration::from_secs(1);

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("the mesh member stopped; the coordinator cannot observe or decide")]
    MeshStopped,
    #[error("the policy panicked while deciding: {0}")]
    PolicyPanicked(String),
    #[error("cannot write the decisions log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Between decisions.
    pub interval: Duration,
    /// A report is stale after this many of its windows without a change.
    pub stale_windows: f64,
    /// `<state-dir>/decisions.jsonl`, appended to and rotated at its limit; `None`: not written.
    pub decisions_log: Option<Journal>,
    pub backoff: Backoff,
}

/// A running coordinator for one pipeline.
pub struct Live {
    file: PipelinesFile,
    node: String,
    observer: Observer,
    /// `None` only while a decision runs on the blocking pool.
    policy: Option<Box<dyn Policy>>,
    policy_name: String,
    actuator: Box<dyn Actuator>,
    mesh: Mesh,
    shared: Arc<Mutex<Shared>>,
    metrics: LiveMetrics,
    opts: LoopOptions,
    /// The allocation in force, per stage.
    alloc: Vec<StageAlloc>,
    /// The ρ published per GPU stage, with the epoch it went out under.
    published: HashMap<usize, (Epoch, f64)>,
    bottleneck: Option<String>,
    start: Instant,
    leading: bool,
    /// The outside authority that elects the leader (the Kubernetes Lease), if any.
    gate: Option<Gate>,
    /// The candidacy last handed to the mesh under a gate.
    candidacy: Option<Candidacy>,
}

/// An outside authority that elects the leader (the Kubernetes Lease): its term while this
/// coordinator holds its grant and may act now (time-checked), else `None`.
pub type Gate = Box<dyn Fn() -> Option<u64> + Send + Sync>;

/// The mesh candidacy for what `gate` answers: a holder claims with the authority's term as
/// its floor; without the grant a coordinator does not claim.
pub fn candidacy_of(granted: Option<u64>) -> Candidacy {
    granted.map_or(Candidacy::NotHolder, |term| Candidacy::Holder { term })
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("pipeline", &self.file.pipeline())
            .field("policy", &self.policy_name)
            .field("actuator", &self.actuator.name())
            .finish_non_exhaustive()
    }
}

impl Live {
    /// A loop for the pipeline of `file`, deciding with `policy`, acting through `actuator`
    /// and on `mesh` as member `node`. Nothing runs until [`Live::run`].
    pub fn new(
        file: PipelinesFile,
        node: &str,
        policy: Box<dyn Policy>,
        actuator: Box<dyn Actuator>,
        mesh: Mesh,
        shared: Arc<Mutex<Shared>>,
        opts: LoopOptions,
    ) -> Self {
        let now = Instant::now();
        let sc = &file.scenario;
        let spec = PipelineSpec {
            name: sc.pipeline.clone(),
            stages: file.scenario.context(0, None).specs(),
            slo_p99_s: sc.slo_p99_s,
            gpus: sc.gpus,
            prices: sc.prices,
        };
        // The policy's own starting plan (`static` sized for a planned peak) wins over the
        // file's starting allocation.
        let initial = policy
            .initial_action()
            .filter(|a| a.replicas.len() == sc.stages.len() && a.rho.len() == sc.stages.len());
        let alloc = sc
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| StageAlloc {
                serving: 0,
                desired: initial
                    .as_ref()
                    .map_or(s.initial_replicas, |a| a.replicas[i])
                    .clamp(s.min_replicas, s.max_replicas),
                rho: match s.kind {
                    StageKind::Gpu => initial
                        .as_ref()
                        .map_or(s.initial_rho, |a| a.rho[i])
                        .clamp(MIN_SHARE, 1.0),
                    StageKind::Cpu => 1.0,
                },
            })
            .collect();
        Self {
            metrics: LiveMetrics::new(
                &spec.name,
                spec.stages.iter().map(|s| (s.name.as_str(), s.kind)),
            ),
            observer: Observer::new(spec, opts.stale_windows, now),
            policy_name: policy.name().to_owned(),
            policy: Some(policy),
            node: node.to_owned(),
            file,
            actuator,
            mesh,
            shared,
            opts,
            alloc,
            published: HashMap::new(),
            bottleneck: None,
            start: now,
            leading: false,
            gate: None,
            candidacy: None,
        }
    }

    /// Leadership comes from `gate` instead of the mesh's name rule: with the Kubernetes
    /// actuator, only the holder of the Lease claims on the mesh, decides and acts. Start the
    /// mesh with [`Candidacy::NotHolder`] (`MeshConfig::candidacy`) so that it never claims by
    /// name before the first poll.
    pub fn gated_by(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    fn stage_ref(&self, i: usize) -> StageRef {
        StageRef::new(
            self.file.pipeline(),
            self.file.scenario.stages[i].name.clone(),
        )
    }

    /// Runs until `shutdown` resolves (see the module docs).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), LiveError> {
        tokio::pin!(shutdown);
        let result = self.run_inner(&mut shutdown).await;
        if let Err(e) = self.flush_log() {
            tracing::error!(error = %e, "the last decision record was not written");
        }
        let Self { actuator, mesh, .. } = self;
        actuator.shutdown().await;
        mesh.shutdown().await;
        result
    }

    async fn run_inner(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), LiveError> {
        // The starting allocation: replicas now; ρ as soon as this coordinator leads. Under a
        // gate (the Kubernetes Lease) the Deployments already have their counts: the loop
        // adopts them while it follows (`observe`) and changes them only once it leads.
        if self.gate.is_none() {
            for i in 0..self.alloc.len() {
                let want = self.alloc[i].desired;
                self.scale(i, want).await;
            }
        }
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The policy is asked at its own cadence, as `sair eval` asks it (SAIR: its guard
        // every 5 s, full decisions every --interval; HPA: its 15 s sync), else every
        // --interval; never more often than the loop polls.
        let every = self
            .policy
            .as_ref()
            .and_then(|p| p.period_s())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(self.opts.interval)
            .max(POLL);
        tracing::info!(every = ?every, interval = ?self.opts.interval, "asking the policy");
        let mut next_decision = Instant::now() + every;
        loop {
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                _ = tick.tick() => {}
            }
            self.observe().await?;
            self.publish_rho().await?;
            let now = Instant::now();
            if now >= next_decision {
                next_decision = now + every;
                self.decide_and_act(now).await?;
            }
            let view = self.observer.peek(now, self.t_s(now), &self.alloc);
            self.show(&view);
        }
    }

    fn t_s(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.start).as_secs_f64()
    }

    fn show(&self, o: &Observation) {
        for (i, s) in o.state.stages.iter().enumerate() {
            self.metrics
                .allocation(i, s.replicas, s.replicas_desired, s.rho);
        }
        self.metrics
            .effective_cost_per_hour
            .set(o.state.cost_per_hour);
        let view = PipelineView::of(o, self.bottleneck.clone());
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.pipelines = vec![view];
    }

    /// Reads the mesh and the actuator.
    async fn observe(&mut self) -> Result<(), LiveError> {
        let now = Instant::now();
        let reports = self
            .mesh
            .scan(keys::REPORT_PREFIX)
            .await
            .map_err(|_| LiveError::MeshStopped)?;
        let stats = self.observer.ingest_reports(&reports, now);
        if stats.invalid > 0 {
            self.metrics.refused(RefusedReason::Invalid, stats.invalid);
            tracing::debug!(n = stats.invalid, "invalid report values ignored");
        }
        if stats.unknown_stage > 0 {
            self.metrics
                .refused(RefusedReason::UnknownStage, stats.unknown_stage);
            tracing::debug!(n = stats.unknown_stage, "reports of unknown stages ignored");
        }
        let segments = self
            .mesh
            .scan(keys::SEGMENT_PREFIX)
            .await
            .map_err(|_| LiveError::MeshStopped)?;
        self.observer.ingest_segments(&segments);
        for i in 0..self.alloc.len() {
            let stage = self.stage_ref(i);
            match self.actuator.status(&stage).await {
                Ok(s) => {
                    // The counts come from outside (a Deployment anyone can scale by hand):
                    // bounded as the pipelines file's counts are, before any per-replica state
                    // is sized from them.
                    let most = crate::scenario::bounds::MAX_REPLICAS;
                    self.alloc[i].serving = s.serving.min(most);
                    // Under a gate the actuator reads the cluster: a coordinator that does not
                    // lead follows the counts in force, so that it takes over from them.
                    if self.gate.is_some() && !self.leading {
                        self.alloc[i].desired = s.desired.min(most);
                    }
                }
                // Reported (retried) at the decision; between decisions a failed look keeps
                // the last count.
                Err(e) => tracing::debug!(%stage, error = %e, "actuator status unavailable"),
            }
        }
        // Under a gate the mesh's claimant is the authority's holder: hand it the grant as it
        // stands now (time-checked), then lead only while both agree.
        let granted = self.gate.as_ref().map(|g| g());
        if let Some(g) = granted {
            let c = candidacy_of(g);
            if self.candidacy != Some(c) {
                self.mesh
                    .set_candidacy(c)
                    .await
                    .map_err(|_| LiveError::MeshStopped)?;
                self.candidacy = Some(c);
            }
        }
        let view = self.mesh.view();
        let leading = view.leader.as_deref() == Some(self.node.as_str())
            && view.epoch.is_some()
            && granted.is_none_or(|g| g.is_some());
        if !leading {
            self.follow_rho(view.leader.as_deref()).await?;
        }
        if leading != self.leading {
            tracing::info!(
                leader = ?view.leader,
                "{}",
                if leading {
                    "this coordinator leads: deciding and acting"
                } else {
                    "this coordinator stands by: another leads"
                }
            );
            self.leading = leading;
            self.metrics.leader.set(if leading { 1.0 } else { 0.0 });
        }
        Ok(())
    }

    /// While another coordinator leads, takes its ρ targets (its decisions under
    /// `ctl/rho/<pipeline>/<stage>`, written under its own epoch) as the ρ in force, so that
    /// on taking over this coordinator republishes them rather than its starting allocation.
    async fn follow_rho(&mut self, leader: Option<&str>) -> Result<(), LiveError> {
        let Some(leader) = leader.filter(|l| *l != self.node) else {
            return Ok(());
        };
        for i in self.file.gpu_stages() {
            let key = keys::rho_key(self.file.pipeline(), &self.file.scenario.stages[i].name);
            let Some(bytes) = self
                .mesh
                .get(leader, &key)
                .await
                .map_err(|_| LiveError::MeshStopped)?
            else {
                continue;
            };
            if let Some(d) = sair_mesh::Decision::from_bytes(&bytes)
                && d.epoch.leader == leader
                && let Some(t) = keys::decode::<RhoTarget>(&d.body)
                && t.rho.is_finite()
            {
                self.alloc[i].rho = t.rho.clamp(MIN_SHARE, 1.0);
            }
        }
        Ok(())
    }

    /// Publishes the ρ in force of every GPU stage not yet published under the current epoch
    /// (the start, and after an election).
    async fn publish_rho(&mut self) -> Result<(), LiveError> {
        // The grant is checked again here, not only at the poll: a Lease that lapsed since
        // then must not let one more target out under the old claim.
        if !self.leading || self.gate.as_ref().is_some_and(|g| g().is_none()) {
            return Ok(());
        }
        let Some(epoch) = self.mesh.view().epoch else {
            return Ok(());
        };
        for i in self.file.gpu_stages() {
            let rho = self.alloc[i].rho;
            if self.published.get(&i) == Some(&(epoch.clone(), rho)) {
                continue;
            }
            let stage = &self.file.scenario.stages[i].name;
            let key = keys::rho_key(self.file.pipeline(), stage);
            let body = keys::encode(&RhoTarget { rho });
            match self.mesh.decide(&key, body).await {
                Ok(Some(Ok(e))) => {
                    tracing::info!(stage, rho, term = e.term, "ρ target published");
                    self.metrics.rho_published.increment(1);
                    self.published.insert(i, (e, rho));
                }
                Ok(Some(Err(e))) => {
                    self.metrics.failure(ActionKind::Rho);
                    tracing::error!(stage, rho, error = %e, "the mesh refused a ρ target");
                    // Not retried every second: the next change or election tries again.
                    self.published.insert(i, (epoch.clone(), rho));
                }
                Ok(None) => {
                    self.leading = false;
                    self.metrics.leader.set(0.0);
                    return Ok(());
                }
                Err(_) => return Err(LiveError::MeshStopped),
            }
        }
        Ok(())
    }

    async fn scale(&mut self, i: usize, replicas: u32) -> bool {
        let stage = self.stage_ref(i);
        match retry::scale(self.actuator.as_mut(), &stage, replicas, &self.opts.backoff).await {
            Ok(()) => {
                self.alloc[i].desired = replicas;
                true
            }
            Err(e) => {
                self.metrics.failure(ActionKind::Replicas);
                tracing::error!(%stage, replicas, error = %e, "scaling failed; the next decision tries again");
                false
            }
        }
    }

    async fn decide_and_act(&mut self, now: Instant) -> Result<(), LiveError> {
        let t_s = self.t_s(now);
        let obs = self.observer.take(now, t_s, &self.alloc);
        let stale = obs.stale();
        self.metrics.stale_stages.set(stale.len() as f64);
        if !self.leading {
            tracing::info!("standing by: not deciding (another coordinator leads)");
            return Ok(());
        }
        let hold = Action::hold(&obs.state);
        let (decision, last_reward) = if !stale.is_empty() {
            self.metrics.stale_holds.increment(1);
            let d = Decision::new(
                hold,
                None,
                format!(
                    "holding the allocation: no fresh report from {}; not deciding on stale data",
                    stale.join(", ")
                ),
            )
            .explained(Explanation::from_source(DecisionSource::Fallback));
            (d, None)
        } else if let Some(why) = obs.awaiting_traffic() {
            let d = Decision::new(hold, None, why.to_string())
                .explained(Explanation::from_source(DecisionSource::Fallback));
            (d, None)
        } else {
            self.ask_policy(&obs).await?
        };
        let decision = self.checked(decision, &obs);
        let source = decision.explain.as_ref().map(|e| e.source);
        self.bottleneck = decision
            .bottleneck
            .and_then(|b| obs.state.stages.get(b))
            .map(|s| s.name.clone());
        let appended = {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared
                .decisions
                .observe(&self.policy_name, &obs.state, &decision, last_reward)
        };
        if appended {
            self.metrics.decision(source);
            tracing::info!(
                source = source.map_or("none", DecisionSource::as_str),
                bottleneck = ?self.bottleneck,
                replicas = ?decision.action.replicas,
                rho = ?decision.action.rho,
                rationale = %decision.rationale,
                "decision"
            );
            // A log that cannot be written is reported, not fatal: the ring still serves.
            if let Err(e) = self.write_previous() {
                tracing::error!(error = %e, "decision record not written");
            }
        }
        self.act(&decision.action).await;
        Ok(())
    }

    /// Runs `decide` on the blocking pool (the LLM selector blocks on its HTTP call).
    async fn ask_policy(
        &mut self,
        obs: &Observation,
    ) -> Result<(Decision, Option<(u64, f64)>), LiveError> {
        let Some(mut policy) = self.policy.take() else {
            return Err(LiveError::PolicyPanicked("the policy was lost".into()));
        };
        let state = obs.state.clone();
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let d = policy.decide(&state);
            let r = policy.last_reward();
            (policy, d, r)
        })
        .await;
        self.metrics
            .decision_seconds
            .record(started.elapsed().as_secs_f64());
        match joined {
            Ok((policy, d, r)) => {
                self.metrics
                    .llm_prompt_tokens
                    .absolute(policy.llm_prompt_tokens());
                self.policy = Some(policy);
                Ok((d, r))
            }
            Err(e) => Err(LiveError::PolicyPanicked(e.to_string())),
        }
    }

    fn checked(&self, d: Decision, obs: &Observation) -> Decision {
        within_bounds(
            d,
            &self.file.scenario.stages,
            self.file.scenario.gpus,
            &obs.state,
        )
    }

    async fn act(&mut self, action: &Action) {
        for i in 0..self.alloc.len() {
            let want = action.replicas[i];
            if want != self.alloc[i].desired {
                self.scale(i, want).await;
            }
            if self.file.scenario.stages[i].kind == StageKind::Gpu {
                // Published on the next poll (and only while this coordinator leads).
                self.alloc[i].rho = action.rho[i];
            }
        }
        if let Err(e) = self.publish_rho().await {
            tracing::error!(error = %e, "ρ targets not published");
        }
    }

    /// Appends the record before the newest to the decisions log (its reward is known now).
    fn write_previous(&self) -> Result<(), LiveError> {
        let rec = {
            let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let latest = shared.decisions.latest(2);
            (latest.len() == 2).then(|| latest[0].clone())
        };
        match rec {
            Some(r) => self.append(&r),
            None => Ok(()),
        }
    }

    /// Appends the newest record (at shutdown).
    fn flush_log(&self) -> Result<(), LiveError> {
        let rec = {
            let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared.decisions.latest(1).first().map(|r| (*r).clone())
        };
        match rec {
            Some(r) => self.append(&r),
            None => Ok(()),
        }
    }

    fn append(&self, r: &DecisionRecord) -> Result<(), LiveError> {
        let Some(journal) = &self.opts.decisions_log else {
            return Ok(());
        };
        let err = |source| LiveError::Log {
            path: journal.path().to_owned(),
            source,
        };
        let line = serde_json::to_string(r).map_err(|e| err(std::io::Error::other(e)))?;
        journal.append(&line).map_err(err)
    }
}

/// `d` with its action inside the pipelines file's bounds: replicas within
/// `[min_replicas, max_replicas]`, GPU shares within `[MIN_SHARE, 1]` (CPU stages 1), the
/// GPU shares (replicas × ρ) cut to fit the GPUs as the simulator cuts them, the rationale
/// saying what was corrected (the agents' commitment check would refuse an over-commitment).
/// An action naming the wrong number of stages is replaced by a hold of `state`'s allocation.
pub fn within_bounds(
    mut d: Decision,
    stages: &[StageConfig],
    gpus: u32,
    state: &PipelineState,
) -> Decision {
    // Live applies one share per stage for now: per-replica shares become the stage's largest.
    d.action.collapse_shares();
    if d.action.replicas.len() != stages.len() || d.action.rho.len() != stages.len() {
        d.rationale = format!(
            "holding the allocation: the policy's action names {} replica counts and {} shares for {} stages ({})",
            d.action.replicas.len(),
            d.action.rho.len(),
            stages.len(),
            d.rationale
        );
        d.action = Action::hold(state);
        return d;
    }
    let mut fixed = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        let r = d.action.replicas[i];
        let c = r.clamp(s.min_replicas, s.max_replicas);
        if c != r {
            fixed.push(format!("{} replicas {r} -> {c}", s.name));
            d.action.replicas[i] = c;
        }
        let rho = d.action.rho[i];
        let held = state.stages.get(i).map_or(s.initial_rho, |st| st.rho);
        let c = match s.kind {
            StageKind::Gpu if rho.is_finite() => rho.clamp(MIN_SHARE, 1.0),
            StageKind::Gpu => held,
            StageKind::Cpu => 1.0,
        };
        if c != rho && s.kind == StageKind::Gpu {
            fixed.push(format!("{} rho {rho} -> {c}", s.name));
        }
        d.action.rho[i] = c;
    }
    // GPU shares that do not fit on the GPUs are cut back exactly as the simulator cuts them
    // (sim::alloc::apply), so a policy is fed live as in `sair eval`: first the added GPU
    // replicas, then ρ increases, else the GPU stages keep their allocation.
    let gpu: Vec<usize> = (0..stages.len())
        .filter(|&i| stages[i].kind == StageKind::Gpu)
        .collect();
    let cur = |i: usize| {
        state
            .stages
            .get(i)
            .map_or((stages[i].initial_replicas, stages[i].initial_rho), |s| {
                (s.replicas_desired, s.rho)
            })
    };
    let packs = |n: &[u32], rho: &[f64]| {
        let shares: Vec<f64> = gpu
            .iter()
            .flat_map(|&i| std::iter::repeat_n(rho[i], n[i] as usize))
            .collect();
        shares.is_empty() || crate::sim::placement::pack(&shares, gpus).is_some()
    };
    let (mut n, mut rho) = (d.action.replicas.clone(), d.action.rho.clone());
    let mut cut = false;
    while !packs(&n, &rho) {
        cut = true;
        if let Some(&i) = gpu
            .iter()
            .filter(|&&i| n[i] > cur(i).0.max(stages[i].min_replicas))
            .max_by_key(|&&i| (n[i] - cur(i).0, std::cmp::Reverse(i)))
        {
            n[i] -= 1;
            continue;
        }
        if gpu.iter().any(|&i| rho[i] > cur(i).1) {
            for &i in &gpu {
                rho[i] = rho[i].min(cur(i).1);
            }
            continue;
        }
        for &i in &gpu {
            (n[i], rho[i]) = cur(i);
        }
        break;
    }
    if cut {
        fixed.push(format!(
            "GPU shares cut to fit {gpus} GPUs: replicas {:?}, rho {:?}",
            n, rho
        ));
        d.action.replicas = n;
        d.action.rho = rho;
    }
    if !fixed.is_empty() {
        d.rationale = format!("{} (kept within bounds: {})", d.rationale, fixed.join(", "));
    }
    d
}

#[cfg(test)]
mod tests;
