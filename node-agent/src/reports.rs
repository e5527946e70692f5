//! The latest `StageReport` per (pipeline, stage, replica) (sans-IO).
//!
//! Label sets on `/metrics` must stay bounded, so the store holds at most `capacity` keys; a
//! report for a new key when full evicts the key heard from least recently. Reports that fail
//! [`StageReport::validate`] are refused and counted by the caller.

use sair_wire::StageReport;
use std::collections::HashMap;
use std::time::Instant;

/// (pipeline, stage, replica).
pub type ReportKey = (String, String, String);

/// What [`ReportStore::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; a key was evicted to make room, if `Some`.
    Stored {
        /// The evicted key.
        evicted: Option<ReportKey>,
    },
    /// Refused: the report does not validate.
    Invalid(String),
}

/// Latest report per key.
#[derive(Debug)]
pub struct ReportStore {
    capacity: usize,
    latest: HashMap<ReportKey, (Instant, StageReport)>,
}

impl ReportStore {
    /// A store holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        ReportStore {
            capacity: capacity.max(1),
            latest: HashMap::new(),
        }
    }

    /// Validates and stores `report` as the latest of its key.
    pub fn accept(&mut self, report: StageReport, now: Instant) -> Accepted {
        if let Err(why) = report.validate() {
            return Accepted::Invalid(why);
        }
        let key = (
            report.pipeline.clone(),
            report.stage.clone(),
            report.replica.clone(),
        );
        let mut evicted = None;
        if !self.latest.contains_key(&key) && self.latest.len() >= self.capacity {
            let oldest = self
                .latest
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.latest.remove(&k);
                evicted = Some(k);
            }
        }
        self.latest.insert(key, (now, report));
        Accepted::Stored { evicted }
    }

    /// The latest report of a key.
    pub fn get(&self, key: &ReportKey) -> Option<&StageReport> {
        self.latest.get(key).map(|(_, r)| r)
    }

    /// Every latest report held (the mesh publishes them).
    pub fn iter(&self) -> impl Iterator<Item = &StageReport> {
        self.latest.values().map(|(_, r)| r)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// True when no report was stored.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

#[cfg(test)]
mod tests;
