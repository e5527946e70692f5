//! The mesh's tunables, validated before anything binds.

use std::time::Duration;

use crate::error::ConfigError;
use crate::leader::Candidacy;
use crate::state::StateLimits;

/// Timing and size parameters of one member. [`MeshConfig::default`] targets a LAN cluster of
/// up to a few hundred members with a 200 ms gossip interval: a killed member is suspected
/// within about two probe periods and declared dead `suspect_to_down` later (≈ 3 s in all).
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// How often state is exchanged (and foca gossips membership updates).
    pub gossip_interval: Duration,
    /// Peers contacted per state round.
    pub gossip_fanout: usize,
    /// How often one random member is probed.
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// How long a suspect may refute before it is declared dead.
    pub suspect_to_down: Duration,
    /// How long a dead member is remembered (and refused) before it is forgotten.
    pub forget_after: Duration,
    /// How often a member announces itself to a random member (so joins converge fast).
    pub announce_interval: Duration,
    /// How often an isolated member announces itself to its seeds again.
    pub join_retry: Duration,
    /// Expected cluster size; sets how many times foca retransmits an update.
    pub expected_members: u32,
    /// Largest SWIM packet (must fit a QUIC datagram with our frame around it).
    pub max_datagram: usize,
    /// Per-member state bounds and per-exchange budgets.
    pub limits: StateLimits,
    /// Who may claim leadership from the start (a coordinator elected by a Kubernetes Lease
    /// starts as [`Candidacy::NotHolder`], so it never claims by name before it knows);
    /// [`crate::Mesh::set_candidacy`] changes it.
    pub candidacy: Candidacy,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            probe_period: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(200),
            suspect_to_down: Duration::from_secs(2),
            forget_after: Duration::from_secs(60),
            announce_interval: Duration::from_secs(5),
            join_retry: Duration::from_secs(1),
            expected_members: 32,
            max_datagram: 1100,
            limits: StateLimits::default(),
            candidacy: Candidacy::LowestName,
        }
    }
}

impl MeshConfig {
    /// Checks every field; call before binding.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, d) in [
            ("gossip_interval", self.gossip_interval),
            ("probe_period", self.probe_period),
            ("probe_rtt", self.probe_rtt),
            ("suspect_to_down", self.suspect_to_down),
            ("forget_after", self.forget_after),
            ("announce_interval", self.announce_interval),
            ("join_retry", self.join_retry),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.gossip_fanout == 0 {
            return Err(ConfigError::Zero {
                field: "gossip_fanout",
            });
        }
        if self.max_datagram == 0 {
            return Err(ConfigError::Zero {
                field: "max_datagram",
            });
        }
        if self.probe_rtt >= self.probe_period {
            return Err(ConfigError::Order {
                field: "probe_rtt",
                value: self.probe_rtt,
                other: "probe_period",
                other_value: self.probe_period,
            });
        }
        Ok(())
    }

    /// How many times foca sends each membership update (memberlist's 4·log10(n+1), at least 4).
    pub(crate) fn max_transmissions(&self) -> u8 {
        let n = f64::from(self.expected_members.max(1)) + 1.0;
        (4.0 * n.log10()).clamp(4.0, 32.0) as u8
    }
}
