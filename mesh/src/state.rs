//! Per-member versioned key–value state, spread scuttlebutt-style.
//!
//! Every member owns the keys it writes. Each write takes the next version of the key's
//! [`Class`] on that member; a digest says, per member, the highest version of each class a
//! holder has, and a delta carries every newer entry of that member in ascending version order,
//! so whatever prefix fits the budget leaves the receiver consistent. Versions, never wall
//! clocks, decide what is newer: skew between machines cannot reorder anything.
//!
//! Priority: the control class (keys under [`CONTROL_PREFIX`]) of *every* member is packed
//! before any bulk key, so a flood of bulk updates can delay bulk keys but never control keys.
//! Each class has its own version counter, which keeps both prefixes valid.
//!
//! Bounds: a member holds at most [`StateLimits::max_keys`] keys and
//! [`StateLimits::max_bytes`] bytes of keys and values (deletions count until they are
//! overwritten). Members declared dead stop being advertised at once; forgotten members are
//! removed and refused for a grace period, so no member is gossiped forever.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::error::StateError;
use crate::message::{DigestEntry, Entry, MemberDelta};

/// Keys under this prefix are control keys (policy epoch, ρ targets, replica intents).
pub const CONTROL_PREFIX: &str = "ctl/";

/// The two priority classes; control goes first in every exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Control,
    Bulk,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::Control, Class::Bulk];

    /// The class of a key, from its prefix.
    pub fn of(key: &str) -> Class {
        if key.starts_with(CONTROL_PREFIX) {
            Class::Control
        } else {
            Class::Bulk
        }
    }
}

/// Size bounds of the state and of one exchange.
#[derive(Debug, Clone)]
pub struct StateLimits {
    /// Keys one member may hold (tombstones included).
    pub max_keys: usize,
    /// Bytes of keys plus values one member may hold.
    pub max_bytes: usize,
    /// Longest key (bytes).
    pub max_key_bytes: usize,
    /// Largest value (bytes).
    pub max_value_bytes: usize,
    /// Budget of the delta in an ordinary exchange.
    pub exchange_bytes: usize,
    /// Budget of the delta when the peer is far behind (new or back from a partition).
    pub catchup_bytes: usize,
    /// How far behind (versions summed over members and classes, or any member missing) a peer
    /// must be to get the catch-up budget.
    pub catchup_gap: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_keys: 4096,
            max_bytes: 256 * 1024,
            max_key_bytes: 256,
            max_value_bytes: 16 * 1024,
            exchange_bytes: 64 * 1024,
            catchup_bytes: 960 * 1024,
            catchup_gap: 64,
        }
    }
}

/// A key that changed in the local view, for subscribers and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub member: String,
    pub key: String,
    pub version: u64,
    /// `None`: deleted.
    pub value: Option<Vec<u8>>,
    pub written_unix_ms: u64,
}

#[derive(Debug, Clone)]
struct Stored {
    version: u64,
    value: Option<Vec<u8>>,
    written_unix_ms: u64,
}

#[derive(Debug, Default)]
struct MemberState {
    generation: u64,
    entries: BTreeMap<String, Stored>,
    control: u64,
    bulk: u64,
    bytes: usize,
    /// Not advertised nor sent (declared dead); its entries wait to be forgotten.
    dead: bool,
}

impl MemberState {
    fn watermark(&self, class: Class) -> u64 {
        match class {
            Class::Control => self.control,
            Class::Bulk => self.bulk,
        }
    }

    fn raise(&mut self, class: Class, to: u64) {
        let w = match class {
            Class::Control => &mut self.control,
            Class::Bulk => &mut self.bulk,
        };
        *w = (*w).max(to);
    }
}

fn stored_size(key: &str, value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len)
}

fn entry_cost(key: &str, value: &Option<Vec<u8>>) -> usize {
    stored_size(key, value) + 24
}

/// What [`StateStore::apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    pub changes: Vec<Change>,
    /// Entries refused: from a forgotten or dead member, or over a member's bound.
    pub refused: u64,
}

/// The local copy of every live member's state, this member's own included.
#[derive(Debug)]
pub struct StateStore {
    own: String,
    limits: StateLimits,
    members: BTreeMap<String, MemberState>,
    /// Forgotten members: refused up to this generation until this instant.
    forgotten: HashMap<String, (u64, Instant)>,
    rotate: usize,
}

impl StateStore {
    pub fn new(own: &str, generation: u64, limits: StateLimits) -> Self {
        let mut members = BTreeMap::new();
        members.insert(
            own.to_owned(),
            MemberState {
                generation,
                ..MemberState::default()
            },
        );
        Self {
            own: own.to_owned(),
            limits,
            members,
            forgotten: HashMap::new(),
            rotate: 0,
        }
    }

    pub fn limits(&self) -> &StateLimits {
        &self.limits
    }

    /// This member's own generation changed (foca renewed its identity): peers reset their
    /// copy and fetch it again; the versions go on.
    pub fn set_own_generation(&mut self, generation: u64) {
        if let Some(st) = self.members.get_mut(&self.own) {
            st.generation = generation;
        }
    }

    /// Writes (or, with `None`, deletes) one of this member's keys.
    pub fn set(
        &mut self,
        key: &str,
        value: Option<Vec<u8>>,
        now_unix_ms: u64,
    ) -> Result<Change, StateError> {
        let limits = &self.limits;
        if key.is_empty()
            || key.len() > limits.max_key_bytes
            || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(StateError::BadKey {
                key: key.to_owned(),
                max: limits.max_key_bytes,
            });
        }
        if let Some(v) = &value
            && v.len() > limits.max_value_bytes
        {
            return Err(StateError::ValueTooLarge {
                key: key.to_owned(),
                len: v.len(),
                max: limits.max_value_bytes,
            });
        }
        let (max_keys, max_bytes) = (limits.max_keys, limits.max_bytes);
        let st = self.members.entry(self.own.clone()).or_default();
        let old = st
            .entries
            .get(key)
            .map_or(0, |s| stored_size(key, &s.value));
        let keys = st.entries.len() + usize::from(!st.entries.contains_key(key));
        let bytes = st.bytes - old + stored_size(key, &value);
        if keys > max_keys || bytes > max_bytes {
            return Err(StateError::Full {
                keys,
                bytes,
                max_keys,
                max_bytes,
            });
        }
        let class = Class::of(key);
        let version = st.watermark(class) + 1;
        st.raise(class, version);
        st.bytes = bytes;
        st.entries.insert(
            key.to_owned(),
            Stored {
                version,
                value: value.clone(),
                written_unix_ms: now_unix_ms,
            },
        );
        Ok(Change {
            member: self.own.clone(),
            key: key.to_owned(),
            version,
            value,
            written_unix_ms: now_unix_ms,
        })
    }

    /// The current value of `member`'s `key`, if live and not deleted.
    pub fn get(&self, member: &str, key: &str) -> Option<&[u8]> {
        let st = self.members.get(member)?;
        if st.dead {
            return None;
        }
        st.entries.get(key)?.value.as_deref()
    }

    /// Every live `(member, key, value)` whose key starts with `prefix`.
    pub fn scan<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a [u8])> {
        self.members
            .iter()
            .filter(|(_, st)| !st.dead)
            .flat_map(move |(m, st)| {
                st.entries
                    .range(prefix.to_owned()..)
                    .take_while(move |(k, _)| k.starts_with(prefix))
                    .filter_map(move |(k, s)| {
                        s.value.as_deref().map(|v| (m.as_str(), k.as_str(), v))
                    })
            })
    }

    /// Names of the members whose state is held (live or waiting to be forgotten).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// Sum of keys held for live members.
    pub fn live_keys(&self) -> usize {
        self.members
            .values()
            .filter(|s| !s.dead)
            .map(|s| s.entries.len())
            .sum()
    }

    /// What this member holds, per live member, sorted by name.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.members
            .iter()
            .filter(|(_, st)| !st.dead)
            .map(|(m, st)| DigestEntry {
                member: m.clone(),
                generation: st.generation,
                control: st.control,
                bulk: st.bulk,
            })
            .collect()
    }

    /// A stable 64-bit hash (FNV-1a) of [`Self::digest`]: equal digests, equal hashes, on every
    /// build and machine.
    pub fn digest_hash(&self) -> u64 {
        hash_digest(&self.digest())
    }

    /// Whether `theirs` is far enough behind for the catch-up budget.
    fn far_behind(&self, theirs: &HashMap<&str, &DigestEntry>) -> bool {
        let mut gap = 0u64;
        for (m, st) in self.members.iter().filter(|(_, st)| !st.dead) {
            match theirs.get(m.as_str()) {
                None => return true,
                Some(d) if d.generation < st.generation => return true,
                Some(d) if d.generation == st.generation => {
                    gap += st.control.saturating_sub(d.control) + st.bulk.saturating_sub(d.bulk);
                }
                Some(_) => {}
            }
        }
        gap > self.limits.catchup_gap
    }

    /// What a peer with digest `theirs` lacks, control class first, within the budget.
    pub fn delta_for(&mut self, theirs: &[DigestEntry]) -> Vec<MemberDelta> {
        let theirs: HashMap<&str, &DigestEntry> =
            theirs.iter().map(|d| (d.member.as_str(), d)).collect();
        let mut budget = if self.far_behind(&theirs) {
            self.limits.catchup_bytes
        } else {
            self.limits.exchange_bytes
        };
        // Rotate the starting member so that a tight budget does not always favour the same.
        let live: Vec<&String> = self
            .members
            .iter()
            .filter(|(_, st)| !st.dead)
            .map(|(m, _)| m)
            .collect();
        if live.is_empty() {
            return Vec::new();
        }
        self.rotate = self.rotate.wrapping_add(1);
        let start = self.rotate % live.len();
        let order: Vec<&String> = live[start..]
            .iter()
            .chain(&live[..start])
            .copied()
            .collect();
        let mut out: BTreeMap<&str, MemberDelta> = BTreeMap::new();
        // Members the peer does not know (in this generation) are announced even when they
        // hold nothing yet, so that digests at rest are equal.
        for m in &order {
            let st = &self.members[*m];
            let unknown = theirs
                .get(m.as_str())
                .is_none_or(|d| d.generation < st.generation);
            let header = m.len() + 40;
            if unknown && budget >= header {
                budget -= header;
                out.insert(
                    m.as_str(),
                    MemberDelta {
                        member: (*m).clone(),
                        generation: st.generation,
                        control_up_to: 0,
                        bulk_up_to: 0,
                        entries: Vec::new(),
                    },
                );
            }
        }
        for class in Class::ALL {
            for m in &order {
                let st = &self.members[*m];
                let from = match theirs.get(m.as_str()) {
                    Some(d) if d.generation == st.generation => match class {
                        Class::Control => d.control,
                        Class::Bulk => d.bulk,
                    },
                    Some(d) if d.generation > st.generation => continue,
                    _ => 0,
                };
                let top = st.watermark(class);
                if top <= from {
                    continue;
                }
                let header = m.len() + 40;
                if !out.contains_key(m.as_str()) {
                    if budget < header {
                        continue;
                    }
                    budget -= header;
                }
                let md = out.entry(m.as_str()).or_insert_with(|| MemberDelta {
                    member: (*m).clone(),
                    generation: st.generation,
                    control_up_to: 0,
                    bulk_up_to: 0,
                    entries: Vec::new(),
                });
                let mut newer: Vec<(&String, &Stored)> = st
                    .entries
                    .iter()
                    .filter(|(k, s)| s.version > from && Class::of(k) == class)
                    .collect();
                newer.sort_by_key(|(_, s)| s.version);
                let mut up_to = top;
                for (k, s) in newer {
                    let cost = entry_cost(k, &s.value);
                    if cost > budget {
                        up_to = md
                            .entries
                            .iter()
                            .filter(|e| Class::of(&e.key) == class)
                            .map(|e| e.version)
                            .max()
                            .unwrap_or(from);
                        break;
                    }
                    budget -= cost;
                    md.entries.push(Entry {
                        key: k.clone(),
                        version: s.version,
                        value: s.value.clone(),
                        written_unix_ms: s.written_unix_ms,
                    });
                }
                match class {
                    Class::Control => md.control_up_to = up_to,
                    Class::Bulk => md.bulk_up_to = up_to,
                }
            }
        }
        out.into_values().collect()
    }

    /// Applies a peer's delta; returns what changed here.
    pub fn apply(&mut self, deltas: Vec<MemberDelta>, now: Instant) -> Applied {
        let mut applied = Applied::default();
        let (max_keys, max_bytes) = (self.limits.max_keys, self.limits.max_bytes);
        for d in deltas {
            if d.member == self.own {
                continue;
            }
            if let Some((generation, until)) = self.forgotten.get(&d.member)
                && d.generation <= *generation
                && now < *until
            {
                applied.refused += d.entries.len() as u64;
                continue;
            }
            let st = self
                .members
                .entry(d.member.clone())
                .or_insert_with(|| MemberState {
                    generation: d.generation,
                    ..MemberState::default()
                });
            if st.generation > d.generation || (st.dead && st.generation == d.generation) {
                applied.refused += d.entries.len() as u64;
                continue;
            }
            if st.generation < d.generation {
                // A new life of this member: what we held of the old one is void.
                for (key, _) in std::mem::take(&mut st.entries) {
                    applied.changes.push(Change {
                        member: d.member.clone(),
                        key,
                        version: 0,
                        value: None,
                        written_unix_ms: 0,
                    });
                }
                *st = MemberState {
                    generation: d.generation,
                    ..MemberState::default()
                };
            }
            // Control entries first: they reach subscribers first.
            let mut entries = d.entries;
            entries.sort_by_key(|e| (Class::of(&e.key) == Class::Bulk, e.version));
            for e in entries {
                let class = Class::of(&e.key);
                if e.version <= st.watermark(class) {
                    continue;
                }
                if st
                    .entries
                    .get(&e.key)
                    .is_some_and(|s| s.version >= e.version)
                {
                    continue;
                }
                let old = st
                    .entries
                    .get(&e.key)
                    .map_or(0, |s| stored_size(&e.key, &s.value));
                let keys = st.entries.len() + usize::from(!st.entries.contains_key(&e.key));
                let bytes = st.bytes - old + stored_size(&e.key, &e.value);
                if keys > max_keys || bytes > max_bytes {
                    applied.refused += 1;
                    continue;
                }
                st.bytes = bytes;
                st.entries.insert(
                    e.key.clone(),
                    Stored {
                        version: e.version,
                        value: e.value.clone(),
                        written_unix_ms: e.written_unix_ms,
                    },
                );
                applied.changes.push(Change {
                    member: d.member.clone(),
                    key: e.key,
                    version: e.version,
                    value: e.value,
                    written_unix_ms: e.written_unix_ms,
                });
            }
            st.raise(Class::Control, d.control_up_to);
            st.raise(Class::Bulk, d.bulk_up_to);
        }
        applied
    }

    /// Membership says `member` (at `generation`) is dead: stop advertising its state.
    pub fn mark_dead(&mut self, member: &str, generation: u64) {
        if let Some(st) = self.members.get_mut(member)
            && st.generation <= generation
            && member != self.own
        {
            st.dead = true;
        }
    }

    /// Membership says `member` is alive at `generation`.
    pub fn mark_alive(&mut self, member: &str, generation: u64) {
        if let Some(st) = self.members.get_mut(member) {
            if st.generation < generation {
                *st = MemberState {
                    generation,
                    ..MemberState::default()
                };
            } else if st.generation == generation {
                st.dead = false;
            }
        }
        self.forgotten.remove(member);
    }

    /// Membership forgot `member`: drop its state and refuse it until `until`.
    pub fn forget(&mut self, member: &str, generation: u64, until: Instant) -> bool {
        if member == self.own {
            return false;
        }
        let removed = match self.members.get(member) {
            Some(st) if st.generation <= generation => self.members.remove(member).is_some(),
            _ => false,
        };
        self.forgotten
            .insert(member.to_owned(), (generation, until));
        removed
    }

    /// Drops expired entries of the forgotten list.
    pub fn expire(&mut self, now: Instant) {
        self.forgotten.retain(|_, (_, until)| now < *until);
    }

    /// Names forgotten and still refused.
    pub fn forgotten(&self) -> impl Iterator<Item = &str> {
        self.forgotten.keys().map(String::as_str)
    }
}

/// FNV-1a over the digest's fields.
pub fn hash_digest(digest: &[DigestEntry]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for d in digest {
        eat(&(d.member.len() as u64).to_le_bytes());
        eat(d.member.as_bytes());
        eat(&d.generation.to_le_bytes());
        eat(&d.control.to_le_bytes());
        eat(&d.bulk.to_le_bytes());
    }
    h
}

/// How long a forgotten member is refused, by default.
pub const FORGET_GRACE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
