//! Distributed behaviour as scripts over the cuttable in-process network (STYLE §11).
//!
//! Every test runs on tokio's paused clock: the members' drivers, the network and the script
//! share it, so the time bounds below are cluster time, unaffected by a loaded machine.

use std::time::Duration;

use foca::State;
use sair_mesh::Role::{Agent, Coordinator};
use sair_mesh::leader::{Admission, Candidacy, Decision, Fence};
use sair_mesh::test_util::script::*;
use sair_mesh::test_util::{Cluster, Operation, fast_config};

const SEC: Duration = Duration::from_secs(1);

fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The authority's grant passes from `from` (which gives it up first) to `to` at `term`; `to`
/// claims at once, and that claim is returned.
async fn hand_over(c: &Cluster, from: &str, to: &str, term: u64) -> sair_mesh::Epoch {
    assert_eq!(
        c.mesh(from).set_candidacy(Candidacy::NotHolder).await,
        Ok(None),
        "{from} gives the grant up without a claim"
    );
    c.mesh(to)
        .set_candidacy(Candidacy::Holder { term })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{to} takes the grant and claims at once"))
}

#[tokio::test(start_paused = true)]
async fn members_join_through_one_seed_and_state_converges() {
    init();
    let mut c = Cluster::new(fast_config());
    c.run(vec![
        spawn("a", Agent, &[]),
        spawn("b", Agent, &["a"]),
        spawn("c", Agent, &["a"]),
        spawn("d", Agent, &["b"]),
        spawn("e", Coordinator, &["a"]),
        alive(&["a", "b", "c", "d", "e"], 5 * SEC),
        set("d", "gpu/0", b"util=0.4"),
        set("e", "ctl/rho/p/s", b"0.5"),
        sees("d", "gpu/0", Some(b"util=0.4"), 2 * SEC),
        sees("e", "ctl/rho/p/s", Some(b"0.5"), 2 * SEC),
        leader_on(&["a", "b", "c", "d", "e"], Some("e"), SEC),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_member_is_detected_then_forgotten_and_its_state_dropped() {
    init();
    let mut c = Cluster::new(fast_config());
    c.run(vec![
        spawn("a", Agent, &[]),
        spawn("b", Agent, &["a"]),
        spawn("c", Agent, &["a"]),
        spawn("d", Agent, &["a"]),
        alive(&["a", "b", "c", "d"], 5 * SEC),
        set("d", "gpu/0", b"x"),
        sees("d", "gpu/0", Some(b"x"), 2 * SEC),
    ])
    .await;
    c.kill("d");
    let start = tokio::time::Instant::now();
    c.run(vec![
        alive(&["a", "b", "c"], 5 * SEC),
        state_of("d", Some(State::Down), 5 * SEC),
    ])
    .await;
    let detected = start.elapsed();
    tracing::info!(?detected, "detection");
    assert!(detected <= 5 * SEC, "detected after {detected:?}");
    // Its state is no longer served, and after forget_after it is gone from the membership.
    c.run(vec![
        sees("d", "gpu/0", None, SEC),
        state_of("d", None, 15 * SEC),
    ])
    .await;
    // Nobody brings it back: it stays forgotten.
    c.run(vec![Operation::Wait(5 * SEC), state_of("d", None, SEC)])
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_partition_is_detected_on_both_sides_and_heals_without_restarts() {
    init();
    let mut c = Cluster::new(fast_config());
    let left = ["a", "b", "c"];
    let right = ["d", "e", "f"];
    let all = ["a", "b", "c", "d", "e", "f"];
    c.run(vec![
        spawn("a", Agent, &[]),
        spawn("b", Agent, &["a"]),
        spawn("c", Agent, &["a"]),
        spawn("d", Agent, &["a"]),
        spawn("e", Agent, &["a"]),
        spawn("f", Agent, &["a"]),
        alive(&all, 5 * SEC),
    ])
    .await;
    c.partition(&left, &right);
    c.run(vec![
        alive_on(&left, &left, 8 * SEC),
        alive_on(&right, &right, 8 * SEC),
        set("b", "seg/x", b"left"),
        set("e", "seg/y", b"right"),
    ])
    .await;
    c.heal();
    c.run(vec![
        alive(&all, 30 * SEC),
        sees("b", "seg/x", Some(b"left"), 5 * SEC),
        sees("e", "seg/y", Some(b"right"), 5 * SEC),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn joining_works_with_a_seed_down_and_after_a_seed_moves() {
    init();
    let mut c = Cluster::new(fast_config());
    let never = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
    c.spawn("s", Agent, &[]);
    // The first seed never answers; the second does.
    c.spawn_with_seed_addrs("m1", Agent, &[never, c.addr("s")]);
    c.run(vec![alive(&["s", "m1"], 5 * SEC)]).await;
    // A member whose only seed is down keeps retrying and joins once the seed is up.
    c.kill("s");
    c.run(vec![alive(&["m1"], 5 * SEC)]).await;
    c.spawn("late", Agent, &["s"]);
    c.run(vec![Operation::Wait(3 * SEC)]).await;
    assert_eq!(c.mesh("late").view().alive(), ["late"]);
    // The seed restarts at its old address: "late" joins, then m1 too (it announces to
    // members it holds as down).
    c.restart("s", false, &["m1"]);
    c.run(vec![alive(&["late", "m1", "s"], 15 * SEC)]).await;
    // The seed restarts again, at a new address: members that still list the old one learn
    // the new one from the others, and a newcomer joins through any live member.
    c.kill("s");
    c.restart("s", true, &["m1"]);
    c.spawn("m2", Agent, &["late"]);
    c.run(vec![alive(&["late", "m1", "m2", "s"], 15 * SEC)])
        .await;
}

#[tokio::test(start_paused = true)]
async fn control_keys_overtake_a_flood_of_bulk_keys() {
    init();
    let mut config = fast_config();
    // A small exchange budget, so the flood cannot be carried in one round.
    config.limits.exchange_bytes = 8 * 1024;
    config.limits.catchup_bytes = 8 * 1024;
    let mut c = Cluster::new(config);
    let all = ["a", "b", "c", "d"];
    c.run(vec![
        spawn("a", Coordinator, &[]),
        spawn("b", Agent, &["a"]),
        spawn("c", Agent, &["a"]),
        spawn("d", Agent, &["a"]),
        alive(&all, 5 * SEC),
    ])
    .await;
    // 400 bulk keys of 500 bytes (≈ 200 KB, 25 budgets' worth), then one control key.
    for i in 0..400 {
        let r = c
            .mesh("a")
            .set(&format!("report/p/s/{i}"), vec![b'x'; 500])
            .await;
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
    }
    c.mesh("a")
        .set("ctl/rho/p/s", b"0.3".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let control = c
        .eventually(
            2 * SEC,
            &sair_mesh::test_util::Predicate::Sees {
                on: sair_mesh::test_util::On::All,
                member: "a".into(),
                key: "ctl/rho/p/s".into(),
                value: Some(b"0.3".to_vec()),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // When the control key is everywhere, the bulk flood is not.
    let mut lagging = 0;
    for n in ["b", "c", "d"] {
        if c.mesh(n)
            .get("a", "report/p/s/399")
            .await
            .ok()
            .flatten()
            .is_none()
        {
            lagging += 1;
        }
    }
    tracing::info!(?control, lagging, "control key arrived");
    assert!(
        lagging > 0,
        "the bulk flood had already arrived: the test proves nothing"
    );
    // The flood drains in the end.
    c.run(vec![sees(
        "a",
        "report/p/s/399",
        Some(&[b'x'; 500]),
        30 * SEC,
    )])
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stale_leader_is_fenced_after_a_partition_heals() {
    init();
    let mut c = Cluster::new(fast_config());
    let all = ["a1", "a2", "a3", "c1", "c2"];
    c.run(vec![
        spawn("c1", Coordinator, &[]),
        spawn("c2", Coordinator, &["c1"]),
        spawn("a1", Agent, &["c1"]),
        spawn("a2", Agent, &["c1"]),
        spawn("a3", Agent, &["c1"]),
        alive(&all, 5 * SEC),
        leader_on(&all, Some("c1"), SEC),
    ])
    .await;
    let first = c
        .mesh("c1")
        .view()
        .epoch
        .unwrap_or_else(|| panic!("c1 leads"));
    // c2 does not lead: it cannot decide.
    assert_eq!(
        c.mesh("c2").decide("ctl/rho/p/s", b"x".to_vec()).await,
        Ok(None)
    );

    c.partition(&["c1", "a1"], &["c2", "a2", "a3"]);
    c.run(vec![leader_on(&["c2", "a2", "a3"], Some("c2"), 8 * SEC)])
        .await;
    let stale = c
        .mesh("c2")
        .decide("ctl/rho/p/s", b"rho=0.9".to_vec())
        .await
        .ok()
        .flatten()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("c2 leads its side"));
    assert!(stale > first, "{stale:?} > {first:?}");
    // An agent on c2's side admits c2's decision while c2 leads there.
    let mut fence = Fence::default();
    assert_eq!(fence.admit(&stale, Some("c2")), Admission::Admitted);

    c.heal();
    c.run(vec![
        alive(&all, 30 * SEC),
        leader_on(&all, Some("c1"), 5 * SEC),
    ])
    .await;
    // c1 saw c2's higher term and claimed above it.
    let fresh = c
        .eventually(
            5 * SEC,
            &sair_mesh::test_util::Predicate::Leader {
                on: sair_mesh::test_util::On::All,
                leader: Some("c1".into()),
            },
        )
        .await
        .map(|_| c.mesh("c1").view().epoch)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("c1 leads"));
    assert!(fresh > stale, "{fresh:?} > {stale:?}");
    assert_eq!(
        c.mesh("c2").decide("ctl/rho/p/s", b"x".to_vec()).await,
        Ok(None)
    );
    let decided = c
        .mesh("c1")
        .decide("ctl/rho/p/s", b"rho=0.4".to_vec())
        .await
        .ok()
        .flatten()
        .and_then(Result::ok);
    assert_eq!(decided.as_ref(), Some(&fresh));
    // a2 reads both decisions from the mesh: c2's (stale) is refused, c1's admitted.
    let leader = c.mesh("a2").view().leader;
    assert!(matches!(
        fence.admit(&stale, leader.as_deref()),
        Admission::NotLeader { .. }
    ));
    c.run(vec![sees(
        "c1",
        "ctl/rho/p/s",
        Some(
            &Decision {
                epoch: fresh.clone(),
                body: b"rho=0.4".to_vec(),
            }
            .to_bytes(),
        ),
        5 * SEC,
    )])
    .await;
    let bytes = c
        .mesh("a2")
        .get("c1", "ctl/rho/p/s")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let d = Decision::from_bytes(&bytes).unwrap_or_else(|| panic!("a decision"));
    assert_eq!(
        fence.admit(&d.epoch, leader.as_deref()),
        Admission::Admitted
    );
    // And even if c2 still led in a2's eyes, its epoch is now older than the admitted one.
    assert!(matches!(
        fence.admit(&stale, Some("c2")),
        Admission::NotLeader { .. } | Admission::StaleEpoch { .. }
    ));
    let mut fence_c2_view = fence.clone();
    assert!(matches!(
        fence_c2_view.admit(&stale, Some(stale.leader.as_str())),
        Admission::StaleEpoch { .. }
    ));
}

/// Under an outside authority (the Kubernetes Lease) the holder leads everywhere, even when it
/// is not the lowest name, and a handover fences the old holder (docs/coordinator.md,
/// "Leadership").
#[tokio::test(start_paused = true)]
async fn the_lease_holder_leads_everywhere_and_a_handover_fences_the_old_holder() {
    init();
    let mut c = Cluster::new(fast_config());
    let all = ["a1", "a2", "c1", "c2"];
    c.run(vec![
        spawn("c1", Coordinator, &[]),
        spawn("c2", Coordinator, &["c1"]),
        spawn("a1", Agent, &["c1"]),
        spawn("a2", Agent, &["c2"]),
        alive(&all, 5 * SEC),
        // Without an authority the lowest name leads.
        leader_on(&all, Some("c1"), SEC),
    ])
    .await;
    let mesh_term = c
        .mesh("c1")
        .view()
        .epoch
        .unwrap_or_else(|| panic!("c1 leads by name"))
        .term;

    // The Lease goes to c2 (transitions 0: a new Lease), c1 does not hold it.
    tracing::info!("c2 holds the Lease, c1 does not");
    assert_eq!(
        c.mesh("c1").set_candidacy(Candidacy::NotHolder).await,
        Ok(None)
    );
    let held = c
        .mesh("c2")
        .set_candidacy(Candidacy::Holder { term: 0 })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the holder claims at once"));
    assert!(
        held.term > mesh_term,
        "{held:?} above the mesh's {mesh_term}"
    );
    c.run(vec![leader_on(&all, Some("c2"), 2 * SEC)]).await;
    // Exactly one coordinator may decide: the holder.
    assert_eq!(
        c.mesh("c1")
            .decide("ctl/rho/p/s", b"rho=0.1".to_vec())
            .await,
        Ok(None)
    );
    let first = c
        .mesh("c2")
        .decide("ctl/rho/p/s", b"rho=0.6".to_vec())
        .await
        .ok()
        .flatten()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("c2 holds the Lease and decides"));
    assert_eq!(first, held);
    let d2 = Decision {
        epoch: first.clone(),
        body: b"rho=0.6".to_vec(),
    };
    c.run(vec![sees(
        "c2",
        "ctl/rho/p/s",
        Some(&d2.to_bytes()),
        2 * SEC,
    )])
    .await;
    // Each agent admits c2's decision as it reads it off the mesh.
    let mut fences = [Fence::default(), Fence::default()];
    for (agent, fence) in ["a1", "a2"].iter().zip(&mut fences) {
        let leader = c.mesh(agent).view().leader;
        assert_eq!(leader.as_deref(), Some("c2"), "{agent} follows the holder");
        let bytes = c
            .mesh(agent)
            .get("c2", "ctl/rho/p/s")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let d = Decision::from_bytes(&bytes).unwrap_or_else(|| panic!("a decision"));
        assert_eq!(
            fence.admit(&d.epoch, leader.as_deref()),
            Admission::Admitted
        );
    }

    // Handover: the Lease passes to c1 (transitions 1).
    tracing::info!("the Lease passes to c1");
    let second = hand_over(&c, "c2", "c1", 1).await;
    assert!(second > first, "{second:?} > {first:?}");
    c.run(vec![leader_on(&all, Some("c1"), 2 * SEC)]).await;
    assert_eq!(
        c.mesh("c2")
            .decide("ctl/rho/p/s", b"rho=0.9".to_vec())
            .await,
        Ok(None),
        "the old holder can no longer decide"
    );
    for (agent, fence) in ["a1", "a2"].iter().zip(&mut fences) {
        let leader = c.mesh(agent).view().leader;
        assert_eq!(
            leader.as_deref(),
            Some("c1"),
            "{agent} follows the new holder"
        );
        // A late copy of the old holder's decision is refused: not the leader, and stale.
        assert!(matches!(
            fence.admit(&first, leader.as_deref()),
            Admission::NotLeader { .. }
        ));
        assert_eq!(fence.admit(&second, leader.as_deref()), Admission::Admitted);
        assert!(matches!(
            fence.admit(&first, Some("c2")),
            Admission::StaleEpoch { .. }
        ));
    }

    // The Lease deleted and recreated by hand (transitions 0 again) and taken by c2: c2 still
    // claims above every term the mesh has seen, so fencing never goes backwards.
    tracing::info!("the Lease is recreated and c2 takes it");
    let third = hand_over(&c, "c1", "c2", 0).await;
    assert!(third > second, "{third:?} > {second:?}");
    c.run(vec![leader_on(&all, Some("c2"), 2 * SEC)]).await;
}

/// The term history outlives every coordinator: the agents keep the newest epoch they saw, so
/// a coordinator that joins after all earlier ones are dead and forgotten claims above what
/// the agents' fences admitted (c0 sorts before c1: at term 1 its claim would be stale).
#[tokio::test(start_paused = true)]
async fn a_coordinator_joining_after_all_others_are_forgotten_claims_above_their_terms() {
    init();
    let mut c = Cluster::new(fast_config());
    c.run(vec![
        spawn("c1", Coordinator, &[]),
        spawn("a1", Agent, &["c1"]),
        spawn("a2", Agent, &["a1"]),
        alive(&["a1", "a2", "c1"], 5 * SEC),
        leader_on(&["a1", "a2", "c1"], Some("c1"), SEC),
    ])
    .await;
    let old = c
        .mesh("c1")
        .view()
        .epoch
        .unwrap_or_else(|| panic!("c1 leads"));
    let mut fence = Fence::default();
    assert_eq!(fence.admit(&old, Some("c1")), Admission::Admitted);
    // The agents keep c1's term under their own ctl/epoch, which is no claim of theirs.
    c.run(vec![
        sees("a1", "ctl/epoch", Some(&old.to_bytes()), 2 * SEC),
        sees("a2", "ctl/epoch", Some(&old.to_bytes()), 2 * SEC),
        Operation::Kill("c1".into()),
        state_of("c1", None, 30 * SEC),
        spawn("c0", Coordinator, &["a1"]),
        alive(&["a1", "a2", "c0"], 5 * SEC),
        leader_on(&["a1", "a2", "c0"], Some("c0"), SEC),
    ])
    .await;
    let mut new = None;
    for _ in 0..50 {
        new = c.mesh("c0").view().epoch.filter(|e| *e > old);
        if new.is_some() {
            break;
        }
        tokio::time::sleep(SEC / 10).await;
    }
    let new = new.unwrap_or_else(|| panic!("c0 never claimed above {old:?}"));
    assert_eq!(new.leader, "c0");
    assert_eq!(fence.admit(&new, Some("c0")), Admission::Admitted);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_leaves_is_dead_everywhere_before_any_suspicion_could_expire() {
    init();
    let mut c = Cluster::new(fast_config());
    c.run(vec![
        spawn("a", Agent, &[]),
        spawn("b", Agent, &["a"]),
        spawn("c", Agent, &["a"]),
        spawn("d", Agent, &["a"]),
        alive(&["a", "b", "c", "d"], 5 * SEC),
    ])
    .await;
    c.leave("d").await;
    // Detection by probing would take a probe period plus suspect_to_down (1.2 s) at least.
    c.run(vec![state_of("d", Some(State::Down), SEC)]).await;
}
