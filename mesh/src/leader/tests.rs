use super::*;

fn e(term: u64, leader: &str) -> Epoch {
    Epoch {
        term,
        leader: leader.into(),
    }
}

#[test]
fn the_lowest_live_coordinator_leads() {
    assert_eq!(leader_of(["c2", "c1", "c3"]), Some("c1"));
    assert_eq!(leader_of(Vec::<&str>::new()), None);
}

#[test]
fn a_leader_claims_a_term_above_everything_it_saw() {
    assert_eq!(next_claim("c1", None, &[]), Some(e(1, "c1")));
    // Its own claim is the newest: nothing to do.
    assert_eq!(next_claim("c1", Some(&e(3, "c1")), &[e(3, "c1")]), None);
    // A rival claimed a higher term during a partition: go above it.
    assert_eq!(
        next_claim("c1", Some(&e(1, "c1")), &[e(1, "c1"), e(2, "c2")]),
        Some(e(3, "c1"))
    );
    // Taking over from another leader.
    assert_eq!(next_claim("c2", None, &[e(5, "c1")]), Some(e(6, "c2")));
}

#[test]
fn the_fence_refuses_stale_epochs_and_non_leaders() {
    let mut f = Fence::default();
    assert_eq!(f.admit(&e(1, "c1"), Some("c1")), Admission::Admitted);
    assert_eq!(f.admit(&e(2, "c2"), Some("c2")), Admission::Admitted);
    // c1 is back and leads again, but an old decision of it is stale.
    assert!(matches!(
        f.admit(&e(1, "c1"), Some("c1")),
        Admission::StaleEpoch { .. }
    ));
    // Decisions from a member that does not lead are refused whatever their term.
    assert!(matches!(
        f.admit(&e(9, "c2"), Some("c1")),
        Admission::NotLeader { .. }
    ));
    f.observe(&e(3, "c1"), Some("c1"));
    assert!(matches!(
        f.admit(&e(2, "c1"), Some("c1")),
        Admission::StaleEpoch { .. }
    ));
    assert_eq!(f.admit(&e(3, "c1"), Some("c1")), Admission::Admitted);
}

#[test]
fn epochs_and_decisions_round_trip_and_garbage_is_none() {
    let d = Decision {
        epoch: e(4, "c1"),
        body: b"rho=0.5".to_vec(),
    };
    assert_eq!(Decision::from_bytes(&d.to_bytes()), Some(d));
    assert_eq!(Epoch::from_bytes(&e(2, "x").to_bytes()), Some(e(2, "x")));
    assert_eq!(Epoch::from_bytes(&[0xff; 3]), None);
}
