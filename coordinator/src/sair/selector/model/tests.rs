use super::*;
use crate::policies::Prices;
use crate::policy::Action;
use crate::sair::calibration::Calibration;
use crate::sair::candidates::{Model, MoveKind, generate};
use crate::sair::features::{History, Planning};
use crate::sair::reward::Point;
use crate::sair::test_util::pipeline;

/// The candidates the model generates for `s` with an empty history.
fn candidates(s: &crate::policy::PipelineState) -> crate::sair::candidates::Candidates {
    let h = History::default();
    let p = Planning::new(s, &h, 30.0);
    let m = Model {
        state: s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    generate(&m, 1, &Default::default(), &Default::default())
}

#[test]
fn retrieved_episodes_correct_the_model() {
    let s = pipeline(100.0, 0.0);
    let cands = candidates(&s);
    let f = vec![0.5; 14];
    // The model prefers candidate 1 slightly; experience says its kind does far worse.
    let mut rewards = vec![1.0; cands.len()];
    rewards[1] = 1.2;
    let safe = vec![true; cands.len()];
    let bad = Episode {
        t_s: 0.0,
        features: f.clone(),
        kind: cands[1].kind,
        stage: cands[1].stage,
        label: "x".into(),
        source: crate::sair::store::Source::Model,
        bottleneck: None,
        candidates: vec![],
        action: Action::hold(&s),
        before: Point::default(),
        predicted: Point::default(),
        predicted_reward: 2.5,
        realised: Point::default(),
        reward: 0.5,
        surprisal: 3.0,
    };
    let eps = vec![&bad, &bad, &bad];
    let input = SelectionInput {
        state: &s,
        features: &f,
        utilisation: &[0.5, 0.5, 0.5],
        candidates: &cands,
        predicted_reward: &rewards,
        safe: &safe,
        bottleneck: 1,
        episodes: &eps,
        bandwidth: 0.15,
    };
    let mut plain = ModelSelector {
        use_retrieval: false,
        headroom: 100.0,
        max_utilisation: 100.0,
        cpu_max_utilisation: 100.0,
        derived_caps: None,
    };
    assert_eq!(plain.select(&input).index, 1);
    let mut corrected = ModelSelector {
        use_retrieval: true,
        headroom: 100.0,
        max_utilisation: 100.0,
        cpu_max_utilisation: 100.0,
        derived_caps: None,
    };
    let sel = corrected.select(&input);
    assert_ne!(sel.index, 1, "{}", sel.rationale);
    assert_ne!(cands[1].kind, MoveKind::Hold);
    // Unsafe candidates are never chosen.
    let mut only_hold = vec![false; cands.len()];
    only_hold[0] = true;
    let input = SelectionInput {
        safe: &only_hold,
        ..input
    };
    assert_eq!(plain.select(&input).index, 0);
}

fn fixture_episode(kind: MoveKind, stage: Option<usize>, before: f64, predicted: f64) -> Episode {
    let cost = |c: f64| Point {
        p99_s: 0.05,
        cost_per_hour: c,
    };
    Episode {
        t_s: 0.0,
        features: vec![0.5; 14],
        kind,
        stage,
        label: "x".into(),
        source: crate::sair::store::Source::Model,
        bottleneck: None,
        candidates: vec![],
        action: Action {
            replicas: vec![2, 2, 1],
            rho: vec![1.0; 3],
            shares: Vec::new(),
        },
        before: cost(before),
        predicted: cost(predicted),
        predicted_reward: 2.5,
        realised: Point::default(),
        reward: 0.5,
        surprisal: 3.0,
    }
}

/// The limit cycle of issue 15: a right-size that bought capacity realised a high reward, and
/// that evidence then pushed a right-size that sheds capacity. Moves that go opposite ways
/// (by predicted cost) no longer inform each other.
#[test]
fn episodes_going_the_other_way_do_not_correct_a_candidate() {
    let s = pipeline(100.0, 0.0);
    let cands = candidates(&s);
    let hold_cost = cands.hold.predicted.cost_per_hour;
    let i = (1..cands.len())
        .find(|&i| cands[i].predicted.cost_per_hour < 0.95 * hold_cost)
        .expect("a cheaper candidate");
    let c = &cands[i];
    let up = fixture_episode(c.kind, c.stage, 1.0, 2.0);
    let down = fixture_episode(c.kind, c.stage, 2.0, 1.0);
    let f = vec![0.5; 14];
    let rewards = vec![1.0; cands.len()];
    let safe = vec![true; cands.len()];
    let input = |eps: &'_ [&'_ Episode]| {
        correction(
            &SelectionInput {
                state: &s,
                features: &f,
                utilisation: &[0.5, 0.5, 0.5],
                candidates: &cands,
                predicted_reward: &rewards,
                safe: &safe,
                bottleneck: 1,
                episodes: eps,
                bandwidth: 0.15,
            },
            c,
        )
    };
    assert_eq!(input(&[&up]).1, 0.0, "a scale-up episode weighs on a cut");
    assert!(input(&[&down]).1 > 0.0);
}

/// Issue 15, item 4: a CPU stage is held to its own, lower utilisation cap.
#[test]
fn a_hot_cpu_stage_is_not_feasible_under_the_cpu_cap() {
    let s = pipeline(100.0, 0.0);
    let mut cands = candidates(&s);
    for c in std::iter::once(&mut cands.hold).chain(cands.moves.iter_mut()) {
        c.predicted.p99_s = 0.05;
        c.predicted.utilisation = vec![0.3, 0.5, 0.3];
    }
    // Hold runs `pre` (CPU) at 0.5 and is the model's favourite; move 1 runs it at 0.3.
    cands.hold.predicted.utilisation = vec![0.5, 0.5, 0.3];
    let mut rewards = vec![1.0; cands.len()];
    rewards[0] = 2.0;
    let safe = vec![true; cands.len()];
    let f = vec![0.5; 14];
    let input = SelectionInput {
        state: &s,
        features: &f,
        utilisation: &[0.5, 0.5, 0.5],
        candidates: &cands,
        predicted_reward: &rewards,
        safe: &safe,
        bottleneck: 1,
        episodes: &[],
        bandwidth: 0.15,
    };
    let mut capped = ModelSelector::default();
    assert_ne!(capped.select(&input).index, 0);
    let mut one_cap = ModelSelector {
        cpu_max_utilisation: capped.max_utilisation,
        ..ModelSelector::default()
    };
    assert_eq!(one_cap.select(&input).index, 0);
}

/// Issue 15: between bursts `sair` bought CPU replicas it predicted to be useless, because
/// holds taken as a burst began had realised far less than predicted, and that penalty fell on
/// holding alone. At the same predicted P99 a costlier move no longer wins on hold's negative
/// correction; a move's own evidence still corrects it.
#[test]
fn what_followed_a_hold_does_not_penalise_holding() {
    let s = pipeline(100.0, 0.0);
    let mut cands = candidates(&s);
    for c in std::iter::once(&mut cands.hold).chain(cands.moves.iter_mut()) {
        c.predicted.p99_s = 0.05;
        c.predicted.utilisation = vec![0.1, 0.1, 0.1];
    }
    let hold_cost = cands.hold.predicted.cost_per_hour;
    let up = (1..cands.len())
        .find(|&i| cands[i].predicted.cost_per_hour > hold_cost)
        .expect("a costlier candidate");
    // Same predicted P99: hold scores 2.0 (equivalent), the costlier move a little less.
    let mut rewards = vec![0.5; cands.len()];
    rewards[0] = 2.0;
    rewards[up] = 1.99;
    let safe = vec![true; cands.len()];
    let f = vec![0.5; 14];
    // Three holds that realised 0.5 against a predicted 2.0 (a burst began during each).
    let mut held = fixture_episode(MoveKind::Hold, None, 1.0, 1.0);
    held.predicted_reward = 2.0;
    let mut moved = fixture_episode(cands[up].kind, cands[up].stage, 1.0, 1.1);
    moved.predicted_reward = 1.99;
    let input = |eps: &'_ [&'_ Episode]| {
        let input = SelectionInput {
            state: &s,
            features: &f,
            utilisation: &[0.1, 0.1, 0.1],
            candidates: &cands,
            predicted_reward: &rewards,
            safe: &safe,
            bottleneck: 1,
            episodes: eps,
            bandwidth: 0.15,
        };
        let sel = ModelSelector::default().select(&input);
        let corr = |i: usize| correction(&input, &cands[i]).0;
        (sel.index, corr(0), corr(up))
    };
    let (index, hold_correction, _) = input(&[&held, &held, &held]);
    assert!(hold_correction < -0.5, "{hold_correction}");
    assert_eq!(
        index, 0,
        "the costlier move at the same P99 won on hold's correction"
    );
    // A move's own evidence still corrects it: the costlier move did worse, so still hold.
    let (index, _, up_correction) = input(&[&moved, &moved]);
    assert!(up_correction < 0.0);
    assert_eq!(index, 0);
}
