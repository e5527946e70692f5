//! `sair inject`: adds the SAIR sidecar (and, for a GPU stage, the interception library) to
//! Kubernetes workloads, the way `linkerd inject` does: YAML in, YAML out, so that
//! `sair inject app.yaml --pipeline p --stage s | kubectl apply -f -` works.
//!
//! Text to text only: no cluster access and no file system here (the command-line half is
//! [`cli`]). What is added, and why, is in docs/kubernetes.md:
//!
//! - the sidecar as a native sidecar: an init container with `restartPolicy: Always`, resource
//!   requests and a memory limit but no CPU limit (a CPU limit throttles the request path);
//! - the pod labels `sair.io/pipeline` / `sair.io/stage` and plain `prometheus.io/*` scrape
//!   annotations for the sidecar's admin port;
//! - every Service of the input that selects the pods and targets the model server's port is
//!   pointed at the sidecar's port instead;
//! - with `--gpu`: the interception library (an `emptyDir` filled by an init container from
//!   the intercept image), `LD_PRELOAD`, `SAIR_SHM_DIR`, the segments' hostPath, and
//!   `SAIR_SEGMENT = <pipeline>.<stage>.<pod uid>` (the pod uid from the downward API), which
//!   is how the node agent maps a segment to its pipeline and stage.
//!
//! Everything else is kept: other containers, init containers, env, volumes, and the order of
//! keys. Comments are not kept (the YAML library does not carry them). Every addition is an
//! upsert by name, so injecting twice gives the same output as injecting once.

pub mod cli;
mod pod;
mod service;

use std::fmt;

use serde::Deserialize;
use serde_norway::{Mapping, Value};

/// Name of the sidecar init container.
pub const SIDECAR_CONTAINER: &str = "sair-sidecar";
/// Name of the init container that copies `libsair_intercept.so` into the pod (`--gpu`).
pub const INSTALL_CONTAINER: &str = "sair-intercept-install";
/// The sidecar's request port, and its name (Services target the name).
pub const PROXY_PORT: u16 = 4180;
pub const PROXY_PORT_NAME: &str = "sair-proxy";
/// The sidecar's admin port (`/metrics`, `/healthz`, `/readyz`), and its name.
pub const ADMIN_PORT: u16 = 4191;
pub const ADMIN_PORT_NAME: &str = "sair-admin";
/// Pod labels naming the pipeline and the stage.
pub const LABEL_PIPELINE: &str = "sair.io/pipeline";
pub const LABEL_STAGE: &str = "sair.io/stage";
/// Pod annotation marking an injected pod template.
pub const ANNOTATION_INJECTED: &str = "sair.io/injected";
/// The segments' directory, on the node and in the pod (the node agent's `--shm-dir`).
pub const SHM_DIR: &str = "/var/run/sair/shm";
/// Where the interception library is mounted in the model-server container.
pub const LIB_DIR: &str = "/var/run/sair/lib";
/// The interception library's file name, and its path inside the intercept image.
pub const LIB_FILE: &str = "libsair_intercept.so";
pub const LIB_IN_IMAGE: &str = "/usr/lib/sair/libsair_intercept.so";
/// The node agent's report port (a hostPort of the DaemonSet, UDP/QUIC).
pub const AGENT_REPORT_PORT: u16 = 7301;
/// Secret (in the workload's namespace) holding `ca.pem`, the CA that signed the agents'
/// report certificate; and the server name that certificate carries (`sair certs issue`).
pub const AGENT_CA_SECRET: &str = "sair-agent-ca";
pub const AGENT_CA_DIR: &str = "/etc/sair/agent-ca";
pub const AGENT_SERVER_NAME: &str = "sair-mesh";
/// Default images (built from the Dockerfiles in `images/`).
pub const DEFAULT_SIDECAR_IMAGE: &str = "ghcr.io/example/sair-sidecar:0.1.0";
pub const DEFAULT_INTERCEPT_IMAGE: &str = "ghcr.io/example/sair-intercept:0.1.0";

/// The kinds whose pod template gets the sidecar.
pub const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// Longest `pipeline` + `stage`: the segment name `<pipeline>.<stage>.<uid>` (36-character
/// uid, two dots) must fit the 128 characters a segment name may have.
pub const MAX_PIPELINE_AND_STAGE: usize = 128 - 36 - 2;

/// What to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    pub pipeline: String,
    pub stage: String,
    /// A GPU stage: add the interception library and the segment.
    pub gpu: bool,
    /// The sidecar's `--next` (empty: the last stage).
    pub next: Option<String>,
    /// The model-server container (default: the first container).
    pub container: Option<String>,
    /// The model server's port (default: the container's first TCP `containerPort`).
    pub upstream_port: Option<u16>,
    pub sidecar_image: String,
    pub intercept_image: String,
}

impl InjectOptions {
    /// Options with the default images, after checking the names.
    pub fn try_new(pipeline: &str, stage: &str) -> Result<Self, BadName> {
        parse_name(pipeline).map_err(|reason| BadName::Pipeline { reason })?;
        parse_name(stage).map_err(|reason| BadName::Stage { reason })?;
        let len = pipeline.len() + stage.len();
        if len > MAX_PIPELINE_AND_STAGE {
            return Err(BadName::TooLong { len });
        }
        Ok(Self {
            pipeline: pipeline.to_owned(),
            stage: stage.to_owned(),
            gpu: false,
            next: None,
            container: None,
            upstream_port: None,
            sidecar_image: DEFAULT_SIDECAR_IMAGE.to_owned(),
            intercept_image: DEFAULT_INTERCEPT_IMAGE.to_owned(),
        })
    }
}

/// A pipeline or stage name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    #[error("--pipeline: {reason}")]
    Pipeline { reason: String },
    #[error("--stage: {reason}")]
    Stage { reason: String },
    #[error(
        "--pipeline and --stage are {len} characters together; at most {MAX_PIPELINE_AND_STAGE} \
         fit in a segment name"
    )]
    TooLong { len: usize },
}

/// A pipeline or stage name: a DNS label (1–63 of `a-z0-9-`, starting and ending with a letter
/// or digit), so that it is a valid label value and segment-name part. For clap's
/// `value_parser`.
pub fn parse_name(s: &str) -> Result<String, String> {
    let ok_chars = s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if s.is_empty() || s.len() > 63 || !ok_chars || s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "{s:?} is not a DNS label: 1 to 63 of a-z, 0-9 and '-', starting and ending with a \
             letter or digit"
        ));
    }
    Ok(s.to_owned())
}

/// Which document an error is about: its 1-based position in the stream, and its kind and
/// name when they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRef {
    pub index: usize,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.index)?;
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) => write!(f, " ({k}/{n})"),
            (Some(k), None) => write!(f, " ({k})"),
            _ => Ok(()),
        }
    }
}

/// Why the input could not be injected. Every variant but [`InjectError::Serialize`] is bad
/// input.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("document {doc}: not YAML: {source}")]
    NotYaml {
        doc: usize,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{doc}: not a Kubernetes object: {reason}")]
    NotAnObject { doc: DocRef, reason: &'static str },
    #[error(
        "{doc}: {kind} is not a workload kind; sair inject adds the sidecar to {}",
        WORKLOAD_KINDS.join(", ")
    )]
    NotAWorkload { doc: DocRef, kind: String },
    #[error("{doc}: the pod template has no containers ({field} is empty or missing)")]
    NoContainers { doc: DocRef, field: String },
    #[error("{doc}: no container named {name:?} (containers: {have})")]
    NoSuchContainer {
        doc: DocRef,
        name: String,
        have: String,
    },
    #[error(
        "{doc}: container {container:?} declares no TCP containerPort: give the model server's \
         port with --upstream-port"
    )]
    NoUpstreamPort { doc: DocRef, container: String },
    #[error(
        "{doc}: container {container:?} already uses port {port}, which the SAIR sidecar needs"
    )]
    PortTaken {
        doc: DocRef,
        container: String,
        port: u16,
    },
    #[error("{doc}: {field} must be {expected}")]
    Malformed {
        doc: DocRef,
        field: String,
        expected: &'static str,
    },
    #[error("the input holds no Kubernetes object")]
    Empty,
    #[error("could not write YAML: {0}")]
    Serialize(#[source] serde_norway::Error),
}

impl InjectError {
    /// Bad input (the user's YAML), as opposed to a failure of ours.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Serialize(_))
    }
}

/// Injects every workload of `input` (one or many YAML documents) and points the Services that
/// select them at the sidecar. Returns the whole output, or the first error (nothing partial).
pub fn inject(input: &str, opts: &InjectOptions) -> Result<String, InjectError> {
    let mut docs = parse(input)?;
    if docs.is_empty() {
        return Err(InjectError::Empty);
    }
    let mut targets = Vec::new();
    let mut first_other = None;
    for (doc, value) in &mut docs {
        let kind = doc.kind.clone().unwrap_or_default();
        if WORKLOAD_KINDS.contains(&kind.as_str()) {
            targets.push(pod::inject_workload(doc, &kind, value, opts)?);
        } else if first_other.is_none() {
            first_other = Some((doc.clone(), kind));
        }
    }
    // Other kinds pass through unchanged beside a workload (a whole app's manifest can be piped
    // through); an input with no workload at all is a mistake.
    if targets.is_empty() {
        let (doc, kind) = first_other.ok_or(InjectError::Empty)?;
        return Err(InjectError::NotAWorkload { doc, kind });
    }
    for (doc, value) in &mut docs {
        if doc.kind.as_deref() == Some("Service") {
            service::retarget(doc, value, &targets)?;
        }
    }
    let mut out = String::new();
    for (i, (_, value)) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_norway::to_string(value).map_err(InjectError::Serialize)?);
    }
    Ok(out)
}

/// Every non-empty document, checked to be a Kubernetes object.
fn parse(input: &str) -> Result<Vec<(DocRef, Value)>, InjectError> {
    let mut docs = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(input).enumerate() {
        let index = i + 1;
        let value =
            Value::deserialize(de).map_err(|source| InjectError::NotYaml { doc: index, source })?;
        if value.is_null() {
            continue;
        }
        let str_at = |m: &Mapping, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let Some(map) = value.as_mapping() else {
            return Err(InjectError::NotAnObject {
                doc: DocRef {
                    index,
                    kind: None,
                    name: None,
                },
                reason: "the document is not a mapping",
            });
        };
        let doc = DocRef {
            index,
            kind: str_at(map, "kind"),
            name: map
                .get("metadata")
                .and_then(Value::as_mapping)
                .and_then(|m| str_at(m, "name")),
        };
        if doc.kind.is_none() || str_at(map, "apiVersion").is_none() {
            return Err(InjectError::NotAnObject {
                doc,
                reason: "it has no string `apiVersion` and `kind`",
            });
        }
        docs.push((doc, value));
    }
    Ok(docs)
}

/// What a Service needs to know about an injected workload's pods.
#[derive(Debug, Clone)]
struct PodTarget {
    namespace: Option<String>,
    /// The pod template's labels, as the user wrote them.
    labels: Vec<(String, String)>,
    /// The model server's port and its name, if it has one.
    upstream_port: u16,
    upstream_port_name: Option<String>,
}

// Small builders for the YAML that is added.

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn seq<const N: usize>(items: [Value; N]) -> Value {
    Value::Sequence(items.into())
}

#[cfg(test)]
mod tests;
