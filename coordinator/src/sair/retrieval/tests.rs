use proptest::prelude::*;

use super::*;
use crate::policy::Action;
use crate::sair::candidates::MoveKind;
use crate::sair::reward::Point;
use crate::sair::store::Source;

fn ep(f: Vec<f64>, kind: MoveKind, reward: f64, surprisal: f64) -> Episode {
    let p = Point {
        p99_s: 0.05,
        cost_per_hour: 1.0,
    };
    Episode {
        t_s: 0.0,
        features: f,
        kind,
        stage: Some(0),
        label: "x".into(),
        source: Source::Model,
        bottleneck: Some(0),
        candidates: vec![],
        action: Action {
            replicas: vec![1],
            rho: vec![1.0],
            shares: Vec::new(),
        },
        before: p,
        predicted: p,
        predicted_reward: reward,
        realised: p,
        reward,
        surprisal,
    }
}

#[test]
fn surprisal_grows_with_error_and_is_one_at_the_mean() {
    let m = ErrorModel::default();
    assert!((m.surprisal(1.0, 1.0) - 1.0).abs() < 1e-12);
    assert!(m.surprisal(1.0, 2.0) > m.surprisal(1.0, 1.5));
    assert!(m.surprisal(1.0, 0.0) > 1.0);
}

#[test]
fn surprising_similar_episodes_win_and_diversity_spreads_picks() {
    let here = vec![0.5, 0.5, 0.5];
    let mut eps = vec![
        ep(vec![0.5, 0.5, 0.5], MoveKind::ScaleUp, 3.0, 1.0),
        ep(vec![0.5, 0.5, 0.52], MoveKind::ScaleUp, 3.0, 9.0),
        ep(vec![0.9, 0.1, 0.9], MoveKind::ScaleUp, 3.0, 50.0),
    ];
    // Many near-duplicates of one surprising episode.
    for _ in 0..5 {
        eps.push(ep(vec![0.5, 0.5, 0.52], MoveKind::ScaleUp, 3.0, 9.0));
    }
    eps.push(ep(vec![0.55, 0.5, 0.5], MoveKind::ScaleDown, 3.0, 5.0));
    let cfg = RetrievalConfig {
        m: 2,
        negatives: 0,
        diversity: 0.9,
        ..RetrievalConfig::default()
    };
    let got = retrieve(&eps, &here, 0.0, &cfg);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], 1, "the most surprising similar episode comes first");
    assert_eq!(
        got[1], 8,
        "the diversity penalty prefers a different move to a duplicate"
    );
    let plain = retrieve(
        &eps,
        &here,
        0.0,
        &RetrievalConfig {
            use_surprisal: false,
            ..cfg
        },
    );
    assert_eq!(
        plain[0], 0,
        "without surprisal the most similar episode comes first"
    );
}

#[test]
fn negatives_fill_their_quota() {
    let here = vec![0.5];
    let eps: Vec<Episode> = (0..30)
        .map(|i| {
            ep(
                vec![0.5],
                MoveKind::Hold,
                if i % 2 == 0 { 3.0 } else { 0.2 },
                1.0,
            )
        })
        .collect();
    let got = retrieve(&eps, &here, 1.0, &RetrievalConfig::default());
    assert_eq!(got.len(), 15);
    let neg = got.iter().filter(|&&i| eps[i].reward < 1.0).count();
    assert_eq!(neg, 3);
}

proptest! {
    #[test]
    fn retrieval_is_bounded_and_unique(
        n in 0usize..60,
        feats in proptest::collection::vec(0.0f64..1.0, 60),
        rewards in proptest::collection::vec(0.0f64..3.0, 60),
    ) {
        let eps: Vec<Episode> = (0..n)
            .map(|i| ep(vec![feats[i], feats[(i + 7) % 60]], MoveKind::Hold, rewards[i], 1.0 + rewards[i]))
            .collect();
        let got = retrieve(&eps, &[0.5, 0.5], 1.5, &RetrievalConfig::default());
        prop_assert!(got.len() <= 15);
        let mut s = got.clone();
        s.sort_unstable();
        s.dedup();
        prop_assert_eq!(s.len(), got.len());
        prop_assert!(got.iter().all(|&i| i < n));
    }

    #[test]
    fn similarity_is_a_kernel(a in proptest::collection::vec(0.0f64..1.0, 6), b in proptest::collection::vec(0.0f64..1.0, 6)) {
        let s = similarity(&a, &b, 0.15);
        prop_assert!((0.0..=1.0).contains(&s));
        prop_assert!((similarity(&a, &a, 0.15) - 1.0).abs() < 1e-12);
        prop_assert!((s - similarity(&b, &a, 0.15)).abs() < 1e-12);
    }
}
