//! Who a member is: its name, its role and where it listens.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Longest member name accepted (bytes).
pub const MAX_NAME_BYTES: usize = 64;

/// What a member does in the cluster. Only coordinators take part in leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// A node agent (one per node).
    Agent,
    /// A coordinator (runs the policy loop when it leads).
    Coordinator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Coordinator => "coordinator",
        }
    }
}

/// A member's identity as foca sees it.
///
/// `name` is the stable, operator-given name (`--node`); state is keyed by it. `addr` is the
/// advertised QUIC address and is foca's conflict key: two identities with the same address are
/// the same member, and the one with the higher `generation` wins. `generation` is bumped when
/// a member restarts (the driver starts it at the Unix time in milliseconds) and when foca
/// renews an identity that the cluster declared down, so that it rejoins at once.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberId {
    pub name: String,
    pub role: Role,
    pub addr: SocketAddr,
    pub generation: u64,
}

impl MemberId {
    /// A validated identity.
    pub fn try_new(
        name: &str,
        role: Role,
        addr: SocketAddr,
        generation: u64,
    ) -> Result<Self, ConfigError> {
        validate_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            role,
            addr,
            generation,
        })
    }

    /// The placeholder identity used to announce to a seed whose name we do not know yet: foca
    /// accepts an announce addressed to any identity with its own address.
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self {
            name: String::new(),
            role: Role::Agent,
            addr,
            generation: 0,
        }
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}@{}#{})",
            self.name,
            self.role.as_str(),
            self.addr,
            self.generation
        )
    }
}

impl foca::Identity for MemberId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.saturating_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, &self.name) > (adversary.generation, &adversary.name)
    }
}

/// Checks a member name: 1 to [`MAX_NAME_BYTES`] bytes of `[A-Za-z0-9._-]`.
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadName {
            name: name.to_owned(),
        })
    }
}
