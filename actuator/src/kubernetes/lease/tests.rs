use std::time::{Duration, Instant, SystemTime};

use super::*;

const LEASE: Duration = Duration::from_secs(15);

fn core(identity: &str) -> LeaseCore {
    LeaseCore::new(LeaseConfig::try_new(identity, LEASE).expect("valid config"))
}

fn held_by(holder: &str, rv: &str, transitions: u32) -> LeaseRecord {
    LeaseRecord {
        holder: Some(holder.into()),
        duration_seconds: Some(15),
        acquire_time: Some(SystemTime::UNIX_EPOCH),
        renew_time: Some(SystemTime::UNIX_EPOCH),
        transitions,
        resource_version: Some(rv.into()),
    }
}

/// What the API server would answer to a write of `plan`'s record: the same, new version.
fn accepted(plan: Plan, rv: &str) -> LeaseRecord {
    match plan {
        Plan::Create(r) | Plan::Update(r) => LeaseRecord {
            resource_version: Some(rv.into()),
            ..r
        },
        Plan::Follow { holder } => panic!("expected a write, got Follow {{ holder: {holder} }}"),
    }
}

#[test]
fn config_is_checked() {
    assert_eq!(
        LeaseConfig::try_new("", LEASE),
        Err(LeaseConfigError::EmptyIdentity)
    );
    assert!(matches!(
        LeaseConfig::try_new("x".repeat(254), LEASE),
        Err(LeaseConfigError::IdentityTooLong { len: 254 })
    ));
    for bad in [
        Duration::from_secs(2),
        Duration::from_secs(3601),
        Duration::from_millis(15_500),
    ] {
        assert!(
            matches!(
                LeaseConfig::try_new("a", bad),
                Err(LeaseConfigError::Duration { .. })
            ),
            "{bad:?} accepted"
        );
    }
    let c = LeaseConfig::try_new("a", LEASE).expect("valid");
    assert_eq!(c.renew_every(), Duration::from_secs(5));
    assert_eq!(c.renew_deadline(), Duration::from_secs(10));
}

#[test]
fn no_lease_is_created_with_term_zero_and_then_renewed() {
    let t0 = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    let mut a = core("coord-a");
    let plan = a.on_read(t0, wall, None);
    let Plan::Create(rec) = &plan else {
        panic!("expected Create, got {plan:?}")
    };
    assert_eq!(rec.holder.as_deref(), Some("coord-a"));
    assert_eq!(rec.duration_seconds, Some(15));
    assert_eq!(rec.transitions, 0);
    assert_eq!(rec.resource_version, None);
    assert_eq!(rec.renew_time, Some(wall));
    assert!(
        !a.leadership().is_leader_at(t0),
        "not leading before the write is accepted"
    );

    a.on_written(t0, accepted(plan, "1"));
    let l = a.leadership();
    assert!(l.is_leader_at(t0));
    assert_eq!(l.term, 0);
    assert_eq!(l.holder.as_deref(), Some("coord-a"));
    assert_eq!(a.next_round(t0), t0 + Duration::from_secs(5));

    // The renewal carries the version read, keeps the term and the acquire time.
    let t1 = t0 + Duration::from_secs(5);
    let wall1 = wall + Duration::from_secs(5);
    let plan = a.on_read(t1, wall1, Some(held_by("coord-a", "1", 0)));
    let Plan::Update(rec) = &plan else {
        panic!("expected Update, got {plan:?}")
    };
    assert_eq!(rec.resource_version.as_deref(), Some("1"));
    assert_eq!(rec.transitions, 0);
    assert_eq!(rec.renew_time, Some(wall1));
    assert_eq!(rec.acquire_time, Some(SystemTime::UNIX_EPOCH));
    a.on_written(t1, accepted(plan, "2"));
    assert!(a.leadership().is_leader_at(t1 + Duration::from_secs(9)));
    assert!(!a.leadership().is_leader_at(t1 + Duration::from_secs(10)));
}

#[test]
fn a_live_holder_is_followed_until_its_record_stops_changing_for_a_lease() {
    let t0 = Instant::now();
    let wall = SystemTime::UNIX_EPOCH;
    let mut b = core("coord-b");
    assert_eq!(
        b.on_read(t0, wall, Some(held_by("coord-a", "7", 3))),
        Plan::Follow {
            holder: "coord-a".into()
        }
    );
    let l = b.leadership();
    assert!(!l.is_leader_at(t0));
    assert_eq!((l.holder.as_deref(), l.term), (Some("coord-a"), 3));
    assert_eq!(b.next_round(t0), t0 + Duration::from_secs(5));

    // The holder renews at 10 s: the clock starts again from then (our clock, not renewTime).
    let t10 = t0 + Duration::from_secs(10);
    assert!(matches!(
        b.on_read(t10, wall, Some(held_by("coord-a", "8", 3))),
        Plan::Follow { .. }
    ));
    // 24 s: unchanged for 14 s, still live.
    let t24 = t0 + Duration::from_secs(24);
    assert!(matches!(
        b.on_read(t24, wall, Some(held_by("coord-a", "8", 3))),
        Plan::Follow { .. }
    ));
    // The next look is when that lease runs out (25 s), not a full third later.
    assert_eq!(b.next_round(t24), t0 + Duration::from_secs(25));
    // 25 s: a whole lease without change: take over, one more transition, version as read.
    let t25 = t0 + Duration::from_secs(25);
    let plan = b.on_read(t25, wall, Some(held_by("coord-a", "8", 3)));
    let Plan::Update(rec) = &plan else {
        panic!("expected a take-over, got {plan:?}")
    };
    assert_eq!(rec.holder.as_deref(), Some("coord-b"));
    assert_eq!(rec.transitions, 4);
    assert_eq!(rec.resource_version.as_deref(), Some("8"));
    b.on_written(t25, accepted(plan, "9"));
    let l = b.leadership();
    assert!(l.is_leader_at(t25));
    assert_eq!(l.term, 4);
}

#[test]
fn a_released_lease_is_taken_at_once() {
    let t0 = Instant::now();
    let mut b = core("coord-b");
    let released = LeaseRecord {
        holder: Some(String::new()),
        ..held_by("x", "5", 2)
    };
    let plan = b.on_read(t0, SystemTime::UNIX_EPOCH, Some(released));
    assert!(
        matches!(&plan, Plan::Update(r) if r.transitions == 3 && r.holder.as_deref() == Some("coord-b")),
        "{plan:?}"
    );
}

#[test]
fn a_conflict_steps_down_at_once() {
    let t0 = Instant::now();
    let mut a = core("coord-a");
    let plan = a.on_read(t0, SystemTime::UNIX_EPOCH, None);
    a.on_written(t0, accepted(plan, "1"));
    assert!(a.leadership().is_leader_at(t0));
    let t5 = t0 + Duration::from_secs(5);
    let _renew = a.on_read(t5, SystemTime::UNIX_EPOCH, Some(held_by("coord-a", "1", 0)));
    a.on_conflict();
    assert!(!a.leadership().is_leader_at(t5));
    // The next read shows the winner: follow it.
    assert_eq!(
        a.on_read(t5, SystemTime::UNIX_EPOCH, Some(held_by("coord-b", "2", 1))),
        Plan::Follow {
            holder: "coord-b".into()
        }
    );
    assert_eq!(a.leadership().term, 1);
}

#[test]
fn a_leader_that_cannot_renew_stops_acting_before_anyone_may_take_over() {
    let t0 = Instant::now();
    let mut a = core("coord-a");
    let plan = a.on_read(t0, SystemTime::UNIX_EPOCH, None);
    a.on_written(t0, accepted(plan, "1"));
    // Every later call fails (API server unreachable).
    a.on_error();
    a.on_error();
    let deadline = t0 + Duration::from_secs(10);
    assert!(
        a.leadership()
            .is_leader_at(deadline - Duration::from_millis(1))
    );
    assert!(!a.leadership().is_leader_at(deadline));

    // Meanwhile a follower that saw the record at t0 may only take over at t0 + 15 s: a third of
    // a lease after the old leader stopped acting.
    let mut b = core("coord-b");
    assert!(matches!(
        b.on_read(t0, SystemTime::UNIX_EPOCH, Some(held_by("coord-a", "1", 0))),
        Plan::Follow { .. }
    ));
    assert!(matches!(
        b.on_read(
            t0 + Duration::from_secs(14),
            SystemTime::UNIX_EPOCH,
            Some(held_by("coord-a", "1", 0))
        ),
        Plan::Follow { .. }
    ));
    assert!(matches!(
        b.on_read(
            t0 + Duration::from_secs(15),
            SystemTime::UNIX_EPOCH,
            Some(held_by("coord-a", "1", 0))
        ),
        Plan::Update(_)
    ));
}

#[test]
fn a_leader_that_sees_another_holder_steps_down() {
    let t0 = Instant::now();
    let mut a = core("coord-a");
    let plan = a.on_read(t0, SystemTime::UNIX_EPOCH, None);
    a.on_written(t0, accepted(plan, "1"));
    let t1 = t0 + Duration::from_secs(1);
    assert!(matches!(
        a.on_read(t1, SystemTime::UNIX_EPOCH, Some(held_by("coord-b", "2", 1))),
        Plan::Follow { .. }
    ));
    assert!(!a.leadership().is_leader_at(t1));
}

#[test]
fn a_lease_deleted_under_the_leader_is_created_again() {
    let t0 = Instant::now();
    let mut a = core("coord-a");
    let plan = a.on_read(t0, SystemTime::UNIX_EPOCH, None);
    a.on_written(t0, accepted(plan, "1"));
    let t5 = t0 + Duration::from_secs(5);
    assert!(matches!(
        a.on_read(t5, SystemTime::UNIX_EPOCH, None),
        Plan::Create(_)
    ));
    assert!(
        !a.leadership().is_leader_at(t5),
        "not leading until the new Lease is accepted"
    );
}

#[test]
fn release_gives_up_only_a_lease_it_holds() {
    let t0 = Instant::now();
    let mut b = core("coord-b");
    let _ = b.on_read(t0, SystemTime::UNIX_EPOCH, Some(held_by("coord-a", "3", 1)));
    assert_eq!(b.release(SystemTime::UNIX_EPOCH), None);

    let mut a = core("coord-a");
    let plan = a.on_read(t0, SystemTime::UNIX_EPOCH, None);
    a.on_written(t0, accepted(plan, "1"));
    let rec = a.release(SystemTime::UNIX_EPOCH).expect("held");
    assert_eq!(rec.holder, None);
    assert_eq!(rec.duration_seconds, Some(1));
    assert_eq!(rec.transitions, 0);
    assert_eq!(rec.resource_version.as_deref(), Some("1"));
    assert!(!a.leadership().is_leader_at(t0));
}

#[test]
fn a_holder_without_a_duration_gets_ours() {
    let t0 = Instant::now();
    let mut b = core("coord-b");
    let rec = LeaseRecord {
        duration_seconds: None,
        ..held_by("coord-a", "1", 0)
    };
    assert!(matches!(
        b.on_read(t0, SystemTime::UNIX_EPOCH, Some(rec.clone())),
        Plan::Follow { .. }
    ));
    assert!(matches!(
        b.on_read(t0 + LEASE, SystemTime::UNIX_EPOCH, Some(rec)),
        Plan::Update(_)
    ));
}
