use std::time::{Duration, Instant};

use super::*;

fn store(name: &str) -> StateStore {
    StateStore::new(name, 1, StateLimits::default())
}

/// One full push-pull exchange between `a` and `b`, as the core runs it.
fn exchange(a: &mut StateStore, b: &mut StateStore, now: Instant) {
    let for_b = a.delta_for(&b.digest());
    let for_a = b.delta_for(&a.digest());
    b.apply(for_b, now);
    a.apply(for_a, now);
}

#[test]
fn two_members_converge_and_digests_match() {
    let now = Instant::now();
    let (mut a, mut b) = (store("a"), store("b"));
    a.set("ctl/epoch", Some(b"1".to_vec()), 0).unwrap();
    a.set("gpu/0", Some(b"busy".to_vec()), 0).unwrap();
    b.set("gpu/0", Some(b"idle".to_vec()), 0).unwrap();
    assert_ne!(a.digest_hash(), b.digest_hash());
    exchange(&mut a, &mut b, now);
    assert_eq!(b.get("a", "gpu/0"), Some(&b"busy"[..]));
    assert_eq!(a.get("b", "gpu/0"), Some(&b"idle"[..]));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest_hash(), b.digest_hash());
    // At rest nothing more moves.
    assert!(a.delta_for(&b.digest()).is_empty());
}

#[test]
fn overwrites_and_deletes_propagate_by_version_not_time() {
    let now = Instant::now();
    let (mut a, mut b) = (store("a"), store("b"));
    // The owner's clock goes backwards between writes: versions still order them.
    a.set("k", Some(b"old".to_vec()), 5_000).unwrap();
    exchange(&mut a, &mut b, now);
    a.set("k", Some(b"new".to_vec()), 1_000).unwrap();
    exchange(&mut a, &mut b, now);
    assert_eq!(b.get("a", "k"), Some(&b"new"[..]));
    a.set("k", None, 0).unwrap();
    exchange(&mut a, &mut b, now);
    assert_eq!(b.get("a", "k"), None);
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn relays_carry_third_party_state() {
    let now = Instant::now();
    let (mut a, mut b, mut c) = (store("a"), store("b"), store("c"));
    a.set("ctl/rho/p/s", Some(b"0.5".to_vec()), 0).unwrap();
    exchange(&mut a, &mut b, now);
    exchange(&mut b, &mut c, now);
    assert_eq!(c.get("a", "ctl/rho/p/s"), Some(&b"0.5"[..]));
}

#[test]
fn control_keys_fill_the_budget_before_bulk_keys() {
    let now = Instant::now();
    let limits = StateLimits {
        exchange_bytes: 4 * 1024,
        catchup_bytes: 4 * 1024,
        ..StateLimits::default()
    };
    let mut a = StateStore::new("a", 1, limits.clone());
    let mut b = StateStore::new("b", 1, limits);
    // A flood of bulk writes, then one control write (the newest version of all).
    for i in 0..200 {
        a.set(&format!("report/p/s/{i}"), Some(vec![7; 100]), 0)
            .unwrap();
    }
    a.set("ctl/rho/p/s", Some(b"0.25".to_vec()), 0).unwrap();
    let delta = a.delta_for(&b.digest());
    let applied = b.apply(delta, now);
    assert_eq!(applied.changes[0].key, "ctl/rho/p/s", "control first");
    assert_eq!(b.get("a", "ctl/rho/p/s"), Some(&b"0.25"[..]));
    let bulk = applied.changes.len() - 1;
    assert!(
        bulk < 200,
        "the budget truncated the bulk class ({bulk} keys)"
    );
    // The truncated prefix is consistent: later rounds deliver the rest.
    for _ in 0..20 {
        exchange(&mut a, &mut b, now);
    }
    assert_eq!(a.digest(), b.digest());
    assert_eq!(b.scan("report/").count(), 200);
}

#[test]
fn a_member_far_behind_gets_the_catch_up_budget() {
    let now = Instant::now();
    let limits = StateLimits {
        exchange_bytes: 2 * 1024,
        catchup_bytes: 512 * 1024,
        ..StateLimits::default()
    };
    let mut a = StateStore::new("a", 1, limits.clone());
    for i in 0..500 {
        a.set(&format!("report/{i}"), Some(vec![1; 200]), 0)
            .unwrap();
    }
    let mut fresh = StateStore::new("new", 1, limits);
    let delta = a.delta_for(&fresh.digest());
    fresh.apply(delta, now);
    assert_eq!(fresh.scan("report/").count(), 500, "one exchange, in bulk");
}

#[test]
fn state_size_is_bounded() {
    let limits = StateLimits {
        max_keys: 3,
        max_bytes: 1024,
        max_value_bytes: 600,
        ..StateLimits::default()
    };
    let mut a = StateStore::new("a", 1, limits);
    for k in ["a", "b", "c"] {
        a.set(k, Some(vec![0; 10]), 0).unwrap();
    }
    assert!(matches!(
        a.set("d", Some(vec![0; 10]), 0),
        Err(StateError::Full { keys: 4, .. })
    ));
    // Overwriting an existing key is fine.
    a.set("a", Some(vec![0; 500]), 0).unwrap();
    assert!(matches!(
        a.set("b", Some(vec![0; 600]), 0),
        Err(StateError::Full { .. })
    ));
    assert!(matches!(
        a.set("c", Some(vec![0; 601]), 0),
        Err(StateError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        a.set("bad key", Some(vec![]), 0),
        Err(StateError::BadKey { .. })
    ));
}

#[test]
fn dead_members_are_not_advertised_and_forgotten_ones_are_refused() {
    let now = Instant::now();
    let (mut a, mut b, mut c) = (store("a"), store("b"), store("c"));
    a.set("k", Some(b"v".to_vec()), 0).unwrap();
    exchange(&mut a, &mut b, now);
    exchange(&mut a, &mut c, now);
    // b learns a is dead: a's state leaves b's digest and deltas at once.
    b.mark_dead("a", 1);
    assert!(b.digest().iter().all(|d| d.member != "a"));
    assert_eq!(b.get("a", "k"), None);
    // b forgets a; c (which still has a) cannot bring it back during the grace period.
    assert!(b.forget("a", 1, now + Duration::from_secs(60)));
    exchange(&mut b, &mut c, now);
    assert!(b.members().all(|m| m != "a"));
    // A new generation of a (a restart) is accepted.
    let mut a2 = StateStore::new("a", 2, StateLimits::default());
    a2.set("k", Some(b"v2".to_vec()), 0).unwrap();
    exchange(&mut a2, &mut b, now);
    assert_eq!(b.get("a", "k"), Some(&b"v2"[..]));
    // After the grace period the forgotten list is empty again.
    b.expire(now + Duration::from_secs(61));
    assert_eq!(b.forgotten().count(), 0);
}

#[test]
fn a_new_generation_replaces_the_old_state() {
    let now = Instant::now();
    let (mut a, mut b) = (store("a"), store("b"));
    a.set("old", Some(b"1".to_vec()), 0).unwrap();
    exchange(&mut a, &mut b, now);
    let mut a2 = StateStore::new("a", 2, StateLimits::default());
    a2.set("new", Some(b"2".to_vec()), 0).unwrap();
    let applied = b.apply(a2.delta_for(&b.digest()), now);
    assert!(
        applied
            .changes
            .iter()
            .any(|c| c.key == "old" && c.value.is_none())
    );
    assert_eq!(b.get("a", "old"), None);
    assert_eq!(b.get("a", "new"), Some(&b"2"[..]));
    // The old generation's deltas are refused from now on.
    let applied = b.apply(a.delta_for(&[]), now);
    assert!(applied.changes.is_empty());
}

#[test]
fn scan_and_hash_are_stable() {
    let mut a = store("a");
    a.set("seg/x", Some(b"1".to_vec()), 0).unwrap();
    a.set("seg/y", Some(b"2".to_vec()), 0).unwrap();
    a.set("gpu/0", Some(b"3".to_vec()), 0).unwrap();
    let keys: Vec<&str> = a.scan("seg/").map(|(_, k, _)| k).collect();
    assert_eq!(keys, ["seg/x", "seg/y"]);
    let d = a.digest();
    assert_eq!(hash_digest(&d), hash_digest(&d.clone()));
    assert_ne!(hash_digest(&d), hash_digest(&[]));
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Write {
            member: usize,
            key: u8,
            value: Option<u8>,
        },
        Exchange {
            a: usize,
            b: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize, 0..12u8, proptest::option::of(any::<u8>()))
                .prop_map(|(member, key, value)| Step::Write { member, key, value }),
            (0..3usize, 0..3usize).prop_map(|(a, b)| Step::Exchange { a, b }),
        ]
    }

    fn key(k: u8) -> String {
        // Half control keys, half bulk keys.
        if k.is_multiple_of(2) {
            format!("ctl/k{k}")
        } else {
            format!("report/k{k}")
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the writes, the order of exchanges and a budget that cuts deltas short,
        /// enough exchanges leave every store with every owner's latest values.
        #[test]
        fn any_history_converges_under_a_tight_budget(steps in proptest::collection::vec(step(), 0..80)) {
            let now = Instant::now();
            let limits = StateLimits {
                exchange_bytes: 160,
                catchup_bytes: 160,
                ..StateLimits::default()
            };
            let names = ["a", "b", "c"];
            let mut stores: Vec<StateStore> =
                names.iter().map(|n| StateStore::new(n, 1, limits.clone())).collect();
            for s in &steps {
                match *s {
                    Step::Write { member, key: k, value } => {
                        stores[member].set(&key(k), value.map(|v| vec![v; 8]), 0).unwrap();
                    }
                    Step::Exchange { a, b } if a != b => {
                        let (x, y) = if a < b { (a, b) } else { (b, a) };
                        let (left, right) = stores.split_at_mut(y);
                        exchange(&mut left[x], &mut right[0], now);
                    }
                    Step::Exchange { .. } => {}
                }
            }
            for _ in 0..60 {
                for (x, y) in [(0, 1), (1, 2), (0, 2)] {
                    let (left, right) = stores.split_at_mut(y);
                    exchange(&mut left[x], &mut right[0], now);
                }
            }
            let digest = stores[0].digest();
            for s in &stores {
                prop_assert_eq!(s.digest(), digest.clone());
                for (owner, o) in names.iter().zip(&stores) {
                    for k in 0..12u8 {
                        prop_assert_eq!(s.get(owner, &key(k)), o.get(owner, &key(k)));
                    }
                }
            }
        }
    }
}
