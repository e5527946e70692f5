use std::time::{Duration, Instant};

use sair_wire::histogram::LatencyHistogram;
use sair_wire::keys::{self, SegmentFacts};
use sair_wire::{Percentiles, StageReport};

use super::{Entry, Observer, PipelineSpec, StageAlloc};
use crate::policies::Prices;
use crate::policy::{StageKind, StageSpec};

fn spec() -> PipelineSpec {
    let stage = |name: &str, kind| StageSpec {
        name: name.into(),
        kind,
        concurrency: 1,
        min_replicas: 1,
        max_replicas: 4,
    };
    PipelineSpec {
        name: "p".into(),
        stages: vec![stage("pre", StageKind::Cpu), stage("infer", StageKind::Gpu)],
        slo_p99_s: 0.1,
        gpus: 1,
        prices: Prices {
            cpu_replica_per_hour: 1.0,
            gpu_per_hour: 10.0,
        },
    }
}

fn hist(samples: &[(f64, u64)]) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for &(s, n) in samples {
        h.record_n(s, n);
    }
    h
}

/// A report of `stage`/`replica` for the window ending at `end_ms`, 1 s long.
fn report(
    stage: &str,
    replica: &str,
    end_ms: u64,
    arrivals: u64,
    wait: &[(f64, u64)],
) -> StageReport {
    StageReport {
        pipeline: "p".into(),
        stage: stage.into(),
        replica: replica.into(),
        window_end_unix_ms: end_ms,
        window_seconds: 1.0,
        arrivals,
        completions: arrivals,
        rejections: 0,
        errors: 0,
        queue_wait: Percentiles::default(),
        service: Percentiles::default(),
        mean_inflight: 0.5,
        queue_depth: 1,
        busy_fraction: 0.5,
        max_concurrency: 1,
        queue_wait_hist: hist(wait),
        service_hist: hist(&[(0.002, arrivals)]),
        e2e_hist: if stage == "pre" {
            hist(wait)
        } else {
            LatencyHistogram::new()
        },
    }
}

fn entry(member: &str, r: &StageReport) -> Entry {
    (member.into(), keys::report_key(r), keys::encode(r))
}

const ALLOC: [StageAlloc; 2] = [
    StageAlloc {
        serving: 2,
        desired: 2,
        rho: 1.0,
    },
    StageAlloc {
        serving: 1,
        desired: 1,
        rho: 0.5,
    },
];

#[test]
fn replicas_merge_through_histograms_and_rates_add_up() {
    let t0 = Instant::now();
    let mut o = Observer::new(spec(), 3.0, t0);
    // First sight: neither counted nor fresh.
    let first = [
        entry("a", &report("pre", "r1", 1000, 10, &[(0.001, 10)])),
        entry("b", &report("pre", "r2", 1000, 10, &[(0.001, 10)])),
        entry("a", &report("infer", "r1", 1000, 20, &[(0.001, 20)])),
    ];
    o.ingest_reports(&first, t0);
    let obs = o.peek(t0, 0.0, &ALLOC);
    assert!(
        obs.stages.iter().all(|s| s.stale),
        "first sight is not fresh"
    );
    assert_eq!(obs.stale().len(), 2);
    // Replica r1 is fast (99 samples at 1 ms), r2 slow (1 sample at 100 ms, 99 at 50 ms):
    // averaging the replicas' p99s would give ~25 ms; the merged p99 is the slow replica's.
    let t1 = t0 + Duration::from_secs(1);
    let second = [
        entry("a", &report("pre", "r1", 2000, 99, &[(0.001, 99)])),
        entry(
            "b",
            &report("pre", "r2", 2000, 100, &[(0.05, 99), (0.1, 1)]),
        ),
        entry("a", &report("infer", "r1", 2000, 199, &[(0.001, 199)])),
    ];
    let stats = o.ingest_reports(&second, t1);
    assert_eq!(stats.windows, 3);
    // Reading the same values again adds nothing.
    assert_eq!(o.ingest_reports(&second, t1).windows, 0);
    let obs = o.take(t1, 1.0, &ALLOC);
    let pre = &obs.state.stages[0];
    tracing::info!(?pre, "merged stage");
    assert!(!obs.stages[0].stale && !obs.stages[1].stale);
    assert_eq!(obs.stages[0].fresh_replicas, 2);
    assert!(
        (pre.arrival_rate - 199.0).abs() < 1e-9,
        "{}",
        pre.arrival_rate
    );
    assert!(
        (pre.queue_wait_p99_s - 0.05).abs() / 0.05 < 0.03,
        "p99 {} is the merged histogram's",
        pre.queue_wait_p99_s
    );
    assert!((pre.busy_fraction - 0.5).abs() < 1e-9);
    assert!((pre.mean_inflight - 1.0).abs() < 1e-9);
    assert_eq!(pre.queue_depth, 2);
    assert_eq!(pre.replicas, 2);
    assert_eq!(obs.state.stages[1].rho, 0.5);
    assert_eq!(pre.rho, 1.0);
    // e2e from the entry stage's e2e histograms (199 samples).
    assert_eq!(obs.state.completed, 199);
    assert!((obs.state.e2e_p99_s - 0.05).abs() / 0.05 < 0.03);
    assert!((obs.state.arrival_rate - 199.0).abs() < 1e-9);
    // Cost: 2 CPU replicas at 1/h + 1 GPU replica at ρ 0.5 × 10/h.
    assert!((obs.state.cost_per_hour - 7.0).abs() < 1e-9);
}

#[test]
fn a_report_that_stops_changing_goes_stale_and_its_stage_with_it() {
    let t0 = Instant::now();
    let mut o = Observer::new(spec(), 3.0, t0);
    let r = |end| {
        [
            entry("a", &report("pre", "r1", end, 5, &[(0.001, 5)])),
            entry("a", &report("infer", "r1", end, 5, &[(0.001, 5)])),
        ]
    };
    o.ingest_reports(&r(1000), t0);
    o.ingest_reports(&r(2000), t0 + Duration::from_secs(1));
    let fresh = o.take(t0 + Duration::from_secs(2), 2.0, &ALLOC);
    assert!(fresh.stale().is_empty());
    // The sender's clock means nothing: a report whose window end jumps far ahead is still
    // judged by when it changed here. The pre replica keeps changing; infer stops.
    let mut now = t0 + Duration::from_secs(1);
    for k in 3..8u64 {
        now += Duration::from_secs(1);
        o.ingest_reports(
            &[
                entry("a", &report("pre", "r1", k * 1_000_000, 5, &[(0.001, 5)])),
                entry("a", &report("infer", "r1", 2000, 5, &[(0.001, 5)])),
            ],
            now,
        );
    }
    let obs = o.take(now, 7.0, &ALLOC);
    assert!(!obs.stages[0].stale);
    assert!(
        obs.stages[1].stale,
        "5 s without a change, 3 windows of 1 s allowed"
    );
    let why = obs.stale();
    assert_eq!(why.len(), 1);
    assert!(why[0].starts_with("infer"), "{why:?}");
    // The stale stage still has its last window's numbers (nothing new this interval).
    assert_eq!(obs.state.stages[1].arrival_rate, 0.0);
}

#[test]
fn bad_values_and_other_pipelines_are_not_taken_and_forgotten_keys_go() {
    let t0 = Instant::now();
    let mut o = Observer::new(spec(), 3.0, t0);
    let good = report("pre", "r1", 1000, 5, &[(0.001, 5)]);
    let mut other = good.clone();
    other.pipeline = "q".into();
    let mut lying = good.clone();
    lying.stage = "infer".into(); // under pre's key
    let mut unknown = good.clone();
    unknown.stage = "nope".into();
    let entries = vec![
        entry("a", &good),
        entry("a", &other),
        ("a".into(), keys::report_key(&good), b"garbage".to_vec()),
        ("b".into(), keys::report_key(&good), keys::encode(&lying)),
        entry("a", &unknown),
        ("a".into(), "report/p".into(), vec![]),
    ];
    let stats = o.ingest_reports(&entries, t0);
    assert_eq!(stats.invalid, 2);
    assert_eq!(stats.unknown_stage, 1);
    assert_eq!(o.seen.len(), 1);
    o.ingest_reports(&[], t0);
    assert!(
        o.seen.is_empty(),
        "what the mesh no longer holds is forgotten"
    );
}

#[test]
fn segments_of_the_pipeline_give_the_measured_share() {
    let t0 = Instant::now();
    let mut o = Observer::new(spec(), 3.0, t0);
    let seg = |name: &str, measured| {
        (
            "a".to_string(),
            keys::segment_key(name),
            keys::encode(&SegmentFacts {
                gpu: 0,
                mode: "share".into(),
                target: 0.5,
                measured,
            }),
        )
    };
    o.ingest_segments(&[
        seg("p.infer.0", Some(0.4)),
        seg("p.infer.1", Some(0.6)),
        seg("p.infer.2", None),
        seg("q.infer.0", Some(0.9)),
        seg("unrelated", Some(0.9)),
    ]);
    let obs = o.peek(t0, 0.0, &ALLOC);
    assert_eq!(obs.stages[1].rho_measured, Some(0.5));
    assert_eq!(obs.stages[0].rho_measured, None);
}

#[test]
fn the_load_is_unknown_until_a_whole_interval_of_traffic_is_seen() {
    use super::Traffic;
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut o = Observer::new(spec(), 3.0, t0);
    let r = |end, n| {
        [
            entry("a", &report("pre", "r1", end, n, &[(0.001, n)])),
            entry("a", &report("infer", "r1", end, n, &[(0.001, n)])),
        ]
    };
    // Fresh reports of an idle pipeline: zero arrivals is not yet a load to size for.
    o.ingest_reports(&r(1000, 0), t0);
    o.ingest_reports(&r(2000, 0), t0 + s);
    let idle = o.take(t0 + 2 * s, 2.0, &ALLOC);
    assert!(idle.stale().is_empty(), "the reports are fresh");
    assert_eq!(idle.traffic, Traffic::NotYet);
    assert!(
        idle.awaiting_traffic()
            .is_some_and(|w| w.contains("no request")),
        "{:?}",
        idle.awaiting_traffic()
    );
    // The first requests arrive part-way through the next interval: still held.
    o.ingest_reports(&r(3000, 0), t0 + 3 * s);
    o.ingest_reports(&r(4000, 7), t0 + 4 * s);
    let starting = o.take(t0 + 4 * s + s / 2, 4.5, &ALLOC);
    assert_eq!(starting.traffic, Traffic::Starting);
    assert!(
        starting
            .awaiting_traffic()
            .is_some_and(|w| w.contains("part")),
    );
    // A whole interval of traffic: the policy may decide; later quiet intervals are real data.
    o.ingest_reports(&r(5000, 15), t0 + 5 * s);
    let flowing = o.take(t0 + 6 * s, 6.0, &ALLOC);
    assert_eq!(flowing.traffic, Traffic::Flowing);
    assert_eq!(flowing.awaiting_traffic(), None);
    o.ingest_reports(&r(6000, 0), t0 + 7 * s);
    let quiet = o.take(t0 + 8 * s, 8.0, &ALLOC);
    assert_eq!(quiet.traffic, Traffic::Flowing);
    assert_eq!(quiet.state.arrival_rate, 0.0);
}
