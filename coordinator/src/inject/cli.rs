//! `sair inject [FILE|-] --pipeline P --stage S [--gpu] [--next TARGET]`: reads the file (or
//! stdin), writes the injected YAML to stdout, and nothing at all when it fails.
//!
//! Exit codes: 0 done; **2** bad input (not YAML, not a Kubernetes object, no workload, no
//! containers: the code `linkerd inject` users script against, and the one issue 12 asks
//! for), with an error naming the document on stderr; 64 a bad flag; 66 a file that cannot be
//! read; 74 stdout cannot be written; 70 an internal error.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use sair_service::exit::Exit;

use super::{DEFAULT_INTERCEPT_IMAGE, DEFAULT_SIDECAR_IMAGE, InjectOptions, inject, parse_name};

/// Exit status for input that cannot be injected.
pub const EXIT_BAD_INPUT: u8 = 2;

/// The options of `sair inject`.
#[derive(Debug, Clone, clap::Args)]
pub struct InjectArgs {
    /// Kubernetes YAML (one or many documents); `-` or nothing reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    pub file: PathBuf,
    /// Pipeline the workload belongs to (a DNS label): the sidecar's `pipeline` metric label,
    /// the `sair.io/pipeline` pod label and the first part of the GPU segment name.
    #[arg(long, env = "SAIR_PIPELINE", value_parser = parse_name)]
    pub pipeline: String,
    /// Stage of the pipeline (a DNS label): the `stage` label and the `sair.io/stage` pod label.
    #[arg(long, env = "SAIR_STAGE", value_parser = parse_name)]
    pub stage: String,
    /// A GPU stage: add libsair_intercept.so (LD_PRELOAD), SAIR_SHM_DIR, SAIR_SEGMENT and the
    /// segments' hostPath to the model-server container.
    #[arg(long, env = "SAIR_GPU")]
    pub gpu: bool,
    /// The next stage, as the sidecar's --next takes it: host:port[,host:port…], dns:NAME:PORT
    /// (e.g. a headless Service) or file:PATH. Without it this is the last stage.
    #[arg(long, env = "SAIR_NEXT")]
    pub next: Option<String>,
    /// The model-server container (default: the first container of the pod).
    #[arg(long, env = "SAIR_CONTAINER")]
    pub container: Option<String>,
    /// The model server's port, which the sidecar forwards to (default: the container's first
    /// TCP containerPort).
    #[arg(long, env = "SAIR_UPSTREAM_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub upstream_port: Option<u16>,
    /// Image of the sidecar.
    #[arg(long, env = "SAIR_SIDECAR_IMAGE", default_value = DEFAULT_SIDECAR_IMAGE)]
    pub sidecar_image: String,
    /// Image carrying libsair_intercept.so (--gpu).
    #[arg(long, env = "SAIR_INTERCEPT_IMAGE", default_value = DEFAULT_INTERCEPT_IMAGE)]
    pub intercept_image: String,
}

/// Runs `sair inject`; prints the output, or the error on stderr.
pub fn run(a: InjectArgs) -> ExitCode {
    let opts = match InjectOptions::try_new(&a.pipeline, &a.stage) {
        Ok(o) => InjectOptions {
            gpu: a.gpu,
            next: a.next,
            container: a.container,
            upstream_port: a.upstream_port,
            sidecar_image: a.sidecar_image,
            intercept_image: a.intercept_image,
            ..o
        },
        Err(e) => {
            eprintln!("sair: error: {e}");
            return Exit::Usage.into();
        }
    };
    let stdin = a.file.as_os_str() == "-";
    let source = if stdin {
        "stdin".to_owned()
    } else {
        a.file.display().to_string()
    };
    let mut input = String::new();
    let read = if stdin {
        std::io::stdin().read_to_string(&mut input).map(drop)
    } else {
        std::fs::read_to_string(&a.file).map(|s| input = s)
    };
    if let Err(e) = read {
        eprintln!("sair: error: cannot read {source}: {e}");
        return if e.kind() == std::io::ErrorKind::InvalidData {
            ExitCode::from(EXIT_BAD_INPUT)
        } else {
            Exit::NoInput.into()
        };
    }
    let out = match inject(&input, &opts) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("sair: error: {source}: {e}");
            return if e.is_bad_input() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                Exit::Internal.into()
            };
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("sair: error: cannot write stdout: {e}");
        return Exit::IoErr.into();
    }
    Exit::Ok.into()
}
