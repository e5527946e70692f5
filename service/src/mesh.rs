//! The gossip-mesh flags every SAIR binary on the mesh takes, written once: `--mesh-listen`,
//! `--seeds`, `--cert`, `--key`, `--ca` (same `SAIR_*` variables), flattened into each
//! binary's own config type, and their checks before anything binds ([`MeshArgs::plan`]).
//!
//! Flags, addresses and paths only: the binary loads the certificates and starts the member
//! through `sair-mesh` (which reads no configuration); this crate knows no mesh type.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;

/// The mesh options. Without `--mesh-listen` the member is not on the mesh, and the other
/// options must not be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct MeshArgs {
    /// Address of this member's mesh endpoint (QUIC, UDP), as the other members reach it (not
    /// 0.0.0.0; port 0 picks one, announced on stdout as role `mesh`). `none` or empty: not on
    /// the mesh.
    #[arg(long, env = "SAIR_MESH_LISTEN")]
    pub mesh_listen: Option<String>,
    /// Mesh members to join through, `host:port`, comma-separated (any live member will do;
    /// list several).
    #[arg(long, env = "SAIR_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// This member's certificate (PEM), signed by the cluster CA (`sair certs issue`).
    #[arg(long, env = "SAIR_CERT")]
    pub cert: Option<PathBuf>,
    /// This member's private key (PEM).
    #[arg(long, env = "SAIR_KEY")]
    pub key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM, `ca.pem` of `sair certs init`); peers whose
    /// certificate it did not sign are refused.
    #[arg(long, env = "SAIR_CA")]
    pub ca: Option<PathBuf>,
}

/// Checked mesh options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPlan {
    /// Where the endpoint binds (and what it advertises).
    pub listen: SocketAddr,
    /// Seeds, resolved: every address a name resolves to (a headless Service gives one per
    /// Pod), of `listen`'s family when it has any, without repeats.
    pub seeds: Vec<SocketAddr>,
    /// `--cert`.
    pub cert: PathBuf,
    /// `--key`.
    pub key: PathBuf,
    /// `--ca`.
    pub ca: PathBuf,
}

/// A mesh flag that cannot be used; every variant names the flag. A usage error (exit 64),
/// except a seed name that does not resolve now ([`MeshFlagError::is_unavailable`], exit 69).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshFlagError {
    #[error("--mesh-listen {value:?} is not an address: {reason}")]
    NotAnAddress { value: String, reason: String },
    #[error(
        "--mesh-listen {listen}: give the address the other members reach this member at \
         (e.g. $(POD_IP):7946), not an unspecified one"
    )]
    Unspecified { listen: SocketAddr },
    #[error("{flag} is a mesh option: give --mesh-listen too, or drop {flag}")]
    WithoutListen { flag: &'static str },
    #[error("--mesh-listen needs {flag} ({what})")]
    Missing {
        flag: &'static str,
        what: &'static str,
    },
    #[error("--seeds {seed:?} is not host:port: {reason}")]
    BadSeed { seed: String, reason: String },
    #[error(
        "--seeds {seed:?} does not resolve now ({reason}); a headless Service has no address \
         until one of its Pods is ready, so this exits 69 for its supervisor to retry"
    )]
    UnresolvedSeed { seed: String, reason: String },
    #[error("--seeds {seed:?}: a seed needs a real address and port")]
    NotARealSeed { seed: String },
}

impl MeshFlagError {
    /// True when the flags are right but a seed cannot be resolved yet: a dependency is
    /// unavailable (exit 69), not a usage error, so that a restart may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, MeshFlagError::UnresolvedSeed { .. })
    }
}

impl MeshArgs {
    /// Checks the options (see [`Self::plan`]).
    pub fn validate(&self) -> Result<(), MeshFlagError> {
        self.plan().map(drop)
    }

    /// The checked options, `None` when the member is not on the mesh (no `--mesh-listen`, or
    /// `none`). Seeds are resolved once, here.
    pub fn plan(&self) -> Result<Option<MeshPlan>, MeshFlagError> {
        let listen = self
            .mesh_listen
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("none"));
        let Some(listen) = listen else {
            let given = [
                ("--seeds", !self.seeds.is_empty()),
                ("--cert", self.cert.is_some()),
                ("--key", self.key.is_some()),
                ("--ca", self.ca.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return Err(MeshFlagError::WithoutListen { flag });
            }
            return Ok(None);
        };
        let listen: SocketAddr =
            listen
                .parse()
                .map_err(|e: std::net::AddrParseError| MeshFlagError::NotAnAddress {
                    value: listen.to_owned(),
                    reason: e.to_string(),
                })?;
        if listen.ip().is_unspecified() {
            return Err(MeshFlagError::Unspecified { listen });
        }
        let need = |v: &Option<PathBuf>, flag, what| {
            v.clone().ok_or(MeshFlagError::Missing { flag, what })
        };
        let cert = need(
            &self.cert,
            "--cert",
            "this member's certificate, from `sair certs issue`",
        )?;
        let key = need(&self.key, "--key", "this member's private key")?;
        let ca = need(
            &self.ca,
            "--ca",
            "the cluster CA's certificate, from `sair certs init`",
        )?;
        let mut seeds = Vec::new();
        for s in self
            .seeds
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            for addr in resolve_seed(s, listen)? {
                if !seeds.contains(&addr) {
                    seeds.push(addr);
                }
            }
        }
        Ok(Some(MeshPlan {
            listen,
            seeds,
            cert,
            key,
            ca,
        }))
    }
}

/// One `--seeds` entry: its syntax first (a usage error), then its addresses (a name that
/// does not resolve now is [`MeshFlagError::UnresolvedSeed`]).
fn resolve_seed(seed: &str, listen: SocketAddr) -> Result<Vec<SocketAddr>, MeshFlagError> {
    let bad = |reason: &str| MeshFlagError::BadSeed {
        seed: seed.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = match seed.parse::<SocketAddr>() {
        Ok(a) => (a.ip().to_string(), a.port()),
        Err(_) => {
            let (host, port) = seed
                .rsplit_once(':')
                .ok_or_else(|| bad("it has no :port"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
            (host.trim_matches(['[', ']']).to_owned(), port)
        }
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if port == 0 {
        return Err(MeshFlagError::NotARealSeed {
            seed: seed.to_owned(),
        });
    }
    let unresolved = |reason: String| MeshFlagError::UnresolvedSeed {
        seed: seed.to_owned(),
        reason,
    };
    let all: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    if all.iter().any(|a| a.ip().is_unspecified()) {
        return Err(MeshFlagError::NotARealSeed {
            seed: seed.to_owned(),
        });
    }
    // A member bound to IPv4 cannot send to IPv6 and back: keep listen's family when there is one.
    let same: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == listen.is_ipv4())
        .collect();
    let chosen = if same.is_empty() { all } else { same };
    if chosen.is_empty() {
        return Err(unresolved("it resolves to no address".to_owned()));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests;
