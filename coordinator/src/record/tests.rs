use std::path::Path;

use super::*;
use crate::policies;
use crate::policy::{DecisionSource, Explanation};
use crate::sair::test_util::pipeline;
use crate::scenario::Scenario;
use crate::sim;

/// Explains every other call as a model decision with id = call number, and reports the
/// previous call's reward as its number × 10.
struct Toy {
    calls: u64,
}

impl Policy for Toy {
    fn name(&self) -> &str {
        "toy"
    }
    fn decide(&mut self, s: &PipelineState) -> Decision {
        self.calls += 1;
        let d = Decision::new(Action::hold(s), Some(1), format!("call {}", self.calls));
        if self.calls % 2 == 1 {
            d.explained(Explanation {
                id: Some(self.calls),
                ..Explanation::from_source(DecisionSource::Model)
            })
        } else {
            d
        }
    }
    fn last_reward(&self) -> Option<(u64, f64)> {
        // The decision before the latest explained one (odd calls only).
        let last_odd = if self.calls % 2 == 1 {
            self.calls
        } else {
            self.calls - 1
        };
        last_odd
            .checked_sub(2)
            .filter(|&id| id >= 1)
            .map(|id| (id, id as f64 * 10.0))
    }
}

#[test]
fn a_record_names_the_bottleneck_and_source_and_keeps_the_contract_keys() {
    let s = pipeline(100.0, 12.5);
    let d = Decision::new(Action::hold(&s), Some(1), "why").explained(Explanation {
        label: Some("hold".into()),
        ..Explanation::from_source(DecisionSource::Guard)
    });
    let r = DecisionRecord::new("sair", &s, &d);
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "time",
        "pipeline",
        "state",
        "action",
        "source",
        "bottleneck",
        "rationale",
        "candidates",
        "reward",
    ] {
        assert!(v.get(key).is_some(), "key {key} missing from {v}");
    }
    assert_eq!(v["time"], 12.5);
    assert_eq!(v["source"], "guard");
    assert_eq!(v["bottleneck"], "infer");
    assert!(v["reward"].is_null());
    assert_eq!(v["state"]["stages"][1]["name"], "infer");
    let back: DecisionRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

#[test]
fn the_recorder_skips_unexplained_calls_fills_rewards_late_and_stays_bounded() {
    let mut rec = Recording::new(Box::new(Toy { calls: 0 }), Recorder::new(3));
    for k in 0..9 {
        rec.decide(&pipeline(100.0, f64::from(k) * 5.0));
    }
    let r: Vec<&DecisionRecord> = rec.recorder().records().collect();
    // Calls 1, 3, 5, 7, 9 explained; the newest three are kept.
    let ids: Vec<Option<u64>> = r.iter().map(|x| x.decision).collect();
    assert_eq!(ids, [Some(5), Some(7), Some(9)]);
    assert_eq!(r[0].reward, Some(50.0));
    assert_eq!(r[1].reward, Some(70.0));
    assert_eq!(
        r[2].reward, None,
        "the newest decision's outcome is not known yet"
    );
    assert_eq!(rec.recorder().latest(2).len(), 2);
    assert_eq!(rec.recorder().latest(2)[1].decision, Some(9));
    assert_eq!(rec.recorder().latest(10).len(), 3);
}

fn scenario(file: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    match Scenario::load(&path) {
        Ok(sc) => sc,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// SAIR explains every decision it takes (full decisions and guard firings), and each one's
/// reward is filled in once the next decision closes its episode.
#[test]
fn sair_in_the_simulator_explains_every_decision_and_rewards_all_but_the_last() {
    let mut sc = scenario("image-classification-burst.toml");
    sc.duration_s = 420.0;
    let p = match policies::build("sair", &sc.context(1, None)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut rec = Recording::new(p, Recorder::unbounded());
    sim::run(&sc, &mut rec, 1);
    let records = rec.into_recorder().into_records();
    assert!(records.len() >= 10, "{} records", records.len());
    for r in &records {
        assert!(
            matches!(
                r.source.as_str(),
                "model" | "guard" | "explore" | "fallback"
            ),
            "{r:?}"
        );
        assert!(!r.rationale.is_empty(), "{r:?}");
        assert_eq!(r.state.stages.len(), 3);
        if r.source != "guard" {
            assert!(!r.candidates.is_empty(), "{r:?}");
            assert_eq!(r.candidates.iter().filter(|c| c.chosen).count(), 1, "{r:?}");
            assert!(r.predicted.is_some());
        }
    }
    let opened: Vec<&DecisionRecord> = records.iter().filter(|r| r.decision.is_some()).collect();
    let (last, earlier) = opened.split_last().unwrap();
    assert!(
        earlier.iter().all(|r| r.reward.is_some()),
        "every decision but the last has its reward"
    );
    assert_eq!(last.reward, None);
}

#[test]
fn baselines_are_recorded_as_baseline_without_reward() {
    let mut sc = scenario("image-classification-poisson.toml");
    sc.duration_s = 120.0;
    let p = match policies::build("hpa", &sc.context(1, None)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut rec = Recording::new(p, Recorder::unbounded());
    sim::run(&sc, &mut rec, 1);
    let records = rec.into_recorder().into_records();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.source == "baseline" && r.reward.is_none() && r.policy == "hpa")
    );
}
