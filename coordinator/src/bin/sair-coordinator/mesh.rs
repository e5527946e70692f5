//! The coordinator's mesh options: `--node` and the mesh flags every member shares
//! ([`sair_service::mesh::MeshArgs`], exactly as `sair-node-agent run` has them: `--mesh-listen`,
//! `--seeds`, `--cert`, `--key`, `--ca`, same variables), and joining the mesh as a member of
//! role coordinator. Unlike the agent, the coordinator cannot run off the mesh: it observes and
//! decides through it, so `--mesh-listen` is required.

use clap::Args;
use sair_mesh::certs::MeshTls;
use sair_mesh::metrics::MeshMetrics;
use sair_mesh::transport::Transport;
use sair_mesh::transport::quic::QuicTransport;
use sair_mesh::{Candidacy, MemberId, Mesh, MeshConfig, Role};
use sair_service::exit::Exit;

/// The mesh options (named apart from the shared `MeshArgs`: clap names a flattened group after
/// its type, and two groups may not share a name).
#[derive(Debug, Clone, Default, Args)]
pub struct MeshOptions {
    /// This member's name on the mesh (default: the host name). Among live coordinators the
    /// lowest name leads, except under `--actuator kubernetes`, where the Lease holder (this
    /// name is its identity) leads. `--node` is the same option.
    #[arg(long, env = "SAIR_NODE_NAME", visible_alias = "node")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub member: sair_service::mesh::MeshArgs,
}

/// Checked mesh options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPlan {
    pub node: String,
    pub member: sair_service::mesh::MeshPlan,
}

impl MeshOptions {
    /// The checked options; every error names its flag, with its exit status (69 for a seed
    /// that does not resolve yet, else 64).
    pub fn plan(&self) -> Result<MeshPlan, (Exit, String)> {
        self.plan_inner().map_err(|(unavailable, e)| {
            let exit = if unavailable {
                Exit::Unavailable
            } else {
                Exit::Usage
            };
            (exit, e)
        })
    }

    fn plan_inner(&self) -> Result<MeshPlan, (bool, String)> {
        let node = match &self.node_name {
            Some(n) => n.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .ok_or((
                    false,
                    "--node is required where the host name cannot be read".to_owned(),
                ))?,
        };
        sair_mesh::id::validate_name(&node)
            .map_err(|e| (false, format!("--node {node:?}: {e}")))?;
        let member = self
            .member
            .plan()
            .map_err(|e| (e.is_unavailable(), e.to_string()))?
            .ok_or((
                false,
                "--mesh-listen is required: the coordinator observes and decides through the \
                 mesh (give it with --cert, --key, --ca and --seeds)"
                    .to_owned(),
            ))?;
        Ok(MeshPlan { node, member })
    }
}

impl MeshPlan {
    /// Loads `--cert`, `--key` and `--ca`; an error names the flag and the file.
    pub fn tls(&self) -> Result<MeshTls, String> {
        let m = &self.member;
        MeshTls::from_files(&m.cert, &m.key, &m.ca)
            .map_err(|e| format!("{}: {e}", e.member_file(&m.key, &m.ca).flag()))
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
        let (transport, inbound) = QuicTransport::bind(self.member.listen, tls, metrics.clone())
            .map_err(|e| format!("binding --mesh-listen {}: {e}", self.member.listen))?;
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
            &self.member.seeds,
            metrics,
        ))
    }
}
