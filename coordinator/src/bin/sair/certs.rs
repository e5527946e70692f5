//! `sair certs`: the mesh's cluster CA and member certificates, so that a local cluster takes
//! two commands. A thin shell over `sair_mesh::certs` (rcgen): `init` makes `ca.pem` and
//! `ca.key`, `issue` makes `NAME.pem` and `NAME.key` signed by that CA. Private keys are
//! written with mode 0600, certificates 0644.
//!
//! Exit codes: 0 done, 64 a bad flag or member name, 66 an unreadable CA, 73 an output that
//! cannot be written or a CA that already exists (it is never overwritten).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sair_mesh::certs::{self, CertError};
use sair_service::exit::Exit;

/// `sair certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// What to make.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a cluster CA: DIR/ca.pem (give it to every member as --ca) and DIR/ca.key (0600;
    /// keep it off the nodes). Refuses to overwrite an existing CA.
    Init(InitArgs),
    /// Make a member certificate signed by the cluster CA: OUT/NAME.pem and OUT/NAME.key (0600),
    /// for a member's --cert and --key.
    Issue(IssueArgs),
}

/// `sair certs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for ca.pem and ca.key (created if missing).
    #[arg(long, env = "SAIR_OUT")]
    pub out: PathBuf,
}

/// `sair certs issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Directory of the cluster CA (made by `sair certs init`).
    #[arg(long, env = "SAIR_CA")]
    pub ca: PathBuf,
    /// Member name: 1–64 characters of letters, digits, '.', '_' or '-' (the member's --node).
    #[arg(long, env = "SAIR_NAME")]
    pub name: String,
    /// Directory for NAME.pem and NAME.key (created if missing).
    #[arg(long, env = "SAIR_OUT")]
    pub out: PathBuf,
}

/// The exit code for a certificate error.
fn exit_for(e: &CertError) -> Exit {
    match e {
        CertError::Name(_) => Exit::Usage,
        CertError::Exists { .. } => Exit::CantCreate,
        CertError::Io { action, .. } if *action == "read" => Exit::NoInput,
        CertError::Io { .. } => Exit::CantCreate,
        CertError::Pem { .. } => Exit::DataErr,
        CertError::Generate(_) => Exit::Internal,
    }
}

/// Runs `sair certs …`, printing what it wrote.
pub fn run(a: CertsArgs) -> Result<(), (Exit, anyhow::Error)> {
    let fail = |e: CertError| (exit_for(&e), anyhow::Error::new(e));
    match a.command {
        CertsCommand::Init(i) => {
            let f = certs::init_ca(&i.out).map_err(fail)?;
            println!("wrote {} and {} (0600)", f.cert.display(), f.key.display());
        }
        CertsCommand::Issue(i) => {
            let f = certs::issue(&i.ca, &i.name, &i.out).map_err(fail)?;
            println!("wrote {} and {} (0600)", f.cert.display(), f.key.display());
        }
    }
    Ok(())
}
