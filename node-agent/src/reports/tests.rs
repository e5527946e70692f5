use super::*;
use std::time::Duration;

fn report(pipeline: &str, stage: &str, replica: &str, arrivals: u64) -> StageReport {
    StageReport {
        pipeline: pipeline.into(),
        stage: stage.into(),
        replica: replica.into(),
        window_seconds: 1.0,
        arrivals,
        ..StageReport::default()
    }
}

fn key(p: &str, s: &str, r: &str) -> ReportKey {
    (p.into(), s.into(), r.into())
}

#[test]
fn keeps_the_latest_per_key() {
    let t = Instant::now();
    let mut store = ReportStore::new(8);
    store.accept(report("p", "s", "r1", 1), t);
    store.accept(report("p", "s", "r1", 2), t);
    store.accept(report("p", "s", "r2", 3), t);
    assert_eq!(store.len(), 2);
    assert_eq!(store.get(&key("p", "s", "r1")).unwrap().arrivals, 2);
}

#[test]
fn invalid_reports_are_refused_and_not_stored() {
    let mut store = ReportStore::new(8);
    let mut bad = report("p", "s", "r", 1);
    bad.busy_fraction = f64::NAN;
    assert!(matches!(
        store.accept(bad, Instant::now()),
        Accepted::Invalid(_)
    ));
    assert!(matches!(
        store.accept(report("", "s", "r", 1), Instant::now()),
        Accepted::Invalid(_)
    ));
    assert!(store.is_empty());
}

#[test]
fn capacity_bounds_the_label_sets_by_evicting_the_stalest() {
    let t = Instant::now();
    let mut store = ReportStore::new(2);
    store.accept(report("p", "s", "a", 1), t);
    store.accept(report("p", "s", "b", 1), t + Duration::from_secs(1));
    store.accept(report("p", "s", "a", 2), t + Duration::from_secs(2));
    let out = store.accept(report("p", "s", "c", 1), t + Duration::from_secs(3));
    assert_eq!(
        out,
        Accepted::Stored {
            evicted: Some(key("p", "s", "b"))
        }
    );
    assert_eq!(store.len(), 2);
}

#[test]
fn reports_with_inconsistent_histograms_are_refused() {
    let mut store = ReportStore::new(8);
    let mut ok = report("p", "s", "r", 1);
    ok.service_hist.record(0.01);
    ok.e2e_hist.record_n(0.05, 3);
    assert_eq!(
        store.accept(ok, Instant::now()),
        Accepted::Stored { evicted: None }
    );
    // A count that is not the sum of the buckets (what a hostile or buggy sender can write).
    let bad: sair_wire::LatencyHistogram =
        serde_json::from_str(r#"{"count":7,"sum_seconds":0.1,"buckets":[[40,1]]}"#).unwrap();
    let mut r = report("p", "s", "r2", 1);
    r.queue_wait_hist = bad;
    match store.accept(r, Instant::now()) {
        Accepted::Invalid(why) => assert!(why.contains("queue_wait_hist"), "{why}"),
        other => panic!("accepted: {other:?}"),
    }
    assert_eq!(store.len(), 1);
}
