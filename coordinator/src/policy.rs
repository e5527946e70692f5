//! The policy interface shared by the production loop and the simulator.
//!
//! Each control interval a [`Policy`] receives the observable [`PipelineState`] and returns a
//! [`Decision`]. Nothing here exposes what production could not observe (the true service-time
//! distribution, future arrivals), so a policy that does well in simulation is entitled to the
//! same inputs live.

use serde::{Deserialize, Serialize};

/// Whether a stage runs on CPU replicas or on shares of GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Cpu,
    Gpu,
}

/// Static facts about a stage that the operator configured (bounds, not behaviour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    pub name: String,
    pub kind: StageKind,
    /// Concurrency slots per replica.
    pub concurrency: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

/// What was observed of one stage over the last interval (aggregated from StageReports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub name: String,
    pub kind: StageKind,
    /// Arrivals per second over the interval.
    pub arrival_rate: f64,
    /// Completions per second over the interval.
    pub completion_rate: f64,
    pub queue_wait_p50_s: f64,
    pub queue_wait_p95_s: f64,
    pub queue_wait_p99_s: f64,
    pub service_p50_s: f64,
    pub service_p95_s: f64,
    pub service_p99_s: f64,
    /// Mean service time over the interval (what a queueing model needs).
    pub service_mean_s: f64,
    pub mean_inflight: f64,
    pub queue_depth: u64,
    /// Busy fraction of the concurrency slots, in [0, 1].
    pub busy_fraction: f64,
    /// Replicas currently serving (not counting ones still starting).
    pub replicas: u32,
    /// Replicas requested (serving plus starting).
    pub replicas_desired: u32,
    /// GPU share per replica, in (0, 1]; 1.0 for CPU stages.
    pub rho: f64,
    /// Concurrency slots per replica.
    pub concurrency: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

/// What was observed of the whole pipeline over the last interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineState {
    pub pipeline: String,
    /// Seconds since the start of the run (simulation) or of the coordinator (live).
    pub t_s: f64,
    pub interval_s: f64,
    pub stages: Vec<StageState>,
    pub e2e_p50_s: f64,
    pub e2e_p99_s: f64,
    /// Requests per second entering the pipeline.
    pub arrival_rate: f64,
    pub completed: u64,
    pub dropped: u64,
    pub slo_p99_s: f64,
    /// GPUs available to the pipeline's GPU stages.
    pub gpus: u32,
    /// Cost rate of the current allocation, per hour.
    pub cost_per_hour: f64,
}

/// The allocation a policy asks for, per stage, in pipeline order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub replicas: Vec<u32>,
    /// GPU share per replica for GPU stages; ignored (kept at 1.0) for CPU stages.
    pub rho: Vec<f64>,
}

impl Action {
    /// The allocation currently in place, i.e. "no change".
    pub fn hold(state: &PipelineState) -> Self {
        Self {
            replicas: state.stages.iter().map(|s| s.replicas_desired).collect(),
            rho: state.stages.iter().map(|s| s.rho).collect(),
        }
    }
}

/// A policy's answer for one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// Index of the stage the policy names as the bottleneck, if it names one.
    pub bottleneck: Option<usize>,
    pub rationale: String,
}

/// A scaling policy: the SAIR controller or a baseline.
pub trait Policy: Send {
    /// A short, stable name (`hpa`, `sair`, ...), used on the command line and in results.
    fn name(&self) -> &str;

    /// Decides the allocation for the next interval from what was observed in the last one.
    fn decide(&mut self, state: &PipelineState) -> Decision;

    /// How often the policy wants to be asked, in seconds (HPA syncs every 15 s, the SAIR
    /// loop every 30 s). `None` means the scenario's control interval.
    fn period_s(&self) -> Option<f64> {
        None
    }

    /// The allocation the policy wants in place when the run starts (the `static` plan);
    /// `None` keeps the scenario's initial allocation. Added for the simulator; optional.
    fn initial_action(&self) -> Option<Action> {
        None
    }
}
