use super::*;
use crate::policies::Prices;
use crate::policy::Action;
use crate::sair::calibration::Calibration;
use crate::sair::candidates::{Model, MoveKind, generate};
use crate::sair::features::{History, Planning};
use crate::sair::reward::Point;
use crate::sair::test_util::pipeline;

#[test]
fn retrieved_episodes_correct_the_model() {
    let s = pipeline(100.0, 0.0);
    let h = History::default();
    let p = Planning::new(&s, &h, 30.0);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let cands = generate(&m, 1, &Default::default(), &Default::default());
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
    };
    assert_eq!(plain.select(&input).index, 1);
    let mut corrected = ModelSelector {
        use_retrieval: true,
        headroom: 100.0,
        max_utilisation: 100.0,
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
