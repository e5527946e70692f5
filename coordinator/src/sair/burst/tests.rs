use super::*;

/// Feeds `rate(t)` every 5 s on `[from, to)`.
fn feed(m: &mut BurstMemory, from: u32, to: u32, rate: impl Fn(f64) -> f64) {
    for k in (from..to).step_by(5) {
        let t = f64::from(k);
        m.observe(t, rate(t));
    }
}

/// 100 req/s with 60 s bursts to 400 req/s every 200 s, from 200 s on.
fn bursts(t: f64) -> f64 {
    if t >= 200.0 && t % 200.0 < 60.0 {
        400.0
    } else {
        100.0
    }
}

#[test]
fn a_burst_seen_once_is_no_recurrence() {
    let mut m = BurstMemory::default();
    feed(&mut m, 0, 380, bursts);
    assert!(!m.running());
    assert!(!m.learned());
    assert_eq!(m.next(380.0), None);
    assert!(!m.likely(380.0, 1000.0));
    assert_eq!(m.floor(380.0, 1000.0, 100.0), 100.0);
}

#[test]
fn a_recurrence_seen_once_is_predicted_at_the_next_period() {
    let mut m = BurstMemory::default();
    // The first burst and its first recurrence, and back to calm.
    feed(&mut m, 0, 480, bursts);
    assert!(m.learned());
    assert!(!m.running());
    let w = m.next(480.0).expect("a recurrence predicts the next burst");
    assert!((w.period_s - 200.0).abs() < 1e-9, "{w:?}");
    assert!((w.onset_s - 600.0).abs() < 1e-9, "{w:?}");
    assert!((w.peak - 400.0).abs() < 1e-9, "{w:?}");
    // Its window: the tolerance (a tenth of the period) around a 60 s burst.
    assert!(w.from_s <= 600.0 && w.from_s >= 570.0, "{w:?}");
    assert!(w.until_s >= 660.0 && w.until_s <= 700.0, "{w:?}");
    // A stage with a 60 s start-up plus a 30 s interval is raised from 90 s + the tolerance
    // before the onset, one with a 40 s lead only later.
    assert!(m.likely(500.0, 90.0));
    assert_eq!(m.floor(500.0, 90.0, 100.0), 400.0);
    assert!(!m.likely(500.0, 40.0));
    assert_eq!(m.floor(500.0, 40.0, 100.0), 100.0);
    // While the predicted burst runs, and past its window, the next one is the one after.
    feed(&mut m, 480, 620, bursts);
    assert!(m.running());
    assert_eq!(m.floor(615.0, 0.0, 120.0), 400.0);
    feed(&mut m, 620, 720, bursts);
    assert!(!m.running());
    let w = m.next(720.0).expect("still periodic");
    assert!((w.onset_s - 800.0).abs() < 1e-9, "{w:?}");
}

#[test]
fn ramps_and_lone_spikes_are_not_bursts() {
    let mut ramp = BurstMemory::default();
    feed(&mut ramp, 0, 900, |t| 10.0 + 0.1 * t);
    assert!(!ramp.running());
    assert!(!ramp.learned());

    let mut spikes = BurstMemory::default();
    // One 5 s sample at 3× every 100 s: noise, not a burst.
    feed(&mut spikes, 0, 900, |t| {
        if t % 100.0 == 50.0 { 300.0 } else { 100.0 }
    });
    assert!(!spikes.running());
    assert!(!spikes.learned());
}

#[test]
fn unlike_gaps_widen_the_window() {
    let mut m = BurstMemory::default();
    // Onsets at 230, 610 and 940: gaps of 380 and 330.
    feed(&mut m, 0, 1100, |t| {
        if (230.0..275.0).contains(&t)
            || (610.0..635.0).contains(&t)
            || (940.0..1030.0).contains(&t)
        {
            300.0
        } else {
            100.0
        }
    });
    let w = m.next(1100.0).expect("two gaps");
    // The median gap (355) and a tolerance of at least its spread (25).
    assert!((w.period_s - 355.0).abs() < 1e-9, "{w:?}");
    assert!(w.onset_s - w.from_s >= 25.0 - 1e-9, "{w:?}");
}

/// The forecast only raises: whatever it has seen, the floor is never below the rate asked.
#[test]
fn the_floor_never_lowers_a_rate() {
    let mut m = BurstMemory::default();
    for k in 0..400u32 {
        let t = f64::from(k) * 5.0;
        let r = if k % 37 < 6 {
            500.0
        } else {
            80.0 + f64::from((k * 7919) % 23)
        };
        m.observe(t, r);
        for rate in [0.0, 10.0, 90.0, 450.0, 1e4] {
            for lead in [0.0, 40.0, 90.0, 600.0] {
                assert!(m.floor(t, lead, rate) >= rate);
            }
        }
    }
    assert!(m.learned());
}

#[test]
fn bad_samples_are_ignored() {
    let mut m = BurstMemory::default();
    m.observe(0.0, f64::NAN);
    m.observe(5.0, -1.0);
    m.observe(f64::INFINITY, 10.0);
    assert_eq!(m.floor(10.0, 90.0, 5.0), 5.0);
    feed(&mut m, 10, 900, bursts);
    assert!(m.learned());
}
