//! Lease leadership, sans-IO: what to do with a `coordination.k8s.io/v1` Lease as read from the
//! API server, given the time. The driver ([`super::leader`]) does the calls; this core only
//! takes what they returned and `now`, so every rule is unit-tested with a fake clock.
//!
//! The rules are client-go's `leaderelection` (what kube-controller-manager runs), because
//! operators already know how it behaves:
//!
//! - **Expiry is judged by the local clock**, from when *this* candidate first saw the record
//!   in its current form, never from the `renewTime` written by another machine: clocks of two
//!   nodes may disagree by more than a lease, monotonic time on one machine cannot. A candidate
//!   that starts beside a live leader therefore waits a whole `leaseDurationSeconds` of
//!   unchanged record before it takes over.
//! - **Every write carries the `resourceVersion` it read**, so of two candidates that race, the
//!   API server accepts one and answers the other 409 Conflict: the loser steps down at once.
//! - **A leader that cannot renew steps down by itself** after the renew deadline (two thirds
//!   of the lease), a third of a lease before any other candidate may take over, so two leaders
//!   never act at once even while the API server is unreachable to one of them.
//! - **The term** is `leaseTransitions`: it grows by one each time the holder changes and
//!   never otherwise, so it orders leaders the way the mesh's epoch fencing needs
//!   (`sair_mesh::leader::Epoch::term`).

use std::time::{Duration, Instant, SystemTime};

#[cfg(test)]
mod tests;

/// Shortest lease accepted: below it, renewals every third of a lease hammer the API server.
pub const MIN_LEASE: Duration = Duration::from_secs(3);
/// Longest lease accepted: beyond it, a dead leader stalls scaling for too long.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);
/// The default lease, as kube-controller-manager's: a dead leader is replaced within about
/// 15–20 s, renewals every 5 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// Longest `holderIdentity` accepted (the identity is a pod or mesh member name, a DNS name).
pub const MAX_IDENTITY_LEN: usize = 253;

/// Why a lease configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseConfigError {
    #[error("the lease holder identity must not be empty (give the pod or mesh member name)")]
    EmptyIdentity,
    #[error("the lease holder identity is {len} bytes, at most {MAX_IDENTITY_LEN} allowed")]
    IdentityTooLong { len: usize },
    #[error(
        "the lease duration must be whole seconds within {MIN_LEASE:?}..={MAX_LEASE:?}, got {got:?}"
    )]
    Duration { got: Duration },
}

/// Who competes for the lease and for how long a term lasts without renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    identity: String,
    duration: Duration,
}

impl LeaseConfig {
    /// `identity` is written as `holderIdentity` (unique per candidate: the pod name, or the
    /// coordinator's mesh `--node` name so that the Lease holder and the mesh member agree);
    /// `duration` is `leaseDurationSeconds`, whole seconds in [`MIN_LEASE`]`..=`[`MAX_LEASE`].
    pub fn try_new(
        identity: impl Into<String>,
        duration: Duration,
    ) -> Result<Self, LeaseConfigError> {
        let identity = identity.into();
        if identity.is_empty() {
            return Err(LeaseConfigError::EmptyIdentity);
        }
        if identity.len() > MAX_IDENTITY_LEN {
            return Err(LeaseConfigError::IdentityTooLong {
                len: identity.len(),
            });
        }
        if duration < MIN_LEASE || duration > MAX_LEASE || duration.subsec_nanos() != 0 {
            return Err(LeaseConfigError::Duration { got: duration });
        }
        Ok(Self { identity, duration })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How often a leader renews, and a follower looks again: a third of the lease, so a
    /// leader gets two more tries before its renew deadline.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// How long after its last successful renewal a leader still acts: two thirds of the lease,
    /// leaving a third as margin before a follower may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn duration_seconds(&self) -> u32 {
        // Validated ≤ 3600 s in `try_new`.
        u32::try_from(self.duration.as_secs()).unwrap_or(u32::MAX)
    }
}

/// The fields of a Lease this core reads and writes (the driver converts to and from
/// `k8s_openapi`'s `Lease`, keeping every other field of the object as it was read).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; `None` or empty: nobody holds it (released).
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` (absent or not positive: this candidate's own duration).
    pub duration_seconds: Option<u32>,
    pub acquire_time: Option<SystemTime>,
    pub renew_time: Option<SystemTime>,
    /// `spec.leaseTransitions` (absent or negative: 0).
    pub transitions: u32,
    /// `metadata.resourceVersion`: `None` only for a Lease still to be created.
    pub resource_version: Option<String>,
}

impl LeaseRecord {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What the driver must do after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No Lease exists: create this one (a 409 AlreadyExists answer is a lost race).
    Create(LeaseRecord),
    /// Write this record with the `resourceVersion` it carries (a renewal, or a take-over of
    /// an expired or released lease); 409 Conflict is a lost race.
    Update(LeaseRecord),
    /// Another candidate holds a live lease: nothing to write.
    Follow { holder: String },
}

/// Where this candidate stands, as published to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// This candidate's `holderIdentity`.
    pub identity: String,
    /// The holder last seen (this candidate included), if any.
    pub holder: Option<String>,
    /// The term of the holder last seen: `leaseTransitions`.
    pub term: u64,
    /// While leading: the instant until which this candidate may act without another
    /// successful renewal (the renew deadline). `None` while not leading.
    pub leading_until: Option<Instant>,
}

impl Leadership {
    /// Whether this candidate leads at `now`. Time-checked, so that a driver that stalls (or an
    /// API server that stops answering) ends leadership on its own.
    pub fn is_leader_at(&self, now: Instant) -> bool {
        self.leading_until.is_some_and(|until| now < until)
    }
}

#[derive(Debug, Clone)]
struct Observed {
    record: LeaseRecord,
    /// When this candidate first saw `record` in this exact form (its local clock).
    since: Instant,
}

/// The state machine of one candidate.
#[derive(Debug, Clone)]
pub struct LeaseCore {
    config: LeaseConfig,
    observed: Option<Observed>,
    /// `Some(instant of the last accepted write's request)` while leading.
    renewed_at: Option<Instant>,
}

impl LeaseCore {
    pub fn new(config: LeaseConfig) -> Self {
        Self {
            config,
            observed: None,
            renewed_at: None,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The API server answered a read at `now` (`None`: no such Lease). `wall` is the time to
    /// write as `renewTime`/`acquireTime` (for people and other clients; never used to decide).
    pub fn on_read(&mut self, now: Instant, wall: SystemTime, lease: Option<LeaseRecord>) -> Plan {
        let Some(record) = lease else {
            self.step_down();
            self.observed = None;
            return Plan::Create(LeaseRecord {
                holder: Some(self.config.identity.clone()),
                duration_seconds: Some(self.config.duration_seconds()),
                acquire_time: Some(wall),
                renew_time: Some(wall),
                transitions: 0,
                resource_version: None,
            });
        };
        self.observe(now, record.clone());
        let since = self.observed.as_ref().map_or(now, |o| o.since);
        match record.holder() {
            Some(holder) if holder == self.config.identity => Plan::Update(LeaseRecord {
                duration_seconds: Some(self.config.duration_seconds()),
                renew_time: Some(wall),
                acquire_time: record.acquire_time.or(Some(wall)),
                ..record
            }),
            Some(holder) if now < since + self.lease_of(&record) => {
                // Someone else renews in time. If we thought we led, we lost it while we could
                // not renew: step down now rather than at the deadline.
                let holder = holder.to_owned();
                self.step_down();
                Plan::Follow { holder }
            }
            // Released (no holder), or held by someone who has not renewed for a whole lease.
            _ => {
                self.step_down();
                Plan::Update(LeaseRecord {
                    holder: Some(self.config.identity.clone()),
                    duration_seconds: Some(self.config.duration_seconds()),
                    acquire_time: Some(wall),
                    renew_time: Some(wall),
                    transitions: record.transitions.saturating_add(1),
                    resource_version: record.resource_version,
                })
            }
        }
    }

    /// The API server accepted a create or update sent at `sent_at`, answering `lease`.
    /// Leadership counts from the request, not the answer: the server may have applied it at
    /// any moment in between, so the earlier instant is the safe one.
    pub fn on_written(&mut self, sent_at: Instant, lease: LeaseRecord) {
        let ours = lease.holder() == Some(self.config.identity.as_str());
        self.observed = Some(Observed {
            record: lease,
            since: sent_at,
        });
        self.renewed_at = if ours { Some(sent_at) } else { None };
    }

    /// Another candidate wrote first (409 Conflict on update, AlreadyExists on create): step
    /// down at once; the next read shows who holds the lease now.
    pub fn on_conflict(&mut self) {
        self.step_down();
    }

    /// A call failed for another reason (unreachable API server, 403, 5xx). Nothing changes:
    /// a leader keeps acting until its renew deadline passes ([`Leadership::is_leader_at`]),
    /// and the next round tries again.
    pub fn on_error(&mut self) {}

    /// What to write to give the lease up on shutdown, if this candidate holds it: no holder,
    /// a one-second lease, the same term (the next holder's write counts the transition).
    pub fn release(&mut self, wall: SystemTime) -> Option<LeaseRecord> {
        let record = self.observed.as_ref()?.record.clone();
        if record.holder() != Some(self.config.identity.as_str()) {
            return None;
        }
        self.step_down();
        Some(LeaseRecord {
            holder: None,
            duration_seconds: Some(1),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            ..record
        })
    }

    /// Where this candidate stands now.
    pub fn leadership(&self) -> Leadership {
        let record = self.observed.as_ref().map(|o| &o.record);
        Leadership {
            identity: self.config.identity.clone(),
            holder: record.and_then(|r| r.holder().map(str::to_owned)),
            term: record.map_or(0, |r| u64::from(r.transitions)),
            leading_until: self.renewed_at.map(|at| at + self.config.renew_deadline()),
        }
    }

    /// When the driver should read again after a round that started at `now`: a third of a
    /// lease later, or as soon as another holder's lease runs out, whichever is first.
    pub fn next_round(&self, now: Instant) -> Instant {
        let regular = now + self.config.renew_every();
        match &self.observed {
            Some(o) if self.renewed_at.is_none() && o.record.holder().is_some() => {
                regular.min((o.since + self.lease_of(&o.record)).max(now))
            }
            _ => regular,
        }
    }

    fn observe(&mut self, now: Instant, record: LeaseRecord) {
        match &self.observed {
            Some(o) if o.record == record => {}
            _ => self.observed = Some(Observed { record, since: now }),
        }
    }

    fn step_down(&mut self) {
        self.renewed_at = None;
    }

    /// The lease the holder announced, or this candidate's own when it announced none.
    fn lease_of(&self, record: &LeaseRecord) -> Duration {
        match record.duration_seconds {
            Some(s) if s > 0 => Duration::from_secs(u64::from(s)),
            _ => self.config.duration,
        }
    }
}
