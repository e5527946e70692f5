//! Leadership of the policy loop, fenced by an epoch.
//!
//! **Who may claim** ([`Candidacy`]) depends on whether an outside authority elects the leader:
//! - [`Candidacy::LowestName`] (the mesh's own rule, without an authority): among the
//!   coordinators this member sees alive (itself included), the one with the lowest name claims;
//! - [`Candidacy::Holder`] / [`Candidacy::NotHolder`] (an authority such as a Kubernetes Lease
//!   elects): a coordinator claims only while it holds the authority's grant, and its claim's
//!   term is at least the authority's term (the Lease's `leaseTransitions`).
//!
//! **Who leads, everywhere:** the live coordinator whose claim is the newest ([`leader_of`]).
//! A claimant claims an [`Epoch`] — a term above every term it has seen (and at least the
//! authority's), with its own name — and publishes it under [`EPOCH_KEY`]; every decision it
//! publishes carries that epoch ([`Decision`]). A claim is not withdrawn when its author stops
//! claiming: it carries the term history, so a new claimant claims above a deposed leader's
//! term even if it never saw that leader lead. A dead coordinator's claim is forgotten with it,
//! so agents keep the newest epoch they have seen under their own [`EPOCH_KEY`] (never a claim:
//! only a coordinator's own epoch is one), and the history outlives every coordinator. A receiver admits a decision only if it comes from the leader it sees now
//! *and* its epoch is not older than the newest epoch it has admitted ([`Fence`]). After a
//! partition heals (or a Lease changes hands), the claimant sees its rival's term, claims above
//! it, and the rival's decisions are refused both because it no longer leads and because their
//! epoch is now stale.

use bincode::{Decode, Encode};

/// The control key under which a coordinator publishes the epoch it claims.
pub const EPOCH_KEY: &str = "ctl/epoch";

/// A leader's term, ordered by `(term, leader)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Epoch {
    pub term: u64,
    pub leader: String,
}

/// A decision as it travels: the epoch of the leader that took it, and its body.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Decision {
    pub epoch: Epoch,
    pub body: Vec<u8>,
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 64 * 1024 }>,
> {
    bincode::config::standard().with_limit::<{ 64 * 1024 }>()
}

impl Epoch {
    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::encode_to_vec(self, config()).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bincode::decode_from_slice(bytes, config())
            .ok()
            .map(|(e, _)| e)
    }
}

impl Decision {
    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::encode_to_vec(self, config()).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bincode::decode_from_slice(bytes, config())
            .ok()
            .map(|(d, _)| d)
    }
}

/// Who may claim leadership (see the module docs). Every coordinator of a cluster must use the
/// same rule: all [`Candidacy::LowestName`], or all the authority's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Candidacy {
    /// No outside authority: the lowest-named live coordinator claims.
    #[default]
    LowestName,
    /// This coordinator holds the authority's grant (the Kubernetes Lease) with this term: it
    /// claims an epoch of at least this term.
    Holder { term: u64 },
    /// An authority elects and this coordinator does not hold its grant: it does not claim.
    NotHolder,
}

/// The lowest name among `coordinators` (names of live coordinators, this member included if
/// it is one): the one that claims under [`Candidacy::LowestName`].
pub fn lowest_name<'a>(coordinators: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    coordinators.into_iter().min()
}

/// The leader: the newest of `claims`, the epoch claims of live coordinators, each read from
/// its own author's [`EPOCH_KEY`] (a claim naming another member than its author must be
/// dropped by the caller).
pub fn leader_of<'a>(claims: impl IntoIterator<Item = &'a Epoch>) -> Option<&'a Epoch> {
    claims.into_iter().max()
}

/// The epoch this member must claim when it leads: above every epoch it has seen (its own
/// included) and at least `floor` (the authority's term, 0 without one), unless its current
/// claim already is the newest and meets the floor.
pub fn next_claim<'a>(
    me: &str,
    current: Option<&Epoch>,
    seen: impl IntoIterator<Item = &'a Epoch>,
    floor: u64,
) -> Option<Epoch> {
    let newest = seen.into_iter().max();
    match (current, newest) {
        (Some(c), Some(n)) if c.leader == me && c >= n && c.term >= floor => None,
        (Some(c), None) if c.leader == me && c.term >= floor => None,
        (c, n) => {
            let top = c.map_or(0, |c| c.term).max(n.map_or(0, |n| n.term));
            // Terms arrive from peers: a corrupt or hostile u64::MAX must not panic (or wrap
            // to a term every fence refuses); at the top the claim stays at u64::MAX.
            Some(Epoch {
                term: top.saturating_add(1).max(floor),
                leader: me.to_owned(),
            })
        }
    }
}

/// Why a decision was or was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Older than an epoch already admitted.
    StaleEpoch {
        got: Epoch,
        newest: Epoch,
    },
    /// Not from the member this one sees as leader.
    NotLeader {
        from: String,
        leader: Option<String>,
    },
}

/// The receiving side of fencing: remembers the newest admitted epoch.
#[derive(Debug, Default, Clone)]
pub struct Fence {
    newest: Option<Epoch>,
}

impl Fence {
    pub fn newest(&self) -> Option<&Epoch> {
        self.newest.as_ref()
    }

    /// Learns of an epoch claim (from [`EPOCH_KEY`]) by the leader seen now, so that older
    /// decisions are refused even before a decision of the new epoch arrives.
    pub fn observe(&mut self, epoch: &Epoch, leader: Option<&str>) {
        if leader == Some(epoch.leader.as_str()) && self.newest.as_ref().is_none_or(|n| epoch > n) {
            self.newest = Some(epoch.clone());
        }
    }

    /// Admits a decision of `epoch` if its author leads now and the epoch is not stale.
    pub fn admit(&mut self, epoch: &Epoch, leader: Option<&str>) -> Admission {
        if leader != Some(epoch.leader.as_str()) {
            return Admission::NotLeader {
                from: epoch.leader.clone(),
                leader: leader.map(str::to_owned),
            };
        }
        if let Some(n) = &self.newest
            && epoch < n
        {
            return Admission::StaleEpoch {
                got: epoch.clone(),
                newest: n.clone(),
            };
        }
        self.newest = Some(epoch.clone());
        Admission::Admitted
    }
}

#[cfg(test)]
mod tests;
