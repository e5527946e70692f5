use super::*;
use crate::policies::Prices;
use crate::sair::calibration::Calibration;
use crate::sair::features::{History, Planning};
use crate::sair::test_util::pipeline;

fn model_for(s: &PipelineState) -> (Planning, History) {
    let mut h = History::default();
    h.observe(s, s.arrival_rate);
    (Planning::new(s, &h, 30.0), h)
}

#[test]
fn candidate_set_is_bounded_unique_and_valid() {
    let s = pipeline(150.0, 0.0);
    let (p, _) = model_for(&s);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let limits = Limits::default();
    let cands = generate(&m, 1, &CandidateConfig::default(), &limits);
    assert_eq!(cands.hold.kind, MoveKind::Hold);
    assert_eq!(cands[Candidates::HOLD], cands.hold);
    assert!(cands.len() <= 40, "{}", cands.len());
    let v = crate::sair::validator::Validator::new(limits);
    for (i, c) in cands.iter().enumerate() {
        assert_eq!(c.id, format!("c{i}"));
        assert!(v.check(&s, &c.action, 0.0, false).is_ok(), "{c:?}");
        for d in cands.iter().take(i) {
            assert_ne!(d.action, c.action);
        }
    }
    assert!(cands.iter().any(|c| c.kind == MoveKind::RhoDown));
    let no_rho = generate(
        &m,
        1,
        &CandidateConfig {
            gpu_rate: false,
            ..Default::default()
        },
        &limits,
    );
    assert!(no_rho.iter().all(|c| c.action.rho == cands.hold.action.rho));
}

#[test]
fn more_capacity_predicts_lower_p99_and_higher_cost() {
    let s = pipeline(180.0, 0.0);
    let (p, _) = model_for(&s);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let hold = Action::hold(&s);
    let mut up = hold.clone();
    up.replicas[0] += 1;
    let (a, b) = (m.predict(&hold), m.predict(&up));
    assert!(b.p99_s < a.p99_s);
    assert!((b.cost_per_hour - a.cost_per_hour - 0.048).abs() < 1e-9);
}

#[test]
fn right_size_meets_its_target_cheaply() {
    let s = pipeline(120.0, 0.0);
    let (p, _) = model_for(&s);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let cfg = CandidateConfig::default();
    let a = right_size(&m, 0.08, &cfg, &Limits::default());
    let out = m.predict(&a);
    assert!(out.p99_s <= 0.08, "{out:?}");
    assert!(
        out.cost_per_hour < m.predict(&Action::hold(&s)).cost_per_hour,
        "{a:?}"
    );
    assert!(out.utilisation.iter().all(|u| *u < 1.0));
}

#[test]
fn hold_is_index_zero_and_the_moves_follow_in_id_order() {
    let s = pipeline(150.0, 0.0);
    let (p, _) = model_for(&s);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let cands = generate(&m, 1, &CandidateConfig::default(), &Limits::default());
    assert!(Candidates::is_hold(Candidates::HOLD));
    assert_eq!(cands.hold.id, "c0");
    assert_eq!(cands.hold.action, Action::hold(&s));
    assert_eq!(cands.len(), 1 + cands.moves.len());
    assert!(!cands.moves.is_empty());
    for (i, c) in cands.iter().enumerate() {
        assert_eq!(cands.get(i), Some(c));
        assert_eq!(cands.position(&c.id), Some(i));
        assert_eq!(c.kind == MoveKind::Hold, Candidates::is_hold(i), "{c:?}");
    }
    assert_eq!(cands.get(cands.len()), None);
    assert_eq!(cands.position("c999"), None);
}

fn with_model<T>(s: &PipelineState, f: impl FnOnce(&Model<'_>) -> T) -> T {
    let (p, _) = model_for(s);
    f(&Model {
        state: s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    })
}

#[test]
fn fine_rho_steps_are_offered_besides_the_coarse_ones() {
    let s = pipeline(100.0, 0.0);
    let rhos = |cfg: CandidateConfig| -> Vec<f64> {
        with_model(&s, |m| {
            generate(m, 1, &cfg, &Limits::default())
                .iter()
                .filter(|c| c.kind == MoveKind::RhoDown && c.stage == Some(1))
                .map(|c| c.action.rho[1])
                .collect()
        })
    };
    let fine = rhos(CandidateConfig {
        fine_rho: true,
        ..Default::default()
    });
    assert!(fine.iter().any(|r| (r - 0.95).abs() < 1e-9), "{fine:?}");
    assert!(fine.iter().any(|r| (r - 0.9).abs() < 1e-9), "{fine:?}");
    let coarse = rhos(CandidateConfig::default());
    assert!(coarse.iter().all(|r| (r - 0.95).abs() > 1e-9), "{coarse:?}");
}

/// One GPU, the GPU stage on one replica at ρ 0.6: a second replica at 0.6 does not pack, two
/// at 0.5 do and hold more share (1.0 > 0.6), so "+1 at rebalanced ρ" is offered; it is not
/// when rebalancing would hold less share than now.
#[test]
fn plus_one_replica_at_a_rebalanced_rho_is_offered_only_when_it_adds_share() {
    let mut s = pipeline(40.0, 0.0);
    s.gpus = 1;
    s.stages[1].replicas = 1;
    s.stages[1].replicas_desired = 1;
    s.stages[1].rho = 0.6;
    let rebalanced = |s: &PipelineState, cfg: CandidateConfig| -> Vec<Action> {
        with_model(s, |m| {
            generate(m, 1, &cfg, &Limits::default())
                .iter()
                .filter(|c| c.label.contains("rebalanced"))
                .map(|c| c.action.clone())
                .collect()
        })
    };
    let on = CandidateConfig {
        rebalance: true,
        ..Default::default()
    };
    let got = rebalanced(&s, on);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].replicas[1], 2);
    assert!((got[0].rho[1] - 0.5).abs() < 1e-9, "{got:?}");
    assert!(gpu_fits(&s, &got[0]));
    let off = rebalanced(&s, CandidateConfig::default());
    assert!(off.is_empty());
    // Two replicas at ρ 1.0 on two GPUs: three would pack only at 0.5, 1.5 < 2.0 of share now.
    let full = pipeline(40.0, 0.0);
    assert!(rebalanced(&full, on).is_empty());
}

/// Issue 15, item 2: with per-replica shares on, a GPU stage whose GPUs are committed at its ρ
/// is offered one more replica at the share that is left, the serving replicas keeping
/// theirs; and the newest replica's share one step down. Every such move passes the validator
/// and packs; off by default.
#[test]
fn per_replica_moves_add_a_replica_at_the_free_share() {
    let mut s = pipeline(150.0, 0.0);
    // infer: 2 replicas at 0.85 on 2 GPUs: a third at 0.85 does not pack, one at 0.15 does.
    s.stages[1].rho = 0.85;
    let (p, _) = model_for(&s);
    let m = Model {
        state: &s,
        planning: &p,
        prices: Prices::default(),
        calibration: Calibration::default(),
    };
    let limits = Limits::default();
    let off = generate(&m, 1, &CandidateConfig::default(), &limits);
    assert!(off.iter().all(|c| c.action.shares.is_empty()));
    let cfg = CandidateConfig {
        replica_shares_up: true,
        replica_shares_trim: true,
        ..CandidateConfig::default()
    };
    let cands = generate(&m, 1, &cfg, &limits);
    let v = crate::sair::validator::Validator::new(limits);
    let up = cands
        .iter()
        .find(|c| c.kind == MoveKind::ScaleUp && c.action.explicit_shares(1).is_some())
        .expect("a replica at the free share");
    let shares = up.action.explicit_shares(1).unwrap();
    assert_eq!(shares.len(), 3);
    assert_eq!(
        &shares[..2],
        [0.85, 0.85],
        "the serving replicas keep theirs"
    );
    assert!((shares[2] - 0.15).abs() < 1e-9, "{shares:?}");
    assert_eq!(up.action.replicas[1], 3);
    let trim = cands
        .iter()
        .find(|c| c.kind == MoveKind::RhoDown && c.action.explicit_shares(1).is_some())
        .expect("the newest replica's share one step down");
    assert_eq!(trim.action.explicit_shares(1).unwrap().len(), 2);
    for c in cands.iter() {
        assert!(v.check(&s, &c.action, 0.0, false).is_ok(), "{c:?}");
        assert!(gpu_fits(&s, &c.action), "{c:?}");
    }
}
