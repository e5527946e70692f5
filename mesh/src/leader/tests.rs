use super::*;

fn e(term: u64, leader: &str) -> Epoch {
    Epoch {
        term,
        leader: leader.into(),
    }
}

#[test]
fn the_lowest_live_coordinator_claims_and_the_newest_claim_leads() {
    assert_eq!(lowest_name(["c2", "c1", "c3"]), Some("c1"));
    assert_eq!(lowest_name(Vec::<&str>::new()), None);
    // The newest claim leads, whoever sorts first by name.
    assert_eq!(
        leader_of(&[e(3, "c1"), e(4, "c2"), e(2, "c0")]),
        Some(&e(4, "c2"))
    );
    // Equal terms (two claimants that never saw each other) order by name, on every member.
    assert_eq!(leader_of(&[e(4, "c2"), e(4, "c1")]), Some(&e(4, "c2")));
    assert_eq!(leader_of(&[]), None);
}

#[test]
fn a_leader_claims_a_term_above_everything_it_saw() {
    assert_eq!(next_claim("c1", None, &[], 0), Some(e(1, "c1")));
    // Its own claim is the newest: nothing to do.
    assert_eq!(next_claim("c1", Some(&e(3, "c1")), &[e(3, "c1")], 0), None);
    // A rival claimed a higher term during a partition: go above it.
    assert_eq!(
        next_claim("c1", Some(&e(1, "c1")), &[e(1, "c1"), e(2, "c2")], 0),
        Some(e(3, "c1"))
    );
    // Taking over from another leader.
    assert_eq!(next_claim("c2", None, &[e(5, "c1")], 0), Some(e(6, "c2")));
}

#[test]
fn a_peers_top_term_neither_panics_nor_wraps_the_claim() {
    assert_eq!(
        next_claim("c1", None, &[e(u64::MAX, "c0")], 0),
        Some(e(u64::MAX, "c1"))
    );
    assert_eq!(
        next_claim("c1", Some(&e(u64::MAX - 1, "c1")), &[e(u64::MAX, "c2")], 3),
        Some(e(u64::MAX, "c1"))
    );
}

#[test]
fn an_authoritys_term_raises_the_claim_and_never_lowers_it() {
    // The Lease's term (leaseTransitions 7) is above everything the mesh saw: claim it.
    assert_eq!(next_claim("c2", None, &[e(3, "c1")], 7), Some(e(7, "c2")));
    // The Lease was deleted and recreated (term 0): still above the mesh's newest.
    assert_eq!(next_claim("c2", None, &[e(9, "c1")], 0), Some(e(10, "c2")));
    // A sitting claimant whose authority's term grew claims again, up to it.
    assert_eq!(
        next_claim("c2", Some(&e(7, "c2")), &[e(7, "c2")], 8),
        Some(e(8, "c2"))
    );
    assert_eq!(next_claim("c2", Some(&e(8, "c2")), &[e(8, "c2")], 8), None);
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
