use super::*;

fn report() -> StageReport {
    StageReport {
        pipeline: "demo".into(),
        stage: "infer".into(),
        replica: "r1".into(),
        window_seconds: 1.0,
        ..StageReport::default()
    }
}

#[test]
fn histograms_are_validated_by_name() {
    let mut r = report();
    r.service_hist.record(0.01);
    assert_eq!(r.validate(), Ok(()));
    // A histogram that no recording builds (a JSON report can carry one).
    let bad: LatencyHistogram =
        serde_json::from_str(r#"{"count":3,"sum_seconds":0.1,"buckets":[[5,1]]}"#).unwrap();
    for field in 0..3 {
        let mut r = report();
        let (name, h) = match field {
            0 => ("queue_wait_hist", &mut r.queue_wait_hist),
            1 => ("service_hist", &mut r.service_hist),
            _ => ("e2e_hist", &mut r.e2e_hist),
        };
        *h = bad.clone();
        let e = r.validate().unwrap_err();
        assert!(e.starts_with(name), "{e}");
    }
}

#[test]
fn names_that_would_break_the_mesh_key_are_refused() {
    for field in 0..3 {
        let mut r = report();
        match field {
            0 => r.pipeline = "a/b".into(),
            1 => r.stage = "a/b".into(),
            _ => r.replica = "a/b".into(),
        }
        assert!(r.validate().unwrap_err().contains('/'));
    }
}

#[test]
fn json_without_histograms_reads_as_empty_ones() {
    let mut v = serde_json::to_value(report()).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in ["queue_wait_hist", "service_hist", "e2e_hist"] {
        o.remove(k);
    }
    let back: StageReport = serde_json::from_value(v).unwrap();
    assert_eq!(back, report());
}
