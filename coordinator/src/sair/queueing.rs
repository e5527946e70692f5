//! Queueing approximations used to predict what an allocation will do: M/G/c per stage
//! (Erlang C with the Allen–Cunneen correction for service variability), then a tandem
//! combination for the end-to-end P99. Plain functions of numbers; no state.
//!
//! The tandem P99 is approximated as `Σ mean_i + sqrt(Σ (p99_i − mean_i)²)`: the stages' means
//! add exactly, and their tail excesses are combined as if independent and roughly Gaussian.
//! The result lies between the largest stage P99 (perfect tail correlation in one stage) and
//! the sum of stage P99s (all tails at once), which is where simulated tandem lines land.

/// Probability that an arrival waits in an M/M/c queue with offered load `a = λ·E[S]`
/// (Erlang C). Returns 1.0 when the queue is unstable (`a ≥ c`).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || !a.is_finite() || a >= f64::from(c) {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    // Erlang B by the stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let cf = f64::from(c);
    let denom = cf - a * (1.0 - b);
    if denom <= 0.0 {
        1.0
    } else {
        (cf * b / denom).clamp(0.0, 1.0)
    }
}

/// Squared coefficient of variation of the service time, from its P50 and P99, assuming a
/// log-normal shape (the simulator's default and a common fit for inference latencies):
/// `σ = ln(p99/p50) / z99`, `cv² = e^{σ²} − 1`. Clamped to [0, 4]; 1.0 (exponential) when the
/// percentiles carry no information.
pub fn service_cv2(p50_s: f64, p99_s: f64) -> f64 {
    const Z99: f64 = 2.326_347_874;
    if !(p50_s > 0.0 && p99_s.is_finite() && p99_s >= p50_s) {
        return 1.0;
    }
    let sigma = (p99_s / p50_s).ln() / Z99;
    (sigma * sigma).exp_m1().clamp(0.0, 4.0)
}

/// One stage under a proposed allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageLoad {
    /// Arrival rate to plan for, per second.
    pub lambda: f64,
    /// Mean service time under the proposed allocation (GPU: already divided by ρ), seconds.
    pub service_mean_s: f64,
    /// Service P99 under the proposed allocation, seconds.
    pub service_p99_s: f64,
    /// Squared coefficient of variation of the service time.
    pub cs2: f64,
    /// Squared coefficient of variation of inter-arrival times (1 for Poisson).
    pub ca2: f64,
    /// Servers: replicas × concurrency slots.
    pub servers: u32,
    /// Requests already queued at the start of the interval.
    pub backlog: f64,
    /// Horizon over which an overload accumulates (the decision interval), seconds.
    pub horizon_s: f64,
}

/// What the model predicts for one stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StagePrediction {
    pub utilisation: f64,
    pub wait_mean_s: f64,
    pub wait_p99_s: f64,
    pub sojourn_mean_s: f64,
    pub sojourn_p99_s: f64,
}

/// The highest utilisation treated as stable; above it the overload branch applies.
const U_STABLE: f64 = 0.99;

/// Predicts one stage's waiting and sojourn times.
///
/// Stable case (u < 0.99): Allen–Cunneen, `Wq ≈ C(c, a) / (cμ − λ) · (ca² + cs²)/2`, with the
/// conditional wait taken as exponential (as in M/M/c) stretched by the same variability
/// factor, so `P(W > t) ≈ C·exp(−t (cμ − λ)/k)` and `W99 = k·ln(C/0.01)/(cμ − λ)` when `C > 1%`.
/// A backlog present at the start adds `backlog / (cμ)` (time to serve the requests ahead).
/// Overload (u ≥ 0.99): the queue grows at `λ − cμ` over the horizon; the P99 wait is the time
/// to serve the backlog reached at the end of the horizon, plus the u = 0.99 steady-state wait
/// so that the prediction is continuous and increasing in load.
pub fn predict_stage(s: &StageLoad) -> StagePrediction {
    let servers = s.servers.max(1);
    let c = f64::from(servers);
    let es = s.service_mean_s.max(1e-9);
    let mu = 1.0 / es;
    let lambda = s.lambda.max(0.0);
    let u = lambda * es / c;
    let k = ((s.ca2 + s.cs2) / 2.0).max(0.05);
    let steady = |lam: f64| -> (f64, f64) {
        let a = lam * es;
        let pw = erlang_c(servers, a);
        let gap = (c * mu - lam).max(1e-9);
        let mean = pw / gap * k;
        let p99 = if pw > 0.01 {
            k * (pw / 0.01).ln() / gap
        } else {
            0.0
        };
        (mean, p99)
    };
    let drain = s.backlog.max(0.0) / (c * mu);
    let (wait_mean, wait_p99) = if u < U_STABLE {
        let (m, p) = steady(lambda);
        (m + drain / 2.0, p + drain)
    } else {
        let (m, p) = steady(U_STABLE * c * mu);
        let growth = (lambda - c * mu).max(0.0) * s.horizon_s.max(0.0);
        let end_wait = (s.backlog.max(0.0) + growth) / (c * mu);
        (m + end_wait / 2.0, p + end_wait)
    };
    StagePrediction {
        utilisation: u,
        wait_mean_s: wait_mean,
        wait_p99_s: wait_p99,
        sojourn_mean_s: wait_mean + es,
        sojourn_p99_s: wait_p99 + s.service_p99_s.max(es),
    }
}

/// End-to-end P99 of a tandem line: `Σ mean_i + sqrt(Σ (p99_i − mean_i)²)` (see module docs).
pub fn tandem_p99(stages: &[StagePrediction]) -> f64 {
    let mean: f64 = stages.iter().map(|p| p.sojourn_mean_s).sum();
    let excess: f64 = stages
        .iter()
        .map(|p| (p.sojourn_p99_s - p.sojourn_mean_s).max(0.0).powi(2))
        .sum();
    mean + excess.sqrt()
}

#[cfg(test)]
mod tests;
