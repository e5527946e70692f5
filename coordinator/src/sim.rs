//! A discrete-event simulator of multi-stage inference pipelines, driven by the same
//! [`Policy`] code as production.
//!
//! Sans-IO and deterministic: a binary heap of timed events, arrivals from
//! `sair_loadgen::pattern::schedule` and service times from a seeded ChaCha RNG (drawn per
//! request at arrival for every stage, so every policy sees the same requests with the same
//! work). Each stage is a FIFO queue in front of replicas with `concurrency` slots; a replica
//! serves at speed ρ (GPU share or CPU share); GPU replicas are packed onto GPUs with Σρ ≤ 1;
//! new replicas serve after `startup_s`; removed ones drain. Every policy period the simulator
//! builds the [`PipelineState`](crate::policy::PipelineState) a live coordinator would assemble from StageReports and applies
//! the policy's action, clamped to the stage bounds and the GPUs. Model and definitions:
//! docs/simulator.md.

mod alloc;
mod observe;
pub mod placement;
mod result;
mod window;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

use crate::policy::Policy;
use crate::scenario::{Scenario, ServiceDist};

pub use result::{RunResult, TimelinePoint};
use window::{StageWindow, histogram, quantile_s, record};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Done {
        stage: u32,
        replica: u32,
        req: u32,
        svc: f64,
    },
    Ready {
        stage: u32,
        replica: u32,
    },
    Policy,
    Timeline,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t: f64,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    /// Reversed, so the max-heap pops the earliest event (then the first scheduled).
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RState {
    Starting,
    Serving,
    Draining,
    Gone,
}

#[derive(Debug, Clone)]
struct Replica {
    state: RState,
    busy: u32,
    rho: f64,
    gpu: Option<usize>,
}

#[derive(Debug)]
enum Sampler {
    LogNormal(LogNormal<f64>),
    Exp(Exp<f64>),
    Const(f64),
}

impl Sampler {
    fn new(mean: f64, dist: ServiceDist) -> Self {
        match dist {
            ServiceDist::Lognormal { cv } => {
                let s2 = (1.0 + cv * cv).ln();
                match LogNormal::new(mean.ln() - s2 / 2.0, s2.sqrt()) {
                    Ok(d) => Self::LogNormal(d),
                    Err(_) => Self::Const(mean),
                }
            }
            ServiceDist::Exp => match Exp::new(1.0 / mean) {
                Ok(d) => Self::Exp(d),
                Err(_) => Self::Const(mean),
            },
            ServiceDist::Const => Self::Const(mean),
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Self::LogNormal(d) => d.sample(rng),
            Self::Exp(d) => d.sample(rng),
            Self::Const(m) => *m,
        }
    }
}

#[derive(Debug)]
struct StageRt {
    replicas: Vec<Replica>,
    /// Indices of replicas that are not gone.
    active: Vec<u32>,
    queue: VecDeque<(u32, f64)>,
    rho: f64,
    busy: u32,
    /// Slots of serving replicas.
    slots: u32,
    last_t: f64,
    win: StageWindow,
    wait_sum: f64,
    wait_n: u64,
}

impl StageRt {
    fn advance(&mut self, t: f64) {
        let dt = t - self.last_t;
        if dt > 0.0 {
            self.win.busy_area += f64::from(self.busy) * dt;
            self.win.slot_area += f64::from(self.slots) * dt;
            self.win.inflight_area += (self.queue.len() as f64 + f64::from(self.busy)) * dt;
            self.last_t = t;
        }
    }

    fn count(&self, s: RState) -> u32 {
        self.active
            .iter()
            .filter(|&&r| self.replicas[r as usize].state == s)
            .count() as u32
    }
}

/// One simulation run of a scenario under one policy and seed.
#[derive(Debug)]
pub struct Sim<'a> {
    sc: &'a Scenario,
    t: f64,
    heap: BinaryHeap<Event>,
    seq: u64,
    arrivals: Vec<f64>,
    next_arrival: usize,
    rng: ChaCha8Rng,
    samplers: Vec<Sampler>,
    /// Service work per request and stage (at share 1), drawn at arrival.
    work: Vec<f64>,
    req_t0: Vec<f64>,
    stages: Vec<StageRt>,
    e2e_all: Histogram<u64>,
    e2e_sum: f64,
    e2e_win: Histogram<u64>,
    e2e_tl: Histogram<u64>,
    completed: u64,
    dropped: u64,
    late: u64,
    win_start: f64,
    win_arrivals: u64,
    win_completed: u64,
    win_dropped: u64,
    tl_start: f64,
    tl_arrivals: u64,
    timeline: Vec<TimelinePoint>,
    cost: f64,
    whole_cost: f64,
    cost_rate: f64,
    whole_rate: f64,
    cost_t: f64,
    actions: u64,
    decisions: u64,
    bn_named: u64,
    bn_correct: u64,
    clamped: u64,
    events: u64,
}

impl<'a> Sim<'a> {
    /// Sets up a run: the arrival schedule, the initial allocation, the RNG.
    pub fn new(sc: &'a Scenario, seed: u64) -> Self {
        let arrivals = sair_loadgen::pattern::schedule(&sc.pattern, sc.duration_s, seed);
        let stages = sc
            .stages
            .iter()
            .map(|s| StageRt {
                replicas: Vec::new(),
                active: Vec::new(),
                queue: VecDeque::new(),
                rho: s.initial_rho,
                busy: 0,
                slots: 0,
                last_t: 0.0,
                win: StageWindow::new(),
                wait_sum: 0.0,
                wait_n: 0,
            })
            .collect();
        let n_req = arrivals.len();
        let mut sim = Self {
            sc,
            t: 0.0,
            heap: BinaryHeap::new(),
            seq: 0,
            arrivals,
            next_arrival: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5a1e_5eed_0000_0001),
            samplers: sc
                .stages
                .iter()
                .map(|s| Sampler::new(s.service_s, s.dist))
                .collect(),
            work: Vec::with_capacity(n_req * sc.stages.len()),
            req_t0: Vec::with_capacity(n_req),
            stages,
            e2e_all: histogram(),
            e2e_sum: 0.0,
            e2e_win: histogram(),
            e2e_tl: histogram(),
            completed: 0,
            dropped: 0,
            late: 0,
            win_start: 0.0,
            win_arrivals: 0,
            win_completed: 0,
            win_dropped: 0,
            tl_start: 0.0,
            tl_arrivals: 0,
            timeline: Vec::new(),
            cost: 0.0,
            whole_cost: 0.0,
            cost_rate: 0.0,
            whole_rate: 0.0,
            cost_t: 0.0,
            actions: 0,
            decisions: 0,
            bn_named: 0,
            bn_correct: 0,
            clamped: 0,
            events: 0,
        };
        for (i, s) in sc.stages.iter().enumerate() {
            for _ in 0..s.initial_replicas {
                sim.add_replica(i, true);
            }
        }
        sim.place_gpus();
        sim.update_cost_rate();
        sim
    }

    fn push(&mut self, t: f64, kind: Kind) {
        self.seq += 1;
        self.heap.push(Event {
            t,
            seq: self.seq,
            kind,
        });
    }

    /// Runs the scenario to the end under `policy` and returns the measurements.
    pub fn run(mut self, policy: &mut dyn Policy) -> RunResult {
        let dur = self.sc.duration_s;
        if let Some(a) = policy.initial_action() {
            self.apply(&a);
        }
        let period = policy
            .period_s()
            .filter(|p| p.is_finite() && *p > 0.0)
            .unwrap_or(self.sc.interval_s);
        self.push(period.min(dur), Kind::Policy);
        self.push(self.sc.interval_s.min(dur), Kind::Timeline);
        let drain_until = dur + (10.0 * self.sc.slo_p99_s).max(60.0);
        loop {
            let next_arrival = self.arrivals.get(self.next_arrival).copied();
            let next_event = self.heap.peek().map(|e| e.t);
            let take_arrival = match (next_arrival, next_event) {
                (Some(a), Some(e)) => a < e,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            self.events += 1;
            if take_arrival {
                self.next_arrival += 1;
                let t = next_arrival.unwrap_or(self.t);
                self.t = t;
                self.arrive(t);
                continue;
            }
            let Some(ev) = self.heap.pop() else { break };
            if ev.t > drain_until {
                break;
            }
            self.t = ev.t;
            match ev.kind {
                Kind::Done {
                    stage,
                    replica,
                    req,
                    svc,
                } => self.done(stage as usize, replica, req, svc, ev.t),
                Kind::Ready { stage, replica } => self.ready(stage as usize, replica, ev.t),
                Kind::Policy => {
                    self.policy_tick(policy, ev.t);
                    if ev.t + period <= dur + 1e-9 {
                        self.push(ev.t + period, Kind::Policy);
                    }
                }
                Kind::Timeline => {
                    self.timeline_tick(ev.t);
                    if ev.t + self.sc.interval_s <= dur + 1e-9 {
                        self.push(ev.t + self.sc.interval_s, Kind::Timeline);
                    }
                }
            }
            if self.t >= dur && self.in_flight() == 0 && self.next_arrival >= self.arrivals.len() {
                break;
            }
        }
        self.accrue_cost(dur);
        self.finish()
    }

    fn in_flight(&self) -> u64 {
        self.req_t0.len() as u64 - self.completed - self.dropped
    }

    fn finish(self) -> RunResult {
        let arrivals = self.req_t0.len() as u64;
        let unfinished = self.in_flight();
        let bad = self.late + self.dropped + unfinished;
        RunResult {
            arrivals,
            completed: self.completed,
            dropped: self.dropped,
            unfinished,
            late: self.late,
            p50_s: quantile_s(&self.e2e_all, 0.5),
            p99_s: quantile_s(&self.e2e_all, 0.99),
            mean_s: if self.completed > 0 {
                self.e2e_sum / self.completed as f64
            } else {
                0.0
            },
            slo_violation_rate: if arrivals > 0 {
                bad as f64 / arrivals as f64
            } else {
                0.0
            },
            cost: self.cost,
            whole_gpu_cost: self.whole_cost,
            actions: self.actions,
            decisions: self.decisions,
            bottleneck_named: self.bn_named,
            bottleneck_correct: self.bn_correct,
            clamped: self.clamped,
            events: self.events,
            stage_wait_mean_s: self
                .stages
                .iter()
                .map(|s| {
                    if s.wait_n > 0 {
                        s.wait_sum / s.wait_n as f64
                    } else {
                        0.0
                    }
                })
                .collect(),
            timeline: self.timeline,
        }
    }

    fn arrive(&mut self, t: f64) {
        let id = self.req_t0.len() as u32;
        self.req_t0.push(t);
        for i in 0..self.samplers.len() {
            let w = self.samplers[i].sample(&mut self.rng);
            self.work.push(w);
        }
        self.win_arrivals += 1;
        self.tl_arrivals += 1;
        self.enter(0, id, t);
    }

    fn enter(&mut self, i: usize, req: u32, t: f64) {
        let st = &mut self.stages[i];
        st.advance(t);
        st.win.arrivals += 1;
        if let Some(r) = self.free_replica(i) {
            self.start(i, r, req, t, 0.0);
            return;
        }
        let st = &mut self.stages[i];
        if let Some(cap) = self.sc.stages[i].queue_capacity
            && st.queue.len() as u64 >= cap
        {
            self.dropped += 1;
            self.win_dropped += 1;
            return;
        }
        st.queue.push_back((req, t));
    }

    fn free_replica(&self, i: usize) -> Option<u32> {
        let st = &self.stages[i];
        let conc = self.sc.stages[i].concurrency;
        let mut best: Option<(u32, u32)> = None;
        for &r in &st.active {
            let rep = &st.replicas[r as usize];
            if rep.state == RState::Serving
                && rep.busy < conc
                && best.is_none_or(|(_, b)| rep.busy < b)
            {
                best = Some((r, rep.busy));
            }
        }
        best.map(|(r, _)| r)
    }

    fn start(&mut self, i: usize, r: u32, req: u32, t: f64, wait: f64) {
        let n = self.samplers.len();
        let st = &mut self.stages[i];
        let rep = &mut st.replicas[r as usize];
        rep.busy += 1;
        st.busy += 1;
        record(&mut st.win.wait, wait);
        st.wait_sum += wait;
        st.wait_n += 1;
        let svc = self.work[req as usize * n + i] / rep.rho;
        self.push(
            t + svc,
            Kind::Done {
                stage: i as u32,
                replica: r,
                req,
                svc,
            },
        );
    }

    fn done(&mut self, i: usize, r: u32, req: u32, svc: f64, t: f64) {
        let st = &mut self.stages[i];
        st.advance(t);
        st.busy -= 1;
        st.win.completions += 1;
        record(&mut st.win.service, svc);
        st.win.service_sum_s += svc;
        let rep = &mut st.replicas[r as usize];
        rep.busy -= 1;
        match rep.state {
            RState::Draining if rep.busy == 0 => self.retire(i, r, t),
            RState::Serving => {
                if let Some((q, enq)) = self.stages[i].queue.pop_front() {
                    self.start(i, r, q, t, t - enq);
                }
            }
            _ => {}
        }
        if i + 1 < self.sc.stages.len() {
            self.enter(i + 1, req, t);
        } else {
            let e2e = t - self.req_t0[req as usize];
            record(&mut self.e2e_all, e2e);
            record(&mut self.e2e_win, e2e);
            record(&mut self.e2e_tl, e2e);
            self.e2e_sum += e2e;
            self.completed += 1;
            self.win_completed += 1;
            if e2e > self.sc.slo_p99_s {
                self.late += 1;
            }
        }
    }

    fn ready(&mut self, i: usize, r: u32, t: f64) {
        let conc = self.sc.stages[i].concurrency;
        let st = &mut self.stages[i];
        if st.replicas[r as usize].state != RState::Starting {
            return;
        }
        st.advance(t);
        st.replicas[r as usize].state = RState::Serving;
        st.slots += conc;
        while self.stages[i].replicas[r as usize].busy < conc {
            let Some((q, enq)) = self.stages[i].queue.pop_front() else {
                break;
            };
            self.start(i, r, q, t, t - enq);
        }
    }
}

/// Runs one scenario under one policy and seed.
pub fn run(sc: &Scenario, policy: &mut dyn Policy, seed: u64) -> RunResult {
    Sim::new(sc, seed).run(policy)
}

#[cfg(test)]
mod tests;
