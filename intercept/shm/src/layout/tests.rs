use super::*;

fn params() -> Params {
    Params {
        mode: Mode::Share,
        refill_per_s: 0x0102_0304_0506_0708,
        burst: 0x1000,
        cost_scale: 0.5,
        target_share: 0.25,
    }
}

/// The golden image, written out by hand from the layout table in the module docs. A change to
/// the layout that forgets the docs, the version or `initial_bytes` fails here.
#[test]
fn golden_bytes() {
    let got = initial_bytes(3, &params(), 0x1122_3344_5566_7788);
    let mut want = [0u8; SEGMENT_SIZE];
    let regions: &[(usize, &[u8])] = &[
        (0, b"SAIRSHM\0"),
        (8, &[1, 0]),                                             // major 1
        (10, &[0, 0]),                                            // minor 0
        (16, &[0x00, 0x02, 0, 0, 0, 0, 0, 0]),                    // total size 512
        (64, &[1, 0, 0, 0, 0, 0, 0, 0]),                          // generation 1
        (72, &[2, 0, 0, 0]),                                      // mode share
        (76, &[3, 0, 0, 0]),                                      // gpu 3
        (80, &[8, 7, 6, 5, 4, 3, 2, 1]),                          // refill
        (88, &[0, 0x10, 0, 0, 0, 0, 0, 0]),                       // burst 4096
        (96, &[0, 0, 0, 0, 0, 0, 0xe0, 0x3f]),                    // 0.5f64
        (104, &[0, 0, 0, 0, 0, 0, 0xd0, 0x3f]),                   // 0.25f64
        (128, &[0, 0x10, 0, 0, 0, 0, 0, 0]),                      // credited = burst
        (144, &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]), // last refill
    ];
    for (off, bytes) in regions {
        want[*off..off + bytes.len()].copy_from_slice(bytes);
    }
    assert_eq!(got.to_vec(), want.to_vec());
}

pub(crate) fn fresh() -> SegmentLayout {
    SegmentLayout {
        header: Header {
            magic: AtomicU64::new(MAGIC),
            version_major: VERSION_MAJOR.into(),
            version_minor: VERSION_MINOR.into(),
            header_flags: AtomicU32::new(0),
            total_size: AtomicU64::new(SEGMENT_SIZE as u64),
            reserved: [0; 40],
        },
        control: Control {
            generation: AtomicU64::new(1),
            mode: AtomicU32::new(0),
            gpu_index: AtomicU32::new(0),
            refill_per_s: AtomicU64::new(0),
            burst: AtomicU64::new(0),
            cost_scale_bits: AtomicU64::new(0),
            target_share_bits: AtomicU64::new(0),
            retired: AtomicU32::new(0),
            reserved: [0; 12],
        },
        bucket: BucketState {
            credited: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            last_refill_ns: AtomicU64::new(0),
            reserved: AtomicI64::new(0),
        },
        counters: CounterBlock {
            launches: AtomicU64::new(0),
            throttled_launches: AtomicU64::new(0),
            throttled_ns: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
        },
        pids: std::array::from_fn(|_| AtomicU32::new(0)),
        tail_reserved: [0; 64],
    }
}

#[test]
fn set_params_bumps_generation() {
    let l = fresh();
    l.set_params(&params());
    assert_eq!(l.control.generation.load(Relaxed), 2);
    assert_eq!(l.params(), params());
}

#[test]
fn pid_table() {
    let l = fresh();
    assert!(l.attach_pid(10));
    assert!(l.attach_pid(10));
    assert!(l.attach_pid(11));
    assert_eq!(l.attached_pids(), vec![10, 11]);
    l.detach_pid(10);
    assert_eq!(l.attached_pids(), vec![11]);
    for p in 100..100 + PID_SLOTS as u32 - 1 {
        assert!(l.attach_pid(p));
    }
    assert!(!l.attach_pid(5000), "table full");
}

#[test]
fn mode_names_round_trip() {
    for m in [Mode::Off, Mode::Cap, Mode::Share] {
        assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        assert_eq!(Mode::from_raw(m as u32), Some(m));
    }
    assert_eq!(Mode::from_raw(7), None);
    assert!("fast".parse::<Mode>().is_err());
}

#[test]
fn mode_change_forgives_debt() {
    let l = fresh();
    l.set_params(&params());
    l.bucket.consumed.store(500, Relaxed);
    l.bucket.credited.store(100, Relaxed);
    l.set_params(&Params {
        mode: Mode::Cap,
        ..params()
    });
    assert_eq!(l.bucket.credited.load(Relaxed), 500);
    l.bucket.consumed.store(900, Relaxed);
    l.set_params(&Params {
        mode: Mode::Cap,
        refill_per_s: 5,
        ..params()
    });
    assert_eq!(l.bucket.credited.load(Relaxed), 500, "same mode: debt kept");
}

#[test]
fn mode_change_forgives_debt_across_wrap() {
    let l = fresh();
    l.bucket.credited.store(u64::MAX - 5, Relaxed);
    l.bucket.consumed.store(10, Relaxed); // 16 tokens of debt, across the wrap
    l.set_params(&Params {
        mode: Mode::Cap, // fresh() is Off: a mode change
        ..params()
    });
    assert_eq!(l.bucket.credited.load(Relaxed), 10);
}
