//! The sans-IO heart of a member: foca's SWIM, the key–value state, leadership and local
//! health, driven by messages and `now`, answering with [`Action`]s and [`Event`]s.
//!
//! It owns no socket, task or clock. The driver feeds it datagrams ([`MeshCore::handle_datagram`]),
//! stream frames ([`MeshCore::handle_stream`]) and time ([`MeshCore::tick`] at
//! [`MeshCore::next_deadline`]), then drains [`MeshCore::poll_action`] and
//! [`MeshCore::poll_event`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Foca, Incarnation, Member, NoCustomBroadcast, OwnedNotification, State, Timer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::MeshConfig;
use crate::error::StateError;
use crate::frame;
use crate::id::{MemberId, Role};
use crate::leader::{self, Candidacy, Decision, EPOCH_KEY, Epoch};
use crate::message::{MeshBody, MeshFrame};
use crate::metrics::{FrameRefusal, MemberState, MeshMetrics};
use crate::state::{Change, Class, StateStore};
use crate::swim::{SwimCodec, SwimOut, foca_config};

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this datagram payload (an encoded [`MeshFrame`]) to `to`.
    Datagram { to: SocketAddr, bytes: Vec<u8> },
    /// Open a stream to `to`, send `frame`, then relay frames between the stream and
    /// [`MeshCore::handle_stream`] until it answers `None`.
    Sync { to: SocketAddr, frame: MeshFrame },
}

/// Something that happened, for subscribers and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// This member joined a cluster (some member knows it).
    Joined,
    /// This member knows no live member any more.
    Isolated,
    MemberUp(MemberId),
    MemberDown(MemberId),
    /// A dead member's state was dropped; it is refused for a grace period.
    MemberForgotten(String),
    /// A key changed in the local view (this member's own writes included).
    Changed(Change),
    /// The member this one sees as leader changed.
    LeaderChanged(Option<String>),
}

#[derive(Debug)]
struct Scheduled {
    due: Instant,
    seq: u64,
    timer: Timer<MemberId>,
    /// Already postponed once for local health.
    deferred: bool,
}

/// Rounds of full-fanout stream exchanges after a change is seen; then, until the next change,
/// one digest-hash datagram per round.
pub const HOT_ROUNDS: u32 = 10;

/// Highest local-health score (Lifeguard's "local health multiplier" upper bound).
pub const MAX_HEALTH: u32 = 8;

/// Counters kept by the core (the metrics carry the same numbers).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CoreStats {
    pub rounds: u64,
    /// State exchanges this member opened.
    pub exchanges: u64,
    pub frames_refused: u64,
    pub swim_errors: u64,
    pub entries_refused: u64,
    pub deferred_accusations: u64,
    /// Suspicions this member held unrefuted past its own deadline and declared down itself
    /// (see `MeshCore::expire_suspicions`).
    pub suspicions_expired: u64,
}

/// One member's protocol state.
pub struct MeshCore {
    id: MemberId,
    config: MeshConfig,
    foca: Foca<MemberId, SwimCodec, StdRng, NoCustomBroadcast>,
    rng: StdRng,
    timers: Vec<Scheduled>,
    seq: u64,
    state: StateStore,
    seeds: Vec<SocketAddr>,
    next_join: Option<Instant>,
    next_round: Instant,
    /// Whether [`Self::hurry`] already pushed once since the last scheduled round.
    hurried: bool,
    /// When this member last learnt of a member whose name it did not know; see
    /// [`Self::grow_roster`].
    roster_grew: Option<Instant>,
    /// Names of the members this one has seen come up and not yet forgotten (bounded by the
    /// cluster's members): a member that flaps (down, then up under a new generation) is not
    /// news about the roster, and must not start roster requests, which would add traffic to
    /// a cluster that is already struggling.
    seen_names: std::collections::HashSet<String>,
    next_roster_ask: Instant,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    anchor: (Instant, u64),
    health: u32,
    /// Every suspicion this member holds, by member and incarnation, with when it first held
    /// it (bounded by the members foca knows); see [`Self::expire_suspicions`].
    suspicions: Vec<(MemberId, Incarnation, Instant)>,
    /// Who may claim: the mesh's own rule, or an outside authority's grant.
    candidacy: Candidacy,
    /// Whether this member claims now (see [`leader`]).
    claiming: bool,
    claim: Option<Epoch>,
    /// The newest epoch ever seen from any coordinator, dead ones included.
    newest_epoch: Option<Epoch>,
    leader: Option<String>,
    joined: bool,
    /// Rounds left at full fanout since this member last saw a change; at rest it sends its
    /// digest hash to one peer per round in a datagram instead of opening streams.
    hot_rounds: u32,
    /// Set by [`Self::leave`]: foca then reports this member defunct, as expected.
    leaving: bool,
    stats: CoreStats,
    metrics: MeshMetrics,
}

impl std::fmt::Debug for MeshCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCore")
            .field("id", &self.id)
            .field("leader", &self.leader)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl MeshCore {
    /// A member that knows nobody yet. `anchor` ties `now` to the wall clock (Unix ms) for
    /// the propagation-time metric only; `seed` seeds foca's randomness.
    pub fn new(
        id: MemberId,
        config: MeshConfig,
        now: Instant,
        anchor_unix_ms: u64,
        seed: u64,
        metrics: MeshMetrics,
    ) -> Self {
        let foca = Foca::new(
            id.clone(),
            foca_config(&config),
            StdRng::seed_from_u64(seed),
            SwimCodec,
        );
        let state = StateStore::new(&id.name, id.generation, config.limits.clone());
        let candidacy = config.candidacy;
        let mut core = Self {
            next_round: now + config.gossip_interval,
            hurried: false,
            roster_grew: None,
            seen_names: std::collections::HashSet::new(),
            next_roster_ask: now,
            id,
            config,
            foca,
            rng: StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            timers: Vec::new(),
            seq: 0,
            state,
            seeds: Vec::new(),
            next_join: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            anchor: (now, anchor_unix_ms),
            health: 0,
            suspicions: Vec::new(),
            candidacy,
            claiming: false,
            claim: None,
            newest_epoch: None,
            leader: None,
            joined: false,
            hot_rounds: HOT_ROUNDS,
            leaving: false,
            stats: CoreStats::default(),
            metrics,
        };
        core.update_leader(now);
        core.publish_member_counts();
        core
    }

    pub fn id(&self) -> &MemberId {
        &self.id
    }

    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Lifeguard-style local health: 0 is healthy; each stall of this member's own loop adds
    /// one (up to [`MAX_HEALTH`]), each on-time probe period takes one away.
    pub fn health(&self) -> u32 {
        self.health
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.anchor.0);
        self.anchor.1 + since.as_millis() as u64
    }

    /// Joins through `seeds` (addresses; names are learnt from their answers). Seeds that do
    /// not answer are retried every `join_retry` while this member knows nobody.
    pub fn join(&mut self, seeds: &[SocketAddr], now: Instant) {
        self.seeds = seeds
            .iter()
            .copied()
            .filter(|s| *s != self.id.addr)
            .collect();
        self.next_join = Some(now);
        self.tick(now);
    }

    /// Members foca knows, with their state, this member excluded.
    pub fn members(&self) -> impl Iterator<Item = (&MemberId, State)> {
        self.foca
            .iter_membership_state()
            .map(|m| (m.id(), m.state()))
    }

    /// Live (alive or suspect) members, this member excluded.
    pub fn live_members(&self) -> impl Iterator<Item = &MemberId> {
        self.foca.iter_members().map(|m| m.id())
    }

    /// How many members this member knows per state, itself included as alive.
    pub fn member_counts(&self) -> [(MemberState, usize); 3] {
        let (mut alive, mut suspect, mut dead) = (1, 0, 0);
        for (_, s) in self.members() {
            match s {
                State::Alive => alive += 1,
                State::Suspect => suspect += 1,
                State::Down => dead += 1,
            }
        }
        [
            (MemberState::Alive, alive),
            (MemberState::Suspect, suspect),
            (MemberState::Dead, dead),
        ]
    }

    /// The member this one sees as leader: the live coordinator with the newest epoch claim
    /// ([`leader::leader_of`]).
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The epoch this member claims while it leads.
    pub fn epoch(&self) -> Option<&Epoch> {
        self.claim.as_ref().filter(|_| self.is_leader())
    }

    /// Whether this member leads: it may claim ([`Candidacy`]) and its claim is the newest it
    /// sees.
    pub fn is_leader(&self) -> bool {
        self.claiming && self.leader.as_deref() == Some(self.id.name.as_str())
    }

    /// Who may claim from now on. The default, [`Candidacy::LowestName`], is the mesh's own
    /// rule; a coordinator elected by an outside authority (the Kubernetes Lease) sets
    /// [`Candidacy::Holder`] while it holds the grant and [`Candidacy::NotHolder`] otherwise.
    /// A new grant always claims a new term.
    pub fn set_candidacy(&mut self, candidacy: Candidacy, now: Instant) {
        if candidacy != self.candidacy {
            tracing::info!(member = %self.id.name, ?candidacy, "candidacy changed");
            self.candidacy = candidacy;
            self.update_leader(now);
        }
    }

    pub fn candidacy(&self) -> Candidacy {
        self.candidacy
    }

    /// Writes one of this member's keys (`None` deletes it).
    pub fn set(
        &mut self,
        key: &str,
        value: Option<Vec<u8>>,
        now: Instant,
    ) -> Result<(), StateError> {
        let change = self.state.set(key, value, self.unix_ms(now))?;
        self.hot_rounds = HOT_ROUNDS;
        self.hurry();
        self.events.push_back(Event::Changed(change));
        Ok(())
    }

    /// Publishes a decision under `key` (a control key) with this leader's epoch. Refused
    /// (`None`) when this member does not lead.
    pub fn decide(
        &mut self,
        key: &str,
        body: Vec<u8>,
        now: Instant,
    ) -> Option<Result<Epoch, StateError>> {
        let epoch = self.epoch()?.clone();
        if Class::of(key) != Class::Control {
            return Some(Err(StateError::BadKey {
                key: key.to_owned(),
                max: self.config.limits.max_key_bytes,
            }));
        }
        let bytes = Decision {
            epoch: epoch.clone(),
            body,
        }
        .to_bytes();
        Some(self.set(key, Some(bytes), now).map(|()| epoch))
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::tick`] must next be called.
    pub fn next_deadline(&self) -> Instant {
        let mut next = self.next_round;
        if let Some(t) = self.timers.iter().map(|t| t.due).min() {
            next = next.min(t);
        }
        if let Some(j) = self.next_join {
            next = next.min(j);
        }
        if let Some(s) = self.suspicions.iter().map(|s| s.2).min() {
            next = next.min(s + self.suspicion_timeout());
        }
        next
    }

    /// One received datagram.
    pub fn handle_datagram(&mut self, bytes: &[u8], now: Instant) {
        match frame::decode_payload(bytes, self.config.max_datagram + 64) {
            Ok(MeshFrame {
                body: MeshBody::Swim(packet),
                ..
            }) => {
                let mut out = SwimOut::default();
                if let Err(e) = self.foca.handle_data(&packet, &mut out) {
                    self.stats.swim_errors += 1;
                    self.metrics.refuse(FrameRefusal::Swim);
                    tracing::debug!(error = %e, "SWIM packet refused");
                }
                self.absorb(out, now);
            }
            Ok(MeshFrame {
                body: MeshBody::Syn { from, hash },
                ..
            }) => self.on_rest_syn(&from, hash),
            Ok(other) => {
                self.refuse(FrameRefusal::Unexpected);
                tracing::debug!(body = ?other.body, "stream frame received as a datagram");
            }
            Err(e) => {
                self.refuse(FrameRefusal::from(&e));
                tracing::debug!(error = %e, "datagram refused");
            }
        }
    }

    /// A peer at rest sent the hash of its digest in a datagram. Equal: nothing to do (the
    /// common case, one datagram a round). Different: open a full exchange with it.
    fn on_rest_syn(&mut self, from: &str, hash: u64) {
        if hash == self.state.digest_hash() {
            return;
        }
        let Some(to) = self
            .foca
            .iter_members()
            .filter(|m| m.id().name == from)
            .max_by_key(|m| m.id().generation)
            .map(|m| m.id().addr)
        else {
            return;
        };
        self.hot_rounds = HOT_ROUNDS;
        self.stats.exchanges += 1;
        self.actions.push_back(Action::Sync {
            to,
            frame: MeshFrame::new(MeshBody::Syn {
                from: self.id.name.clone(),
                hash: self.state.digest_hash(),
            }),
        });
    }

    /// Counts a refused frame (the driver calls it for stream frames that fail to decode).
    pub fn refuse(&mut self, why: FrameRefusal) {
        self.stats.frames_refused += 1;
        self.metrics.refuse(why);
    }

    /// One frame received on a state-exchange stream; returns the reply to write, or `None`
    /// when the exchange is over. Both ends run this: the opener sent the `Syn`.
    pub fn handle_stream(&mut self, body: MeshBody, now: Instant) -> Option<MeshBody> {
        match body {
            MeshBody::Syn { hash, .. } => Some(if hash == self.state.digest_hash() {
                MeshBody::InSync
            } else {
                // Someone knows something we do not (or the reverse): spread it fast.
                self.hot_rounds = HOT_ROUNDS;
                MeshBody::SynDigest(self.state.digest())
            }),
            MeshBody::SynDigest(theirs) => Some(MeshBody::Syn2 {
                delta: self.state.delta_for(&theirs),
                digest: self.state.digest(),
            }),
            MeshBody::Syn2 { digest, delta } => {
                self.apply(delta, now);
                Some(MeshBody::Ack(self.state.delta_for(&digest)))
            }
            MeshBody::Ack(delta) => {
                self.apply(delta, now);
                None
            }
            MeshBody::InSync => None,
            MeshBody::Swim(_) => {
                self.refuse(FrameRefusal::Unexpected);
                None
            }
        }
    }

    fn apply(&mut self, delta: Vec<crate::message::MemberDelta>, now: Instant) {
        let applied = self.state.apply(delta, now);
        self.stats.entries_refused += applied.refused;
        let now_ms = self.unix_ms(now);
        let mut epoch_changed = false;
        if !applied.changes.is_empty() {
            self.hot_rounds = HOT_ROUNDS;
            self.hurry();
        }
        for c in applied.changes {
            if c.version > 0 {
                let age = now_ms.saturating_sub(c.written_unix_ms);
                self.metrics
                    .propagation
                    .record(Duration::from_millis(age).as_secs_f64());
            }
            if c.key == EPOCH_KEY
                && let Some(e) = c.value.as_deref().and_then(Epoch::from_bytes)
            {
                epoch_changed = true;
                if self.newest_epoch.as_ref().is_none_or(|n| e > *n) {
                    self.newest_epoch = Some(e);
                }
            }
            self.events.push_back(Event::Changed(c));
        }
        if epoch_changed {
            self.keep_term_history(now);
            self.update_leader(now);
        }
    }

    /// A member that never claims (an agent) keeps the newest epoch it has seen under its own
    /// [`EPOCH_KEY`]. A coordinator's claim is forgotten with it, so without this a coordinator
    /// that joins after every earlier one has gone (and been forgotten) would claim below what
    /// the agents' fences admitted, and they would refuse its decisions as stale for good.
    /// Only a member's own claim is a claim ([`Self::update_leader`]), so this one never leads.
    fn keep_term_history(&mut self, now: Instant) {
        if self.id.role == Role::Coordinator {
            return;
        }
        let Some(bytes) = self.newest_epoch.as_ref().map(Epoch::to_bytes) else {
            return;
        };
        if self.state.get(&self.id.name, EPOCH_KEY) == Some(bytes.as_slice()) {
            return;
        }
        if let Err(err) = self.set(EPOCH_KEY, Some(bytes), now) {
            tracing::warn!(error = %err, "could not keep the newest epoch");
        }
    }

    /// Leaves the cluster: foca tells peers at once, so they need not wait for a suspicion.
    pub fn leave(&mut self, now: Instant) {
        self.leaving = true;
        let mut out = SwimOut::default();
        if let Err(e) = self.foca.leave_cluster(&mut out) {
            self.stats.swim_errors += 1;
            tracing::debug!(error = %e, "leaving the cluster failed");
        }
        self.absorb(out, now);
    }

    /// Fires due timers, retries joining, and starts a state round when one is due.
    pub fn tick(&mut self, now: Instant) {
        self.fire_timers(now);
        self.expire_suspicions(now);
        if let Some(at) = self.next_join
            && at <= now
        {
            if self.foca.num_members() == 0 && !self.seeds.is_empty() {
                let seeds = self.seeds.clone();
                for s in seeds {
                    let mut out = SwimOut::default();
                    if let Err(e) = self.foca.announce(MemberId::seed(s), &mut out) {
                        self.stats.swim_errors += 1;
                        tracing::debug!(seed = %s, error = %e, "announce failed");
                    }
                    self.absorb(out, now);
                }
                self.next_join = Some(now + self.config.join_retry);
            } else {
                self.next_join = None;
            }
        }
        self.grow_roster(now);
        if self.next_round <= now {
            self.next_round = now + self.config.gossip_interval;
            self.hurried = false;
            self.round();
            // foca announces no suspicion, so the gauges are refreshed every round too.
            self.publish_member_counts();
        }
        self.state.expire(now);
    }

    /// A new change (written here or just received) is pushed at once, with a round of
    /// exchanges outside the schedule, instead of waiting for the next round: each hop of the
    /// epidemic then costs one exchange rather than up to a gossip interval, so one key
    /// reaches N members in about log_(fanout+1)(N) exchanges plus a round or two for the
    /// stragglers. At most one such round per interval, so a flood of writes at most doubles
    /// the rounds while it lasts; nothing changes at rest.
    fn hurry(&mut self) {
        if !self.hurried {
            self.hurried = true;
            self.round();
        }
    }

    /// While the roster is still growing (a member of a new name came up within the last
    /// `announce_interval`), ask one random live member for its roster every gossip interval
    /// instead of every `announce_interval` (foca's periodic announce): its answer (a foca
    /// Feed) holds as many random active members as fit a datagram. When many members start
    /// at once, SWIM's piggybacked updates and one announce per 5 s took 26 s for 128 members
    /// to all see each other; a cluster at rest sends none of these.
    fn grow_roster(&mut self, now: Instant) {
        let growing = self
            .roster_grew
            .is_some_and(|t| now < t + self.config.announce_interval);
        if !growing || now < self.next_roster_ask {
            return;
        }
        self.next_roster_ask = now + self.config.gossip_interval;
        let alive: Vec<MemberId> = self
            .foca
            .iter_members()
            .filter(|m| m.state() == State::Alive)
            .map(|m| m.id().clone())
            .collect();
        if alive.is_empty() {
            return;
        }
        let to = alive[self.rng.random_range(0..alive.len())].clone();
        let mut out = SwimOut::default();
        if let Err(e) = self.foca.announce(to, &mut out) {
            self.stats.swim_errors += 1;
            tracing::debug!(error = %e, "roster request failed");
        }
        self.absorb(out, now);
    }

    fn round(&mut self) {
        self.stats.rounds += 1;
        self.metrics.rounds.increment(1);
        let mut peers: Vec<SocketAddr> = self
            .foca
            .iter_members()
            .filter(|m| m.state() == State::Alive)
            .map(|m| m.id().addr)
            .collect();
        let syn = MeshFrame::new(MeshBody::Syn {
            from: self.id.name.clone(),
            hash: self.state.digest_hash(),
        });
        if self.hot_rounds == 0 {
            // At rest: the digest hash to one peer in a datagram; it opens an exchange only if
            // its digest differs.
            if !peers.is_empty() {
                let to = peers[self.rng.random_range(0..peers.len())];
                match frame::encode_payload(&syn, self.config.max_datagram + 64) {
                    Ok(bytes) => self.actions.push_back(Action::Datagram { to, bytes }),
                    Err(e) => tracing::warn!(error = %e, "digest hash could not be framed"),
                }
            }
            return;
        }
        self.hot_rounds -= 1;
        for _ in 0..self.config.gossip_fanout.min(peers.len()) {
            let i = self.rng.random_range(0..peers.len());
            let to = peers.swap_remove(i);
            self.stats.exchanges += 1;
            self.actions.push_back(Action::Sync {
                to,
                frame: syn.clone(),
            });
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        // A timer later than this was held up by this member's own loop (a stall, a pause):
        // Lifeguard's cue to distrust its own view before accusing anyone.
        let stall = self.config.probe_period / 2;
        while let Some(i) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.due <= now)
            .min_by_key(|(_, t)| (t.due, t.seq))
            .map(|(i, _)| i)
        {
            let t = self.timers.swap_remove(i);
            let late = now.saturating_duration_since(t.due);
            let accusing = matches!(
                t.timer,
                Timer::ProbeRandomMember(_) | Timer::ChangeSuspectToDown { .. }
            );
            if accusing && !t.deferred {
                if late > stall {
                    self.health = (self.health + 1).min(MAX_HEALTH);
                    self.stats.deferred_accusations += 1;
                    // Let the replies that queued up during the stall be read first.
                    self.schedule(t.timer, now + self.config.probe_rtt, true);
                    continue;
                }
                if self.health > 0 && matches!(t.timer, Timer::ChangeSuspectToDown { .. }) {
                    self.stats.deferred_accusations += 1;
                    let extra = self.config.suspect_to_down * self.health;
                    self.schedule(t.timer, now + extra, true);
                    continue;
                }
            }
            if matches!(t.timer, Timer::ProbeRandomMember(_)) && late <= stall {
                self.health = self.health.saturating_sub(1);
            }
            let removed = match &t.timer {
                Timer::RemoveDown(id) => Some(id.clone()),
                _ => None,
            };
            let mut out = SwimOut::default();
            if let Err(e) = self.foca.handle_timer(t.timer, &mut out) {
                self.stats.swim_errors += 1;
                tracing::debug!(error = %e, "SWIM timer failed");
            }
            self.absorb(out, now);
            if let Some(id) = removed {
                self.forget(&id, now);
            }
        }
    }

    /// How long this member holds a suspicion, however it learnt it, before declaring the
    /// member down itself: twice foca's `suspect_to_down`, stretched by local health like this
    /// member's own accusations, so the member whose probe failed (whose foca timer fires after
    /// one `suspect_to_down`) always decides first while it is there to.
    fn suspicion_timeout(&self) -> Duration {
        self.config.suspect_to_down * (2 + self.health)
    }

    /// Notes the suspicions this member holds now (foca's view; checked at every tick, so at
    /// least every gossip interval), keeping when each was first seen at its incarnation; a
    /// refuted, confirmed or replaced one is dropped.
    fn track_suspicions(&mut self, now: Instant) {
        let held: Vec<(MemberId, Incarnation)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| (m.id().clone(), m.incarnation()))
            .collect();
        self.suspicions
            .retain(|(id, inc, _)| held.iter().any(|(h, i)| h == id && i == inc));
        for (id, inc) in held {
            if !self
                .suspicions
                .iter()
                .any(|(s, i, _)| *s == id && *i == inc)
            {
                self.suspicions.push((id, inc, now));
            }
        }
    }

    /// SWIM has every member that holds a suspicion time it out; foca arms the suspect-to-down
    /// timer only on the member whose probe failed, and members that learn the suspicion by
    /// gossip hold it with no timer. If that one timer is lost — its owner renews its identity
    /// (declared down during a partition, it rejoins: foca then ignores every timer it armed
    /// before) or dies — and the suspect never heard of the suspicion (it was cut off while
    /// the gossip's retransmissions were spent), the suspect never refutes and stays suspect on
    /// every member for good. So a suspicion still unrefuted after [`Self::suspicion_timeout`]
    /// is declared down here, as its originator would have: the member hears it is down the
    /// next time it talks to this one and rejoins under a new generation.
    fn expire_suspicions(&mut self, now: Instant) {
        self.track_suspicions(now);
        let timeout = self.suspicion_timeout();
        let expired: Vec<Member<MemberId>> = self
            .suspicions
            .iter()
            .filter(|(_, _, since)| now >= *since + timeout)
            .map(|(id, inc, _)| Member::new(id.clone(), *inc, State::Down))
            .collect();
        if expired.is_empty() {
            return;
        }
        for m in &expired {
            tracing::info!(member = ?m.id(), after = ?timeout, "suspicion not refuted in time: declared down");
        }
        self.stats.suspicions_expired += expired.len() as u64;
        let mut out = SwimOut::default();
        if let Err(e) = self.foca.apply_many(expired.into_iter(), true, &mut out) {
            self.stats.swim_errors += 1;
            tracing::debug!(error = %e, "declaring an expired suspicion down failed");
        }
        self.absorb(out, now);
    }

    fn forget(&mut self, id: &MemberId, now: Instant) {
        let still_known = self
            .foca
            .iter_membership_state()
            .any(|m| m.id().name == id.name && m.id().generation >= id.generation);
        if still_known {
            return;
        }
        if self
            .state
            .forget(&id.name, id.generation, now + self.config.forget_after)
        {
            tracing::debug!(member = ?id, "forgotten");
        }
        self.seen_names.remove(&id.name);
        self.events
            .push_back(Event::MemberForgotten(id.name.clone()));
        self.publish_member_counts();
    }

    fn schedule(&mut self, timer: Timer<MemberId>, due: Instant, deferred: bool) {
        self.seq += 1;
        self.timers.push(Scheduled {
            due,
            seq: self.seq,
            timer,
            deferred,
        });
    }

    /// Turns what foca asked for into actions, timers and events.
    fn absorb(&mut self, out: SwimOut, now: Instant) {
        for (to, packet) in out.sends {
            match frame::encode_payload(
                &MeshFrame::new(MeshBody::Swim(packet)),
                self.config.max_datagram + 64,
            ) {
                Ok(bytes) => self
                    .actions
                    .push_back(Action::Datagram { to: to.addr, bytes }),
                Err(e) => {
                    self.stats.swim_errors += 1;
                    tracing::warn!(error = %e, "SWIM packet could not be framed");
                }
            }
        }
        for (timer, after) in out.timers {
            self.schedule(timer, now + after, false);
        }
        if out.notes.is_empty() {
            return;
        }
        for note in out.notes {
            match note {
                OwnedNotification::MemberUp(id) => {
                    if self.seen_names.insert(id.name.clone()) {
                        self.roster_grew = Some(now);
                    }
                    self.state.mark_alive(&id.name, id.generation);
                    self.hot_rounds = HOT_ROUNDS;
                    self.events.push_back(Event::MemberUp(id));
                }
                OwnedNotification::MemberDown(id) => {
                    let replaced = self
                        .foca
                        .iter_members()
                        .any(|m| m.id().name == id.name && m.id().generation > id.generation);
                    if !replaced {
                        self.state.mark_dead(&id.name, id.generation);
                    }
                    self.events.push_back(Event::MemberDown(id));
                }
                OwnedNotification::Rename(_, new) => {
                    self.state.mark_alive(&new.name, new.generation);
                }
                OwnedNotification::Active => {
                    self.joined = true;
                    self.next_join = None;
                    self.events.push_back(Event::Joined);
                }
                OwnedNotification::Idle => {
                    self.events.push_back(Event::Isolated);
                    self.next_join = Some(now);
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(member = ?id, "declared down by the cluster; rejoined as a new generation");
                    self.state.set_own_generation(id.generation);
                    self.id = id;
                }
                OwnedNotification::Defunct if self.leaving => {}
                OwnedNotification::Defunct => {
                    tracing::warn!("declared down by the cluster and could not renew");
                    self.next_join = Some(now);
                }
            }
        }
        self.update_leader(now);
        self.publish_member_counts();
    }

    fn publish_member_counts(&self) {
        for (s, n) in self.member_counts() {
            self.metrics.members(s).set(n as f64);
        }
    }

    /// Claims (or stops claiming) by the [`Candidacy`] rule, then names the leader: the live
    /// coordinator with the newest claim, this member's own claim included.
    fn update_leader(&mut self, now: Instant) {
        let live: Vec<String> = self
            .foca
            .iter_members()
            .filter(|m| m.id().role == Role::Coordinator)
            .map(|m| m.id().name.clone())
            .chain((self.id.role == Role::Coordinator).then(|| self.id.name.clone()))
            .collect();
        let (claiming, floor) = match self.candidacy {
            _ if self.id.role != Role::Coordinator => (false, 0),
            Candidacy::LowestName => (
                leader::lowest_name(live.iter().map(String::as_str)) == Some(self.id.name.as_str()),
                0,
            ),
            Candidacy::Holder { term } => (true, term),
            Candidacy::NotHolder => (false, 0),
        };
        let new_tenure = claiming && !self.claiming;
        self.claiming = claiming;
        if claiming {
            // A new tenure always takes a new term; a sitting claimant goes above any newer
            // claim, and to the authority's term when that grew.
            let current = if new_tenure {
                None
            } else {
                self.claim.as_ref()
            };
            if let Some(e) =
                leader::next_claim(&self.id.name, current, self.newest_epoch.as_ref(), floor)
            {
                tracing::info!(member = %self.id.name, epoch = ?e, "claiming leadership");
                let bytes = e.to_bytes();
                self.claim = Some(e.clone());
                self.newest_epoch = Some(e);
                if let Err(err) = self.set(EPOCH_KEY, Some(bytes), now) {
                    tracing::warn!(error = %err, "could not publish the epoch claim");
                }
            }
        }
        let claims: Vec<Epoch> = live
            .iter()
            .filter_map(|name| {
                let e = if *name == self.id.name {
                    self.claim.clone()
                } else {
                    self.state.get(name, EPOCH_KEY).and_then(Epoch::from_bytes)
                }?;
                // Only a member's own claim counts.
                (e.leader == *name).then_some(e)
            })
            .collect();
        let leader = leader::leader_of(&claims).map(|e| e.leader.clone());
        if leader != self.leader {
            tracing::info!(member = %self.id.name, leader = ?leader, "leader changed");
            self.leader = leader.clone();
            self.events.push_back(Event::LeaderChanged(leader));
        }
    }
}

#[cfg(test)]
mod tests;
