use super::*;
use crate::pattern::Pattern;
use crate::server_timing::parse;

fn meta() -> RunMeta {
    RunMeta {
        target: "http://127.0.0.1:1/".into(),
        pattern: Pattern::Poisson { rate: 10.0 },
        seed: 1,
        duration_s: 2.0,
        elapsed_s: 2.1,
        connections: 4,
        scheduled: 6,
        undispatched: 0,
    }
}

#[test]
fn a_dispatch_lag_past_the_bound_or_undispatched_arrivals_mean_the_generator_fell_behind() {
    let mut r = Recorder::new();
    for i in 0..100 {
        r.sent(f64::from(i) / 100.0, 1_000, 1_000);
    }
    let ok = r.report(meta());
    assert!(!ok.fell_behind && ok.behind_reason().is_none());
    assert!(!ok.summary().contains("fell behind"));
    let left = r.report(RunMeta {
        undispatched: 3,
        ..meta()
    });
    assert!(left.fell_behind, "undispatched arrivals");
    assert_eq!(left.undispatched, 3);
    for i in 0..10 {
        r.sent(f64::from(i) / 10.0, 150_000, 150_000);
    }
    let late = r.report(meta());
    assert!(late.fell_behind, "p99 dispatch lag 150 ms");
    assert!(late.summary().contains("fell behind"), "{}", late.summary());
}

#[test]
fn counts_and_timeline_follow_intended_time() {
    let mut r = Recorder::new();
    r.sent(0.1, 40, 50);
    r.completed(0.1, 10_000, &parse("a-queue;dur=1, a-service;dur=4"));
    r.sent(0.5, 60, 70);
    r.completed(0.5, 20_000, &parse("a-queue;dur=3, a-service;dur=6"));
    r.sent(1.2, 100, 900);
    r.error(1.2, ErrorKind::Timeout);
    r.sent(1.3, 10, 10);
    r.error(1.3, ErrorKind::from_status(503));
    r.dropped(1.9, 2000);
    r.dropped(1.95, 30);
    assert_eq!(
        r.counts(),
        Counts {
            sent: 4,
            completed: 2,
            dropped: 2,
            errors: 2
        }
    );
    let rep = r.report(meta());
    assert_eq!(rep.sent, 4);
    assert_eq!(rep.errors.get("timeout"), Some(&1));
    assert_eq!(rep.errors.get("http_5xx"), Some(&1));
    assert_eq!(rep.achieved_rps, 2.0);
    assert_eq!(rep.offered_rps, 3.0);
    assert_eq!(rep.timeline.len(), 2);
    assert_eq!(rep.timeline[0].rps, 2);
    assert_eq!(rep.timeline[0].completed, 2);
    assert!((rep.timeline[0].p99_ms - 20.0).abs() < 0.5);
    assert_eq!(rep.timeline[1].dropped, 2);
    assert_eq!(rep.timeline[1].errors, 2);
    assert!((rep.latency_ms.max - 20.0).abs() < 0.05);
    assert!((rep.latency_ms.mean - 15.0).abs() < 0.05);
    assert!((rep.send_lag_ms.max - 0.9).abs() < 0.01);
    assert!((rep.dispatch_lag_ms.max - 2.0).abs() < 0.01);
    assert!((rep.dispatch_lag_ms.p50 - 0.04).abs() < 0.005);
    let a = &rep.stages["a"];
    assert_eq!(a.count, 2);
    assert!((a.queue_p99_ms - 3.0).abs() < 0.01);
    assert!((a.service_p50_ms - 4.0).abs() < 0.01);
    let text = rep.summary();
    assert!(text.contains("dropped 2"), "{text}");
    assert!(text.contains("stage a"), "{text}");
}

#[test]
fn empty_run_reports_zeros() {
    let rep = Recorder::new().report(meta());
    assert_eq!(rep.completed, 0);
    assert_eq!(rep.latency_ms.mean, 0.0);
    assert!(rep.timeline.is_empty());
    assert!(rep.errors.is_empty());
}

#[test]
fn stages_are_bounded() {
    let mut r = Recorder::new();
    for i in 0..(MAX_STAGES + 10) {
        r.completed(0.0, 1, &parse(&format!("s{i}-service;dur=1")));
    }
    assert_eq!(r.report(meta()).stages.len(), MAX_STAGES);
}
