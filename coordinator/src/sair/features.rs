//! What the policy derives from an observed [`PipelineState`]: boundary validation, the load
//! trend, per-stage planning loads for the queueing model, the bottleneck estimate and the
//! normalised feature vector used for similarity between states.

use crate::policy::{PipelineState, StageKind, StageState};

use super::queueing::{StageLoad, service_cv2};

/// Why a state was rejected at the boundary.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MalformedState {
    #[error("state has no stages")]
    NoStages,
    #[error("field `{field}` of {scope} is {value} (must be finite and ≥ 0)")]
    BadNumber {
        scope: String,
        field: &'static str,
        value: f64,
    },
    #[error("stage `{stage}`: rho {rho} is outside (0, 1]")]
    BadRho { stage: String, rho: f64 },
    #[error("stage `{stage}`: min_replicas {min} > max_replicas {max}")]
    BadBounds { stage: String, min: u32, max: u32 },
    #[error("slo_p99_s must be > 0, got {0}")]
    BadSlo(f64),
}

fn check(scope: &str, field: &'static str, value: f64) -> Result<(), MalformedState> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(MalformedState::BadNumber {
            scope: scope.to_string(),
            field,
            value,
        })
    }
}

/// Rejects NaN, infinite and negative numbers, impossible ρ and bounds.
pub fn validate_state(s: &PipelineState) -> Result<(), MalformedState> {
    if s.stages.is_empty() {
        return Err(MalformedState::NoStages);
    }
    if !(s.slo_p99_s.is_finite() && s.slo_p99_s > 0.0) {
        return Err(MalformedState::BadSlo(s.slo_p99_s));
    }
    for (f, v) in [
        ("t_s", s.t_s),
        ("interval_s", s.interval_s),
        ("e2e_p50_s", s.e2e_p50_s),
        ("e2e_p99_s", s.e2e_p99_s),
        ("arrival_rate", s.arrival_rate),
        ("cost_per_hour", s.cost_per_hour),
    ] {
        check("pipeline", f, v)?;
    }
    for st in &s.stages {
        let scope = format!("stage `{}`", st.name);
        for (f, v) in [
            ("arrival_rate", st.arrival_rate),
            ("completion_rate", st.completion_rate),
            ("queue_wait_p50_s", st.queue_wait_p50_s),
            ("queue_wait_p95_s", st.queue_wait_p95_s),
            ("queue_wait_p99_s", st.queue_wait_p99_s),
            ("service_p50_s", st.service_p50_s),
            ("service_p95_s", st.service_p95_s),
            ("service_p99_s", st.service_p99_s),
            ("service_mean_s", st.service_mean_s),
            ("mean_inflight", st.mean_inflight),
            ("busy_fraction", st.busy_fraction),
        ] {
            check(&scope, f, v)?;
        }
        if !(st.rho.is_finite() && st.rho > 0.0 && st.rho <= 1.0 + 1e-9) {
            return Err(MalformedState::BadRho {
                stage: st.name.clone(),
                rho: st.rho,
            });
        }
        if st.min_replicas > st.max_replicas {
            return Err(MalformedState::BadBounds {
                stage: st.name.clone(),
                min: st.min_replicas,
                max: st.max_replicas,
            });
        }
    }
    Ok(())
}

/// Per-stage knowledge kept across intervals: the last non-degenerate service measurements,
/// normalised to ρ = 1 for GPU stages, so that an idle interval does not erase what is known.
#[derive(Debug, Clone, Default)]
pub struct StageMemory {
    /// Mean service time at ρ = 1 (CPU: as measured), seconds.
    pub service_mean_1: Option<f64>,
    /// Service P99 at ρ = 1, seconds.
    pub service_p99_1: Option<f64>,
    pub cs2: f64,
}

/// Arrival history and per-stage memory.
#[derive(Debug, Clone, Default)]
pub struct History {
    arrivals: Vec<f64>,
    /// Longer record of full-interval arrival rates, for the seasonal forecast.
    season: Vec<f64>,
    pub stages: Vec<StageMemory>,
    /// Plan on the last full interval's mean arrival rate rather than on the short sample the
    /// state carries (the guard's window); the policy sets it, `sair-short-sample` clears it.
    pub plan_on_mean: bool,
}

/// How many intervals the seasonal record keeps (an hour at 30 s).
const SEASON_WINDOW: usize = 120;

/// A detected period (in intervals) and its strength (autocorrelation of the differences).
fn detect_period(x: &[f64]) -> Option<(usize, f64)> {
    let n = x.len();
    if n < 9 {
        return None;
    }
    let (lo, hi) = x
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    // Only loads that swing matter; a flat or noisy load has nothing to forecast.
    if hi < 1.5 * lo.max(1e-9) {
        return None;
    }
    // Differences remove trends (a ramp correlates with itself at every lag).
    let d: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let m = d.len();
    let mean = d.iter().sum::<f64>() / m as f64;
    let var: f64 = d.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for lag in 2..=(m / 2).min(60) {
        let c: f64 = (lag..m)
            .map(|t| (d[t] - mean) * (d[t - lag] - mean))
            .sum::<f64>();
        let r = c / var * m as f64 / (m - lag) as f64;
        if r > 0.4 && best.is_none_or(|(_, b)| r > b) {
            best = Some((lag, r));
        }
    }
    best
}

/// How many past full intervals the trend looks at.
const TREND_WINDOW: usize = 4;

impl History {
    /// An empty history; see [`History::plan_on_mean`].
    pub fn planning_on_mean(plan_on_mean: bool) -> Self {
        Self {
            plan_on_mean,
            ..Self::default()
        }
    }

    /// Records a full interval: `arrival_rate` is the interval's mean pipeline arrival rate.
    pub fn observe(&mut self, s: &PipelineState, arrival_rate: f64) {
        self.arrivals.push(arrival_rate);
        if self.arrivals.len() > TREND_WINDOW {
            self.arrivals.remove(0);
        }
        self.season.push(arrival_rate);
        if self.season.len() > SEASON_WINDOW {
            self.season.remove(0);
        }
        if self.stages.len() != s.stages.len() {
            self.stages = vec![StageMemory::default(); s.stages.len()];
        }
        for (m, st) in self.stages.iter_mut().zip(&s.stages) {
            if st.completion_rate > 0.0 && st.service_mean_s > 0.0 {
                let scale = speed(st);
                m.service_mean_1 = Some(st.service_mean_s * scale);
                m.service_p99_1 = Some(st.service_p99_s.max(st.service_mean_s) * scale);
                m.cs2 = service_cv2(st.service_p50_s, st.service_p99_s);
            }
        }
    }

    /// Least-squares slope of the pipeline arrival rate, per interval.
    pub fn slope_per_interval(&self) -> f64 {
        let n = self.arrivals.len();
        if n < 2 {
            return 0.0;
        }
        let nf = n as f64;
        let xm = (nf - 1.0) / 2.0;
        let ym = self.arrivals.iter().sum::<f64>() / nf;
        let (mut num, mut den) = (0.0, 0.0);
        for (i, y) in self.arrivals.iter().enumerate() {
            let dx = i as f64 - xm;
            num += dx * (y - ym);
            den += dx * dx;
        }
        if den > 0.0 { num / den } else { 0.0 }
    }

    /// Seasonal forecast: when the load repeats with a detected period L, the largest rate
    /// seen at the next two phases one and two periods ago (two, because new replicas need a
    /// start-up before they serve). `None` without a clear period.
    pub fn seasonal(&self) -> Option<f64> {
        let x = &self.season;
        let (l, _) = detect_period(x)?;
        let n = x.len();
        let mut best: Option<f64> = None;
        // A period that is not a whole number of intervals shows up as L or L + 1: look at both,
        // and three phases ahead, so a burst is covered wherever it falls.
        for back in [l, l + 1, 2 * l, 2 * l + 1] {
            for h in 0..3 {
                if let Some(v) = (n + h).checked_sub(back).and_then(|i| x.get(i)) {
                    best = Some(best.map_or(*v, |b| b.max(*v)));
                }
            }
        }
        best
    }

    /// Pipeline demand to plan the next interval for: the current rate (with
    /// [`History::plan_on_mean`], the last interval's mean, so that one noisy 5 s sample does
    /// not size a GPU share), raised (never lowered) by one interval of the recent upward
    /// trend and by the seasonal forecast.
    pub fn planning_rate(&self, s: &PipelineState) -> f64 {
        let now = match self.arrivals.last() {
            Some(&mean) if self.plan_on_mean && mean > 0.0 => mean,
            _ => s.arrival_rate,
        };
        let trend = (now + self.slope_per_interval().max(0.0)).max(now);
        self.seasonal().map_or(trend, |f| trend.max(f))
    }

    /// Relative trend in [−1, 1]: slope per interval over the current rate.
    pub fn trend(&self, s: &PipelineState) -> f64 {
        (self.slope_per_interval() / s.arrival_rate.max(1.0)).clamp(-1.0, 1.0)
    }
}

/// The factor that turns a measured service time into the ρ = 1 service time (GPU stages run
/// at speed ρ, so their service time is the ρ = 1 time divided by ρ).
fn speed(st: &StageState) -> f64 {
    match st.kind {
        StageKind::Gpu => st.rho,
        StageKind::Cpu => 1.0,
    }
}

/// Planning loads: what the queueing model needs about each stage, independent of the
/// allocation (which [`Planning::stage_load`] applies).
#[derive(Debug, Clone, PartialEq)]
pub struct Planning {
    /// Arrival rate to plan for, per stage.
    pub lambda: Vec<f64>,
    /// Service mean at ρ = 1 (CPU: as measured).
    pub service_mean_1: Vec<f64>,
    pub service_p99_1: Vec<f64>,
    pub cs2: Vec<f64>,
    pub backlog: Vec<f64>,
    pub horizon_s: f64,
}

impl Planning {
    /// Builds the planning loads from the state and memory. A stage's demand is the larger of
    /// what it saw and what entered the pipeline (a stage behind a bottleneck sees less than
    /// it will once the bottleneck is fixed), planned with the upward trend.
    pub fn new(s: &PipelineState, h: &History, horizon_s: f64) -> Self {
        let demand = h.planning_rate(s);
        let trend_factor = if s.arrival_rate > 0.0 {
            demand / s.arrival_rate
        } else {
            1.0
        };
        let mut p = Planning {
            lambda: Vec::new(),
            service_mean_1: Vec::new(),
            service_p99_1: Vec::new(),
            cs2: Vec::new(),
            backlog: Vec::new(),
            horizon_s,
        };
        for (i, st) in s.stages.iter().enumerate() {
            let mem = h.stages.get(i);
            let sm = mem
                .and_then(|m| m.service_mean_1)
                .unwrap_or((st.service_mean_s * speed(st)).max(1e-6));
            let sp = mem
                .and_then(|m| m.service_p99_1)
                .unwrap_or((st.service_p99_s * speed(st)).max(sm));
            p.lambda
                .push((st.arrival_rate * trend_factor).max(demand).max(0.0));
            p.service_mean_1.push(sm);
            p.service_p99_1.push(sp);
            p.cs2.push(mem.map_or(1.0, |m| m.cs2));
            p.backlog.push(st.queue_depth as f64);
        }
        p
    }

    /// The queueing-model input for stage `i` with `replicas` replicas at share `rho`.
    pub fn stage_load(&self, s: &PipelineState, i: usize, replicas: u32, rho: f64) -> StageLoad {
        let st = &s.stages[i];
        let slow = match st.kind {
            StageKind::Gpu => 1.0 / rho.max(0.01),
            StageKind::Cpu => 1.0,
        };
        StageLoad {
            lambda: self.lambda[i],
            service_mean_s: self.service_mean_1[i] * slow,
            service_p99_s: self.service_p99_1[i] * slow,
            cs2: self.cs2[i],
            ca2: 1.0,
            servers: replicas.saturating_mul(st.concurrency.max(1)),
            backlog: self.backlog[i],
            horizon_s: self.horizon_s,
        }
    }

    /// Utilisation of stage `i` under the current allocation: `λ·E[S]/capacity`.
    pub fn utilisation(&self, s: &PipelineState, i: usize) -> f64 {
        let st = &s.stages[i];
        let l = self.stage_load(s, i, st.replicas.max(1), st.rho);
        l.lambda * l.service_mean_s / f64::from(l.servers.max(1))
    }
}

/// The stage that limits throughput: the highest utilisation of the current allocation under
/// the observed demand (ties broken by queue wait).
pub fn bottleneck(s: &PipelineState, p: &Planning) -> usize {
    let mut best = 0;
    let mut best_key = (f64::MIN, f64::MIN);
    for i in 0..s.stages.len() {
        let key = (p.utilisation(s, i), s.stages[i].queue_wait_p99_s);
        if key.0 > best_key.0 || (key.0 == best_key.0 && key.1 > best_key.1) {
            best = i;
            best_key = key;
        }
    }
    best
}

/// The normalised feature vector for similarity, every entry in [0, 1]: per stage
/// utilisation (/2), queue-wait P99 as a share of the SLO, replicas over max replicas, ρ; then
/// end-to-end P99 over SLO (/2) and the load trend mapped from [−1, 1].
pub fn feature_vector(s: &PipelineState, p: &Planning, h: &History) -> Vec<f64> {
    let mut f = Vec::with_capacity(s.stages.len() * 4 + 2);
    for (i, st) in s.stages.iter().enumerate() {
        f.push((p.utilisation(s, i) / 2.0).clamp(0.0, 1.0));
        f.push((st.queue_wait_p99_s / s.slo_p99_s).clamp(0.0, 1.0));
        f.push(f64::from(st.replicas_desired) / f64::from(st.max_replicas.max(1)));
        f.push(st.rho.clamp(0.0, 1.0));
    }
    f.push((s.e2e_p99_s / s.slo_p99_s / 2.0).clamp(0.0, 1.0));
    f.push((h.trend(s) + 1.0) / 2.0);
    f
}

#[cfg(test)]
pub(crate) mod tests;
