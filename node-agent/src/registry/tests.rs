use super::*;

fn s(launches: u64, generation: u64, live: usize) -> Sighting {
    Sighting {
        launches,
        tokens: launches * 10,
        generation,
        live_pids: live,
    }
}

#[test]
fn idle_segment_without_live_process_is_collected_after_the_period() {
    let t0 = Instant::now();
    let mut r = Registry::new(Duration::from_secs(10));
    r.observe("a", t0, s(5, 1, 0));
    r.observe("a", t0 + Duration::from_secs(9), s(5, 1, 0));
    assert!(r.garbage(t0 + Duration::from_secs(9)).is_empty());
    assert_eq!(
        r.garbage(t0 + Duration::from_secs(10)),
        vec!["a".to_owned()]
    );
}

#[test]
fn live_process_or_activity_keeps_a_segment() {
    let t0 = Instant::now();
    let mut r = Registry::new(Duration::from_secs(10));
    r.observe("busy", t0, s(1, 1, 0));
    r.observe("held", t0, s(1, 1, 1));
    r.observe("tuned", t0, s(1, 1, 0));
    r.observe("busy", t0 + Duration::from_secs(8), s(2, 1, 0));
    r.observe("held", t0 + Duration::from_secs(20), s(1, 1, 1));
    r.observe("tuned", t0 + Duration::from_secs(8), s(1, 2, 0));
    let g = r.garbage(t0 + Duration::from_secs(17));
    assert!(g.is_empty(), "{g:?}");
    let g = r.garbage(t0 + Duration::from_secs(30));
    assert_eq!(g, vec!["busy".to_owned(), "tuned".to_owned()]);
}

#[test]
fn forgotten_segments_are_not_reported() {
    let t0 = Instant::now();
    let mut r = Registry::new(Duration::ZERO);
    r.observe("a", t0, s(0, 0, 0));
    r.forget("a");
    assert!(r.garbage(t0).is_empty());
    assert_eq!(r.names().count(), 0);
}
