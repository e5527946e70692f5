//! Segment registry and garbage-collection rule (sans-IO).
//!
//! The daemon feeds one [`Sighting`] per segment per control period; the registry answers which
//! segments are garbage. The rule: a segment is collected when **no attached process is alive**
//! and **nothing touched it** (no launch, no token consumed, no parameter change) for
//! `idle_after`. A segment just made by `set-rate` for a pod that has not started yet is kept for
//! the same period, which is why `idle_after` is minutes, not seconds. Explicit removal
//! (`sair-node-agent remove`) does not wait.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the daemon saw of one segment in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// Launches counter.
    pub launches: u64,
    /// Tokens consumed counter.
    pub tokens: u64,
    /// Parameter generation.
    pub generation: u64,
    /// Attached pids that are still alive.
    pub live_pids: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    last: Sighting,
    touched: Instant,
}

/// Known segments and when each was last touched.
#[derive(Debug, Clone)]
pub struct Registry {
    idle_after: Duration,
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// A registry that collects segments idle for `idle_after`.
    pub fn new(idle_after: Duration) -> Self {
        Registry {
            idle_after,
            entries: BTreeMap::new(),
        }
    }

    /// Records a sighting; a first sighting counts as a touch (an adopted segment gets a full
    /// idle period after an agent restart).
    pub fn observe(&mut self, name: &str, now: Instant, s: Sighting) {
        match self.entries.get_mut(name) {
            Some(e) => {
                let changed = e.last.launches != s.launches
                    || e.last.tokens != s.tokens
                    || e.last.generation != s.generation;
                if changed || s.live_pids > 0 {
                    e.touched = now;
                }
                e.last = s;
            }
            None => {
                self.entries.insert(
                    name.to_owned(),
                    Entry {
                        last: s,
                        touched: now,
                    },
                );
            }
        }
    }

    /// Forgets a segment (its file is gone or was removed).
    pub fn forget(&mut self, name: &str) {
        self.entries.remove(name);
    }

    /// Names of segments to collect now.
    pub fn garbage(&self, now: Instant) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                e.last.live_pids == 0 && now.saturating_duration_since(e.touched) >= self.idle_after
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Names currently known.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests;
