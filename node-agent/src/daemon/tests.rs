//! The control loop over a real shm dir, with a scripted utilisation source instead of NVML.

use super::*;
use crate::AgentError;
use crate::target::{ChannelSource, TargetUpdate};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reports `share` for every pid asked about (this test process), and the device as busy.
#[derive(Debug)]
struct Scripted {
    share: Arc<AtomicU64>,
}

impl Utilization for Scripted {
    fn per_process(&mut self, _gpu: u32, _since: u64) -> Result<HashMap<u32, f64>, AgentError> {
        let s = f64::from_bits(self.share.load(Ordering::Relaxed));
        Ok(HashMap::from([(std::process::id(), s)]))
    }
    fn device(&mut self, _gpu: u32) -> Result<f64, AgentError> {
        Ok(f64::from_bits(self.share.load(Ordering::Relaxed)))
    }
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sair-agent-unit-{tag}-{}-{}",
        std::process::id(),
        sair_shm::clock::monotonic_ns()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(shm_dir: PathBuf) -> DaemonConfig {
    DaemonConfig {
        shm_dir,
        node: "unit".into(),
        period: Duration::from_millis(100),
        gc_idle: Duration::from_secs(600),
        burst_ns: 5_000_000,
        share_headroom: 0.05,
        controller: ControllerConfig::default(),
        max_report_keys: 16,
    }
}

#[test]
fn remote_targets_go_through_the_commitment_check() {
    let d = dir("remote");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ctl = ControlLoop::new(
        config(d.clone()),
        None,
        Box::new(ChannelSource(rx)),
        AgentMetrics::new("unit"),
    );
    let update = |segment: &str, rate| TargetUpdate {
        segment: segment.into(),
        gpu: Some(0),
        rate,
        mode: Mode::Cap,
    };
    tx.send(update("a", 0.7)).unwrap();
    tx.send(update("b", 0.5)).unwrap();
    tx.send(update("c", 0.3)).unwrap();
    ctl.tick(Instant::now());
    assert_eq!(ctl.segment_names(), vec!["a".to_owned(), "c".to_owned()]);
    let c = sair_shm::Segment::open(&d.join("c.seg")).unwrap();
    assert_eq!(c.params().target_share, 0.3);
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn loop_calibrates_from_measurements_and_persists_the_estimate() {
    let d = dir("loop");
    crate::ops::set_rate(&d, "s", 0.5, None, Mode::Cap, 5_000_000).unwrap();
    let seg = sair_shm::Segment::open(&d.join("s.seg")).unwrap();
    seg.layout().attach_pid(std::process::id());
    let share = Arc::new(AtomicU64::new(0.25f64.to_bits()));
    let mut ctl = ControlLoop::new(
        config(d.clone()),
        Some(Box::new(Scripted {
            share: share.clone(),
        })),
        Box::new(crate::target::LocalOnly),
        AgentMetrics::new("unit"),
    );
    let t0 = Instant::now();
    ctl.tick(t0);
    let rate0 = seg.params().refill_per_s;
    // The process consumed a full window at the configured rate and the meter says 25 %:
    // one token costs 0.25 × 100 ms / (rate × 100 ms) of device time.
    let tokens = rate0 / 10;
    seg.layout()
        .bucket
        .consumed
        .fetch_add(tokens, Ordering::Relaxed);
    seg.layout()
        .counters
        .throttled_launches
        .fetch_add(5, Ordering::Relaxed);
    ctl.tick(t0 + Duration::from_millis(100));
    let rate1 = seg.params().refill_per_s;
    let expect = rate0 as f64 * 0.5 / 0.25;
    assert!(
        (rate1 as f64 / expect - 1.0).abs() < 0.01,
        "{rate0} -> {rate1}, expected {expect}"
    );
    assert_eq!(seg.params().target_share, 0.5, "target untouched");
    ctl.flush_state();
    let state = crate::segments::read_state(&d).unwrap();
    let npt = state.segments["s"].ns_per_token.unwrap();
    assert!((npt - 0.25 * 1e8 / tokens as f64).abs() / npt < 0.01);
    assert_eq!(state.segments["s"].measured, Some(0.25));
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_set_rate_during_the_window_is_not_overwritten() {
    let d = dir("race");
    crate::ops::set_rate(&d, "s", 0.2, None, Mode::Cap, 5_000_000).unwrap();
    let seg = sair_shm::Segment::open(&d.join("s.seg")).unwrap();
    seg.layout().attach_pid(std::process::id());
    let share = Arc::new(AtomicU64::new(0.1f64.to_bits()));
    let mut ctl = ControlLoop::new(
        config(d.clone()),
        Some(Box::new(Scripted { share })),
        Box::new(crate::target::LocalOnly),
        AgentMetrics::new("unit"),
    );
    let t0 = Instant::now();
    ctl.tick(t0);
    seg.layout()
        .bucket
        .consumed
        .fetch_add(1000, Ordering::Relaxed);
    let out = crate::ops::set_rate(&d, "s", 0.4, None, Mode::Cap, 5_000_000).unwrap();
    ctl.tick(t0 + Duration::from_millis(100));
    assert_eq!(seg.params().refill_per_s, out.refill_per_s);
    assert_eq!(seg.params().target_share, 0.4);
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn share_mode_takes_idle_time_and_gives_it_back() {
    // Alone on the GPU, a share segment may use what nobody else reserves.
    assert!((share_target(0.3, 0.0, 0.0, 0.05) - 0.95).abs() < 1e-9);
    // An active cap segment at 0.5 gets its guarantee back.
    assert!((share_target(0.3, 0.5, 0.0, 0.05) - 0.45).abs() < 1e-9);
    // Never below its own ρ, never above 1.
    assert_eq!(share_target(0.3, 0.9, 0.2, 0.05), 0.3);
    assert_eq!(share_target(1.0, 0.0, 0.0, 0.0), 1.0);
}

#[test]
fn off_segments_are_measured_so_a_later_cap_starts_calibrated() {
    let d = dir("off");
    crate::ops::set_rate(&d, "o", 1.0, None, Mode::Off, 5_000_000).unwrap();
    let seg = sair_shm::Segment::open(&d.join("o.seg")).unwrap();
    seg.layout().attach_pid(std::process::id());
    let share = Arc::new(AtomicU64::new(0.6f64.to_bits()));
    let mut ctl = ControlLoop::new(
        config(d.clone()),
        Some(Box::new(Scripted { share })),
        Box::new(crate::target::LocalOnly),
        AgentMetrics::new("unit"),
    );
    let t0 = Instant::now();
    ctl.tick(t0);
    let before = seg.params();
    // 0.6 of 100 ms for 3 million tokens: 20 ns per token.
    seg.layout()
        .bucket
        .consumed
        .fetch_add(3_000_000, Ordering::Relaxed);
    ctl.tick(t0 + Duration::from_millis(100));
    assert_eq!(seg.params(), before, "an off segment is not controlled");
    ctl.flush_state();
    let out = crate::ops::set_rate(&d, "o", 0.3, None, Mode::Cap, 5_000_000).unwrap();
    assert_eq!(out.refill_per_s, 15_000_000, "0.3 × 1e9 / 20 ns");
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

fn plain_loop(d: &std::path::Path) -> ControlLoop {
    let share = Arc::new(AtomicU64::new(0.0f64.to_bits()));
    ControlLoop::new(
        config(d.to_owned()),
        Some(Box::new(Scripted { share })),
        Box::new(crate::target::LocalOnly),
        AgentMetrics::new("unit"),
    )
}

/// Issue 14: `retired` written into a healthy segment let its process run uncapped; the agent
/// re-adopted the file every period and never repaired it.
#[test]
fn a_retired_flag_in_a_healthy_segment_is_repaired() {
    let d = dir("retired");
    crate::ops::set_rate(&d, "s", 0.3, None, Mode::Cap, 5_000_000).unwrap();
    let seg = sair_shm::Segment::open(&d.join("s.seg")).unwrap();
    let mut ctl = plain_loop(&d);
    let t0 = Instant::now();
    ctl.tick(t0);
    let before = seg.params();
    seg.layout().control.retired.store(1, Ordering::Relaxed);
    ctl.tick(t0 + Duration::from_millis(100));
    assert!(!seg.is_retired(), "retired flag left in place");
    assert_eq!(seg.params(), before);
    let generation = seg.generation();
    ctl.tick(t0 + Duration::from_millis(200));
    assert_eq!(
        seg.generation(),
        generation,
        "repaired again without a fault"
    );
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 14: a randomised control block went undetected (GPU 3532202184, refill 1.4e19).
#[test]
fn a_randomised_control_block_is_restored() {
    let d = dir("random");
    crate::ops::set_rate(&d, "s", 0.3, Some(0), Mode::Cap, 5_000_000).unwrap();
    let seg = sair_shm::Segment::open(&d.join("s.seg")).unwrap();
    let mut ctl = plain_loop(&d);
    let t0 = Instant::now();
    ctl.tick(t0);
    let before = seg.params();
    let c = &seg.layout().control;
    c.generation.store(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    c.mode.store(0xdead_beef, Ordering::Relaxed);
    c.gpu_index.store(3_532_202_184, Ordering::Relaxed);
    c.refill_per_s
        .store(14_000_000_000_000_000_000, Ordering::Relaxed);
    c.burst.store(0, Ordering::Relaxed);
    c.cost_scale_bits
        .store(0x7ff8_dead_0000_0001, Ordering::Relaxed);
    c.target_share_bits
        .store(0x4a3b_2c1d_0e0f_1011, Ordering::Relaxed);
    c.retired.store(0x55aa_55aa, Ordering::Relaxed);
    for i in 1..=3 {
        ctl.tick(t0 + Duration::from_millis(100 * i));
    }
    assert!(
        crate::integrity::check(&seg.control_snapshot(), None).is_empty(),
        "{:?}",
        seg.control_snapshot()
    );
    assert_eq!(seg.params(), before);
    assert_eq!(seg.gpu(), 0);
    ctl.flush_state();
    let state = crate::segments::read_state(&d).unwrap();
    assert_eq!(state.segments["s"].gpu, 0, "garbage GPU index persisted");
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A valid-looking change that did not bump the generation is not the agent's nor a
/// `set-rate`'s (both bump it): it is undone.
#[test]
fn an_unannounced_change_is_undone_and_an_announced_one_kept() {
    let d = dir("unannounced");
    crate::ops::set_rate(&d, "s", 0.3, None, Mode::Cap, 5_000_000).unwrap();
    let seg = sair_shm::Segment::open(&d.join("s.seg")).unwrap();
    let mut ctl = plain_loop(&d);
    let t0 = Instant::now();
    ctl.tick(t0);
    seg.layout()
        .control
        .target_share_bits
        .store(0.9f64.to_bits(), Ordering::Relaxed);
    ctl.tick(t0 + Duration::from_millis(100));
    assert_eq!(seg.params().target_share, 0.3);
    crate::ops::set_rate(&d, "s", 0.6, None, Mode::Cap, 5_000_000).unwrap();
    ctl.tick(t0 + Duration::from_millis(200));
    assert_eq!(seg.params().target_share, 0.6);
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 14: `run` on a directory it cannot use stayed green.
#[test]
fn readiness_says_why_the_dir_or_nvml_is_unusable() {
    let d = dir("ready");
    let mut ctl = plain_loop(&d);
    let t0 = Instant::now();
    ctl.tick(t0);
    assert_eq!(ctl.readiness(), Ok(()));
    ctl.flush_state();
    std::fs::remove_dir_all(&d).unwrap();
    std::fs::write(&d, b"not a directory").unwrap();
    ctl.tick(t0 + Duration::from_millis(100));
    let why = ctl.readiness().unwrap_err();
    assert!(why.contains("shm dir"), "{why}");
    std::fs::remove_file(&d).unwrap();
    std::fs::create_dir(&d).unwrap();
    ctl.tick(t0 + Duration::from_millis(200));
    // The failed write of the last period is reported now; this period's write clears it.
    ctl.flush_state();
    assert_eq!(ctl.readiness(), Ok(()));
    let mut blind = ControlLoop::new(
        config(d.clone()),
        None,
        Box::new(crate::target::LocalOnly),
        AgentMetrics::new("unit"),
    );
    blind.tick(t0);
    let why = blind.readiness().unwrap_err();
    assert!(why.contains("NVML"), "{why}");
    drop((ctl, blind));
    std::fs::remove_dir_all(&d).unwrap();
}

/// A valid block with a new generation is accepted like a `set-rate` only if `set-rate` would
/// have accepted it: a tenant raising its own share past Σρ = 1 through the file is undone.
#[test]
fn a_written_share_that_over_commits_is_undone() {
    let d = dir("overcommit");
    crate::ops::set_rate(&d, "a", 0.5, Some(0), Mode::Cap, 5_000_000).unwrap();
    crate::ops::set_rate(&d, "b", 0.5, Some(0), Mode::Cap, 5_000_000).unwrap();
    let a = sair_shm::Segment::open(&d.join("a.seg")).unwrap();
    let mut ctl = plain_loop(&d);
    let t0 = Instant::now();
    ctl.tick(t0);
    let before = a.params();
    a.layout().set_params(&sair_shm::Params {
        target_share: 0.9,
        refill_per_s: before.refill_per_s / 5 * 9,
        ..before
    });
    ctl.tick(t0 + Duration::from_millis(100));
    assert_eq!(a.params(), before);
    // Lowering b first makes room: then the same change is accepted.
    crate::ops::set_rate(&d, "b", 0.1, None, Mode::Cap, 5_000_000).unwrap();
    crate::ops::set_rate(&d, "a", 0.9, None, Mode::Cap, 5_000_000).unwrap();
    ctl.tick(t0 + Duration::from_millis(200));
    assert_eq!(a.params().target_share, 0.9);
    drop(ctl);
    std::fs::remove_dir_all(&d).unwrap();
}
