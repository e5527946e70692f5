use super::*;
use sair_shm::{Params, Segment};
use std::cell::Cell;

fn segment(tag: &str, params: Params) -> (Segment, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "sair-limits-{tag}-{}-{}",
        std::process::id(),
        sair_shm::clock::monotonic_ns()
    ));
    let path = dir.join("s.seg");
    (Segment::create(&path, 0, &params).unwrap(), dir)
}

#[test]
fn cost_is_units_times_scale_at_least_one() {
    assert_eq!(cost_of(1000, 1.0), 1000);
    assert_eq!(cost_of(1000, 0.5), 500);
    assert_eq!(cost_of(1, 0.001), 1);
    assert_eq!(cost_of(u64::MAX, 4.0), u64::MAX);
}

#[test]
fn off_counts_and_passes() {
    let (seg, dir) = segment(
        "off",
        Params {
            mode: Mode::Off,
            ..Params::default()
        },
    );
    let now = || 0;
    let v = grant(seg.layout(), 1 << 40, &now, &|_| panic!("must not wait"));
    assert_eq!(v, Verdict::Unlimited);
    assert_eq!(seg.counters().launches, 1);
    assert_eq!(
        seg.counters().tokens_consumed,
        1 << 40,
        "tokens counted for calibration"
    );
    // Switching to cap forgives what mode off accumulated: the next launch is granted.
    seg.set_params(&Params::default()).unwrap();
    let now = || seg.layout().bucket.last_refill_ns.load(Relaxed) + 1_000_000_000;
    assert_eq!(
        grant(seg.layout(), 10, &now, &|_| panic!("must not wait")),
        Verdict::Granted
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cap_throttles_on_a_virtual_clock() {
    let (seg, dir) = segment(
        "cap",
        Params {
            mode: Mode::Cap,
            refill_per_s: 1_000_000,
            burst: 1_000,
            cost_scale: 1.0,
            target_share: 0.5,
        },
    );
    let l = seg.layout();
    let t0 = l.bucket.last_refill_ns.load(Relaxed);
    let clock = Cell::new(t0);
    let now = || clock.get();
    let pause = |ns: u64| clock.set(clock.get() + ns);
    assert_eq!(grant(l, 1_000, &now, &pause), Verdict::Granted);
    // 500 more tokens at 1e6/s: 500 µs of (virtual) waiting, in steps of at most 200 µs.
    let v = grant(l, 500, &now, &pause);
    assert_eq!(v, Verdict::Throttled { waited_ns: 500_000 });
    let c = seg.counters();
    assert_eq!(
        (c.launches, c.throttled_launches, c.throttled_ns),
        (2, 1, 500_000)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn lifting_the_limit_releases_a_waiting_launch() {
    let (seg, dir) = segment(
        "lift",
        Params {
            refill_per_s: 1,
            burst: 1,
            ..Params::default()
        },
    );
    let l = seg.layout();
    let t0 = l.bucket.last_refill_ns.load(Relaxed);
    let clock = Cell::new(t0);
    let rounds = Cell::new(0);
    let now = || clock.get();
    let pause = |ns: u64| {
        assert!(ns <= MAX_SLEEP_NS);
        clock.set(clock.get() + ns);
        rounds.set(rounds.get() + 1);
        if rounds.get() == 3 {
            seg.set_params(&Params {
                mode: Mode::Off,
                ..Params::default()
            })
            .unwrap();
        }
    };
    let v = grant(l, 1_000_000, &now, &pause);
    assert_eq!(v, Verdict::Throttled { waited_ns: 600_000 });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unknown_mode_and_zero_rate_fail_open() {
    let (seg, dir) = segment("bad", Params::default());
    let l = seg.layout();
    l.control.refill_per_s.store(0, Relaxed);
    assert_eq!(
        grant(l, 1, &|| 0, &|_| ()),
        Verdict::Bypass(Bypass::ZeroRate)
    );
    l.control.mode.store(77, Relaxed);
    assert_eq!(
        grant(l, 1, &|| 0, &|_| ()),
        Verdict::Bypass(Bypass::UnknownMode)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bypass_codes_round_trip() {
    for v in 1..=10u8 {
        assert_eq!(Bypass::from_u8(v).map(|b| b as u8), Some(v));
    }
    assert_eq!(Bypass::from_u8(0), None);
}

/// Counts allocations made by the current thread (test binary only).
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        pub static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    // SAFETY: forwards every call to the system allocator unchanged; the counter is a
    // const-initialised thread-local Cell without destructor, so touching it never allocates.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCS.with(|a| a.set(a.get() + 1));
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as our caller's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}

#[test]
fn launch_path_does_not_allocate() {
    let (seg, dir) = segment(
        "alloc",
        Params {
            refill_per_s: 1_000_000,
            burst: 100,
            ..Params::default()
        },
    );
    let l = seg.layout();
    let clock = Cell::new(l.bucket.last_refill_ns.load(Relaxed));
    let now = || clock.get();
    let pause = |ns: u64| clock.set(clock.get() + ns);
    let before = counting::ALLOCS.with(|a| a.get());
    let mut throttled = 0;
    for i in 0..10_000u64 {
        if let Verdict::Throttled { .. } = grant(l, 1 + i % 300, &now, &pause) {
            throttled += 1;
        }
    }
    let after = counting::ALLOCS.with(|a| a.get());
    assert!(throttled > 1000, "the loop exercised the waiting path");
    assert_eq!(after - before, 0, "allocations on the launch path");
    let probe = std::hint::black_box(vec![0u8; 8]);
    assert!(
        counting::ALLOCS.with(|a| a.get()) > after,
        "the counter sees allocations"
    );
    drop(probe);
    std::fs::remove_dir_all(dir).unwrap();
}
