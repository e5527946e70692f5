//! The bound-address line every long-running SAIR binary prints on stdout once it has bound
//! all its sockets, before serving (`sair_service::announce::bound`):
//!
//! ```text
//! {"event":"bound","binary":"sair-sidecar","addresses":{"listen":"127.0.0.1:40123","admin":"127.0.0.1:40124"}}
//! ```
//!
//! The harness starts binaries with port 0 and reads their real addresses from this line, so
//! tests never guess a free port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The addresses one process announced, by role (`listen`, `admin`, `report`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The binary that printed the line.
    pub binary: String,
    /// Role → bound address.
    pub addresses: BTreeMap<String, SocketAddr>,
}

#[derive(serde::Deserialize)]
struct Line {
    event: String,
    binary: String,
    addresses: BTreeMap<String, String>,
}

/// Why a stdout line is not a usable bound line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoundLineError {
    /// Not a JSON object of the bound line's shape (most stdout lines are not).
    #[error("not a bound-address line")]
    NotBoundLine,
    /// A bound line whose address for `role` is not `ip:port`.
    #[error("bound line: address {value:?} of role {role:?} is not ip:port")]
    BadAddress {
        /// The role.
        role: String,
        /// What was printed.
        value: String,
    },
}

impl Bound {
    /// Parses one stdout line; `Err(NotBoundLine)` for any other output.
    pub fn parse(line: &str) -> Result<Bound, BoundLineError> {
        let line: Line =
            serde_json::from_str(line.trim()).map_err(|_| BoundLineError::NotBoundLine)?;
        if line.event != "bound" {
            return Err(BoundLineError::NotBoundLine);
        }
        let addresses = line
            .addresses
            .into_iter()
            .map(|(role, value)| match value.parse() {
                Ok(a) => Ok((role, a)),
                Err(_) => Err(BoundLineError::BadAddress { role, value }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Bound {
            binary: line.binary,
            addresses,
        })
    }

    /// The address of `role`, if announced.
    pub fn get(&self, role: &str) -> Option<SocketAddr> {
        self.addresses.get(role).copied()
    }
}

#[cfg(test)]
mod tests;
