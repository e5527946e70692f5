//! The coordinator's mesh options, exactly as `sair-node-agent run` has them (`--node`,
//! `--mesh-listen`, `--seeds`, `--cert`, `--key`, `--ca`, same variables), and joining the
//! mesh as a member of role coordinator. Unlike the agent, the coordinator cannot run off the
//! mesh: it observes and decides through it, so `--mesh-listen` is required.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;
use sair_mesh::certs::{CertError, MeshTls};
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{Candidacy, MemberId, Mesh, MeshConfig, Role};

/// The mesh options.
#[derive(Debug, Clone, Default, Args)]
pub struct MeshArgs {
    /// This member's name on the mesh (default: the host name). Among live coordinators the
    /// lowest name leads, except under `--actuator kubernetes`, where the Lease holder (this
    /// name is its identity) leads. `--node` is the same option.
    #[arg(long, env = "SAIR_NODE_NAME", visible_alias = "node")]
    pub node_name: Option<String>,
    /// Address of this coordinator's mesh endpoint (QUIC, UDP), as the other members reach it
    /// (not 0.0.0.0; port 0 picks one, announced on stdout as role `mesh`).
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
    pub node: String,
    pub listen: SocketAddr,
    pub seeds: Vec<SocketAddr>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl MeshArgs {
    /// The checked options; every error names its flag.
    pub fn plan(&self) -> Result<MeshPlan, String> {
        let node = match &self.node_name {
            Some(n) => n.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .ok_or("--node is required where the host name cannot be read")?,
        };
        sair_mesh::id::validate_name(&node).map_err(|e| format!("--node {node:?}: {e}"))?;
        let listen = self.mesh_listen.as_deref().ok_or(
            "--mesh-listen is required: the coordinator observes and decides through the mesh \
             (give it with --cert, --key, --ca and --seeds)",
        )?;
        let listen: SocketAddr = listen
            .parse()
            .map_err(|e| format!("--mesh-listen {listen:?} is not an address: {e}"))?;
        if listen.ip().is_unspecified() {
            return Err(format!(
                "--mesh-listen {listen}: give the address the other members reach this \
                 coordinator at, not an unspecified one"
            ));
        }
        let need = |v: &Option<PathBuf>, flag: &str, what: &str| {
            v.clone()
                .ok_or_else(|| format!("--mesh-listen needs {flag} ({what})"))
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
            let addr = s
                .to_socket_addrs()
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.next().ok_or_else(|| "it resolves to nothing".to_owned()))
                .map_err(|e| format!("--seeds {s:?} is not a reachable host:port: {e}"))?;
            if addr.port() == 0 || addr.ip().is_unspecified() {
                return Err(format!(
                    "--seeds {s:?}: a seed needs a real address and port"
                ));
            }
            seeds.push(addr);
        }
        Ok(MeshPlan {
            node,
            listen,
            seeds,
            cert,
            key,
            ca,
        })
    }
}

impl MeshPlan {
    /// Loads `--cert`, `--key` and `--ca`; an error names the flag and the file.
    pub fn tls(&self) -> Result<MeshTls, String> {
        MeshTls::from_files(&self.cert, &self.key, &self.ca).map_err(|e| {
            let flag = match &e {
                CertError::Pem { what, .. } if what.contains("CA") => "--ca",
                CertError::Pem { what, .. } if what.contains("key") => "--key",
                CertError::Pem { path, .. } | CertError::Io { path, .. } if *path == self.ca => {
                    "--ca"
                }
                CertError::Pem { path, .. } | CertError::Io { path, .. } if *path == self.key => {
                    "--key"
                }
                _ => "--cert",
            };
            format!("{flag}: {e}")
        })
    }

    /// Binds the endpoint and joins through the seeds, as a coordinator that may claim
    /// leadership by `candidacy` from the start. The mesh metrics go to the installed recorder
    /// (this process's `/metrics`). `Err` is a bind failure (69).
    pub fn start(&self, tls: &MeshTls, candidacy: Candidacy) -> Result<Mesh, String> {
        let config = MeshConfig {
            candidacy,
            ..MeshConfig::default()
        };
        config
            .validate()
            .map_err(|e| format!("mesh configuration: {e}"))?;
        let metrics = metrics::with_recorder(MeshMetrics::register);
        let (transport, inbound) = QuicTransport::bind(self.listen, tls, metrics.clone())
            .map_err(|e| format!("binding --mesh-listen {}: {e}", self.listen))?;
        // A restart is a new generation, so peers replace the old identity at once.
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let id = MemberId::try_new(
            &self.node,
            Role::Coordinator,
            transport.local_addr(),
            generation,
        )
        .map_err(|e| format!("--node {:?}: {e}", self.node))?;
        Ok(Mesh::start(
            id,
            config,
            transport,
            inbound,
            &self.seeds,
            metrics,
        ))
    }
}
