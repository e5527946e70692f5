use super::*;
use sair_cuda_abi::timeline::open_timeline;

/// A fresh time line; its file is unlinked at once (the mapping stays valid), so no test leaves
/// a file behind.
fn timeline(tag: &str) -> &'static TimelineLayout {
    let p = std::env::temp_dir().join(format!(
        "sair-nvml-model-{tag}-{}.state",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    let tl = open_timeline(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    tl
}

#[test]
fn process_share_over_a_window() {
    let tl = timeline("proc");
    let slot_a = tl.slot(111, 0).unwrap();
    let slot_b = tl.slot(222, 0).unwrap();
    slot_a
        .first_ns
        .store(0, std::sync::atomic::Ordering::Relaxed);
    slot_b
        .first_ns
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let mut m = Model::default();
    // t = 1 s: baseline snapshot, nothing ran yet.
    assert!(
        m.process_util(tl, 1, 0, 0, 1_000_000_000)
            .iter()
            .all(|s| s.sm_util == 0)
    );
    // Between 1 s and 2 s, a ran 300 ms and b 600 ms.
    let (_, e) = tl.reserve(0, 1_000_000_000, 300_000_000);
    tl.account(slot_a, 300_000_000, e);
    let (_, e) = tl.reserve(0, e, 600_000_000);
    tl.account(slot_b, 600_000_000, e);
    let samples = m.process_util(tl, 1, 0, 1_000_000_000, 2_000_000_000);
    let util = |pid| samples.iter().find(|s| s.pid == pid).map(|s| s.sm_util);
    assert_eq!(util(111), Some(30));
    assert_eq!(util(222), Some(60));
    assert_eq!(m.device_util(tl, 1, 0, 2_000_000_000), 90);
}

#[test]
fn pending_work_is_not_counted_yet() {
    let tl = timeline("pending");
    let s = tl.slot(333, 0).unwrap();
    let (_, e) = tl.reserve(0, 0, 1_000);
    tl.account(s, 1_000, e);
    assert_eq!(s.busy_before(500), 500);
    assert_eq!(tl.devices[0].busy_before(2_000), 1_000);
}
