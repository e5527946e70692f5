//! The leader's ρ targets as the agent takes them (sans-IO): fenced by epoch, mapped to the
//! segments of their stage, and handed on as [`TargetUpdate`]s, so that the daemon applies them
//! through the same commitment check (Σρ ≤ 1) as `set-rate`.
//!
//! A decision is evaluated when its value changes, and again while it is refused as not the
//! leader's (the agent may hear a decision before it sees its author alive). Decisions are
//! evaluated in epoch order, so one batch cannot make an older decision look stale to a newer
//! one read first. A segment gets a stage's ρ once per admitted decision: a later `set-rate`
//! on the node is not fought, the next decision applies again.

use std::collections::{BTreeMap, HashMap};

use sair_mesh::leader::{Admission, Decision, Epoch, Fence};
use sair_shm::Mode;

use crate::target::TargetUpdate;
use sair_wire::keys::{self, RhoTarget};

/// What became of one decision read from the mesh (the `outcome` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// From the leader, not older than the newest epoch admitted: taken.
    Admitted,
    /// Older than an epoch already admitted: ignored.
    Stale,
    /// Not written by the member this agent sees as leader: ignored (re-read when that changes).
    NotLeader,
    /// Not a decision with a ρ body, or under a key that names no stage: ignored.
    Malformed,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Admitted,
        Outcome::Stale,
        Outcome::NotLeader,
        Outcome::Malformed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::Stale => "stale",
            Outcome::NotLeader => "not_leader",
            Outcome::Malformed => "malformed",
        }
    }
}

/// One `(member, key, value)` read from the mesh.
pub type Entry = (String, String, Vec<u8>);

/// The fence, the admitted targets and what was applied.
#[derive(Debug, Default)]
pub struct RhoBook {
    fence: Fence,
    /// Admitted ρ per (pipeline, stage), with the epoch that decided it.
    targets: BTreeMap<(String, String), (Epoch, f64)>,
    /// The last value evaluated per (member, key), and its outcome.
    seen: HashMap<(String, String), (Vec<u8>, Outcome)>,
    /// The decision last handed on per segment.
    applied: HashMap<String, (Epoch, f64)>,
}

impl RhoBook {
    /// The ρ admitted for `(pipeline, stage)`, if any.
    pub fn target(&self, pipeline: &str, stage: &str) -> Option<f64> {
        self.targets
            .get(&(pipeline.to_owned(), stage.to_owned()))
            .map(|(_, r)| *r)
    }

    /// The newest epoch admitted.
    pub fn newest(&self) -> Option<&Epoch> {
        self.fence.newest()
    }

    /// Learns the epoch claims (`ctl/epoch` of each member) while `leader` leads.
    pub fn observe(&mut self, claims: &[Entry], leader: Option<&str>) {
        for (member, _, value) in claims {
            if let Some(e) = Epoch::from_bytes(value)
                && e.leader == *member
            {
                self.fence.observe(&e, leader);
            }
        }
    }

    /// Evaluates the decisions under `ctl/rho/` whose value is new (or that were refused as
    /// not the leader's) and returns the outcome of each one evaluated. `decisions` is every
    /// decision the mesh holds now: what it no longer holds (a forgotten member's) is forgotten
    /// here too, so the book stays bounded by the mesh's state.
    pub fn evaluate(&mut self, decisions: Vec<Entry>, leader: Option<&str>) -> Vec<Outcome> {
        let held: std::collections::HashSet<(&str, &str)> = decisions
            .iter()
            .map(|(m, k, _)| (m.as_str(), k.as_str()))
            .collect();
        self.seen
            .retain(|(m, k), _| held.contains(&(m.as_str(), k.as_str())));
        let mut fresh: Vec<(Option<Decision>, String, String, Vec<u8>)> = decisions
            .into_iter()
            .filter(|(m, k, v)| match self.seen.get(&(m.clone(), k.clone())) {
                Some((old, outcome)) => old != v || *outcome == Outcome::NotLeader,
                None => true,
            })
            .map(|(m, k, v)| (Decision::from_bytes(&v), m, k, v))
            .collect();
        fresh.sort_by(|a, b| {
            let ea = a.0.as_ref().map(|d| &d.epoch);
            let eb = b.0.as_ref().map(|d| &d.epoch);
            ea.cmp(&eb)
        });
        let mut out = Vec::with_capacity(fresh.len());
        for (decision, member, key, value) in fresh {
            let outcome = self.admit(decision, &member, &key, leader);
            let id = (member, key);
            let repeat = self
                .seen
                .get(&id)
                .is_some_and(|(v, o)| *v == value && *o == outcome);
            self.seen.insert(id, (value, outcome));
            if !repeat {
                out.push(outcome);
            }
        }
        out
    }

    fn admit(
        &mut self,
        decision: Option<Decision>,
        member: &str,
        key: &str,
        leader: Option<&str>,
    ) -> Outcome {
        let (Some(d), Some((pipeline, stage))) = (decision, keys::parse_rho_key(key)) else {
            return Outcome::Malformed;
        };
        if d.epoch.leader != member {
            // Only the leader itself may publish under its epoch.
            return Outcome::NotLeader;
        }
        let Some(body) = keys::decode::<RhoTarget>(&d.body) else {
            return Outcome::Malformed;
        };
        match self.fence.admit(&d.epoch, leader) {
            Admission::Admitted => {
                self.targets
                    .insert((pipeline.to_owned(), stage.to_owned()), (d.epoch, body.rho));
                Outcome::Admitted
            }
            Admission::StaleEpoch { .. } => Outcome::Stale,
            Admission::NotLeader { .. } => Outcome::NotLeader,
        }
    }

    /// Target updates for the node's segments (`(name, mode)`) of a stage with an admitted ρ
    /// that they have not been handed yet. A `share` segment stays `share`; any other becomes
    /// `cap`.
    pub fn updates(&mut self, segments: &[(String, Mode)]) -> Vec<TargetUpdate> {
        self.applied
            .retain(|name, _| segments.iter().any(|(n, _)| n == name));
        let mut out = Vec::new();
        for (name, mode) in segments {
            let Some((pipeline, stage)) = keys::stage_of_segment(name) else {
                continue;
            };
            let Some(decided) = self
                .targets
                .get(&(pipeline.to_owned(), stage.to_owned()))
                .cloned()
            else {
                continue;
            };
            if self.applied.get(name) == Some(&decided) {
                continue;
            }
            out.push(TargetUpdate {
                segment: name.clone(),
                gpu: None,
                rate: decided.1,
                mode: if *mode == Mode::Share {
                    Mode::Share
                } else {
                    Mode::Cap
                },
            });
            self.applied.insert(name.clone(), decided);
        }
        out
    }
}
