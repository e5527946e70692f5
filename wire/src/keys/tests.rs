use super::*;
use crate::histogram::{BUCKETS, LatencyHistogram};

#[test]
fn values_round_trip_and_garbage_is_refused() {
    let s = SegmentFacts {
        gpu: 1,
        mode: "cap".into(),
        target: 0.25,
        measured: Some(0.24),
    };
    assert_eq!(decode(&encode(&s)), Some(s));
    let g = GpuFacts {
        count: 2,
        utilization: None,
    };
    assert_eq!(decode(&encode(&g)), Some(g));
    assert_eq!(decode::<RhoTarget>(b"\xff\xff"), None);
    let mut long = encode(&RhoTarget { rho: 0.5 });
    long.push(0);
    assert_eq!(decode::<RhoTarget>(&long), None, "trailing bytes");
}

#[test]
fn keys_name_their_stage() {
    assert_eq!(parse_rho_key("ctl/rho/demo/infer"), Some(("demo", "infer")));
    assert_eq!(parse_rho_key(&rho_key("a", "b")), Some(("a", "b")));
    for bad in ["ctl/rho/demo", "ctl/rho//x", "ctl/rho/a/b/c", "ctl/epoch"] {
        assert_eq!(parse_rho_key(bad), None, "{bad}");
    }
    assert_eq!(
        stage_of_segment("demo.infer.0b4e-uid"),
        Some(("demo", "infer"))
    );
    assert_eq!(stage_of_segment("demo.infer.r.1"), Some(("demo", "infer")));
    for bad in ["demo", "demo.infer", ".infer.x", "demo..x", "demo.infer."] {
        assert_eq!(stage_of_segment(bad), None, "{bad}");
    }
    assert_eq!(parse_gpu_key(&gpu_key(3)), Some(3));
    assert_eq!(parse_gpu_key("gpu/x"), None);
    assert_eq!(parse_segment_key(&segment_key("a.b.c")), Some("a.b.c"));
    assert_eq!(parse_segment_key("seg/"), None);
}

fn report(replica: &str) -> StageReport {
    StageReport {
        pipeline: "demo".into(),
        stage: "infer".into(),
        replica: replica.into(),
        window_seconds: 1.0,
        ..StageReport::default()
    }
}

#[test]
fn report_keys_round_trip() {
    let r = report("r-1");
    assert_eq!(
        parse_report_key(&report_key(&r)),
        Some(("demo", "infer", "r-1"))
    );
    assert_eq!(
        parse_report_key(&report_key(&report(""))),
        Some(("demo", "infer", ""))
    );
    for bad in ["report/demo", "report//s/r", "report/p/s/r/x", "seg/p/s/r"] {
        assert_eq!(parse_report_key(bad), None, "{bad}");
    }
}

/// The largest report that validates still fits one mesh value.
#[test]
fn a_worst_case_report_fits_a_mesh_value() {
    let mut full = LatencyHistogram::new();
    for index in 0..=BUCKETS {
        // The middle of the bucket: its edges, scaled to seconds, may round across.
        let (lo, hi) = LatencyHistogram::bucket_bounds(index);
        let mid = if hi.is_finite() {
            (lo * hi).sqrt()
        } else {
            lo * 2.0
        };
        full.record_n(mid, 1 << 33);
    }
    let name = "x".repeat(80);
    let mut r = StageReport {
        pipeline: name.clone(),
        stage: name.clone(),
        replica: "y".repeat(MAX_KEY_BYTES - REPORT_PREFIX.len() - 2 - 160),
        window_end_unix_ms: u64::MAX,
        window_seconds: 1e9,
        arrivals: u64::MAX,
        completions: u64::MAX,
        rejections: u64::MAX,
        errors: u64::MAX,
        queue_depth: u64::MAX,
        max_concurrency: u32::MAX,
        busy_fraction: 1.0,
        queue_wait_hist: full.clone(),
        service_hist: full.clone(),
        e2e_hist: full,
        ..StageReport::default()
    };
    assert_eq!(r.validate(), Ok(()));
    let bytes = encode(&r);
    assert!(!bytes.is_empty());
    assert!(bytes.len() <= MAX_REPORT_VALUE_BYTES, "{}", bytes.len());
    assert_eq!(decode::<StageReport>(&bytes), Some(r.clone()));
    r.replica.push('z');
    assert!(r.validate().is_err(), "its key would not fit the mesh");
}
