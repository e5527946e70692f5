#![allow(clippy::unwrap_used)]

use super::*;

fn temp_state(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "sair-cuda-abi-{tag}-{}-{}.state",
        std::process::id(),
        now_ns()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn kernels_on_one_device_run_back_to_back() {
    let path = temp_state("serial");
    let t = open_timeline(&path).unwrap();
    assert_eq!(t.magic.load(Acquire), TIMELINE_MAGIC);
    // The device is idle: the first kernel starts at `now`.
    assert_eq!(t.reserve(0, 1_000, 50), (1_000, 1_050));
    // Launched before the first one ends: queued behind it.
    assert_eq!(t.reserve(0, 1_010, 30), (1_050, 1_080));
    // Launched after the device went idle: starts at `now` again.
    assert_eq!(t.reserve(0, 2_000, 10), (2_000, 2_010));
    // Another device has its own line.
    assert_eq!(t.reserve(1, 1_010, 5), (1_010, 1_015));
    let d = &t.devices[0];
    assert_eq!(d.kernels.load(Acquire), 3);
    assert_eq!(d.busy_ns.load(Acquire), 90);
    // Busy before t excludes the part of the queued work that is still ahead of t.
    assert_eq!(d.busy_before(2_005), 85);
    assert_eq!(d.busy_before(3_000), 90);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_second_open_sees_the_same_lines() {
    let path = temp_state("shared");
    let a = open_timeline(&path).unwrap();
    let b = open_timeline(&path).unwrap();
    a.reserve(0, 100, 10);
    assert_eq!(b.devices[0].busy_until.load(Acquire), 110);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn slots_are_per_process_and_device_and_account_kernels() {
    let path = temp_state("slots");
    let t = open_timeline(&path).unwrap();
    let me = std::process::id();
    let s0 = t.slot(me, 0).unwrap();
    let again = t.slot(me, 0).unwrap();
    assert!(std::ptr::eq(s0, again), "one slot per (pid, device)");
    let s1 = t.slot(me, 1).unwrap();
    assert!(!std::ptr::eq(s0, s1));
    t.account(s0, 40, 1_040);
    t.account(s0, 20, 1_060);
    assert_eq!(s0.kernels.load(Acquire), 2);
    assert_eq!(s0.busy_ns.load(Acquire), 60);
    assert_eq!(s0.last_end.load(Acquire), 1_060);
    assert_eq!(s0.busy_before(1_050), 50);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_file_that_is_not_a_timeline_is_refused() {
    let path = temp_state("bad");
    std::fs::write(&path, vec![0xAB; std::mem::size_of::<TimelineLayout>()]).unwrap();
    match open_timeline(&path) {
        Err(TimelineError::BadMagic { found, .. }) => assert_eq!(found, 0xABAB_ABAB_ABAB_ABAB),
        other => panic!("expected BadMagic, got {other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn only_live_pids_are_alive() {
    assert!(pid_alive(std::process::id()));
    assert!(!pid_alive(0));
    assert!(!pid_alive(u32::MAX));
}
