//! What can go wrong talking to the Kubernetes API, classified so that the coordinator's
//! `retry::with_backoff` knows what another attempt may fix, and so that every message names
//! the call (verb, resource, namespace/name) and what the operator should do.

use std::fmt;
use std::path::PathBuf;

/// The API call an error is about: `patch deployments/scale demo/infer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The RBAC verb: `get`, `list`, `patch`, `create`, `update`.
    pub verb: &'static str,
    /// The RBAC resource, with its subresource: `deployments/scale`, `leases`.
    pub resource: &'static str,
    pub namespace: String,
    /// `None` for a list (or a create, before the object exists).
    pub name: Option<String>,
}

impl Call {
    pub(crate) fn new(
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
        name: Option<&str>,
    ) -> Box<Self> {
        // Boxed so that every `KubeError` variant that names a call stays small.
        Box::new(Self {
            verb,
            resource,
            namespace: namespace.to_owned(),
            name: name.map(str::to_owned),
        })
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} in namespace {}",
            self.verb, self.resource, self.namespace
        )?;
        if let Some(name) = &self.name {
            write!(f, " (name {name})")?;
        }
        Ok(())
    }
}

/// A failed Kubernetes call, or a Kubernetes configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// 403: the coordinator's ServiceAccount lacks the permission. Retried (a Role may be being
    /// applied right now), then reported.
    #[error(
        "the API server refused to {call}: 403 Forbidden ({message}); grant the coordinator's ServiceAccount this verb (docs/kubernetes.md, RBAC)"
    )]
    Forbidden { call: Box<Call>, message: String },
    /// 409: another writer changed the object between our read and our write. Retried with a
    /// fresh read.
    #[error("conflict on {call}: 409 {reason} ({message}); another writer changed it first")]
    Conflict {
        call: Box<Call>,
        reason: String,
        message: String,
    },
    /// 404: the object does not exist. Not retried: the stage's `kubernetes` table names a
    /// Deployment that is not there (or the namespace is wrong).
    #[error(
        "cannot {call}: 404 Not Found; check the stage's [kubernetes] namespace and deployment"
    )]
    NotFound { call: Box<Call> },
    /// Another status from the API server; retried when the server may recover (5xx, 429).
    #[error("the API server answered {code} {reason} to {call}: {message}")]
    Api {
        call: Box<Call>,
        code: u16,
        reason: String,
        message: String,
    },
    /// The API server could not be reached or its answer not read.
    #[error("cannot {call}: {source}")]
    Transport {
        call: Box<Call>,
        #[source]
        source: Box<kube::Error>,
    },
    /// An answer that cannot be right (a negative replica count, a missing field).
    #[error("unexpected answer to {call}: {problem}")]
    BadAnswer { call: Box<Call>, problem: String },
    /// A HorizontalPodAutoscaler also scales the Deployment: two controllers would fight over
    /// its replicas, so SAIR leaves it alone. Not retried.
    #[error(
        "Deployment {namespace}/{deployment} is also scaled by the HorizontalPodAutoscaler {namespace}/{hpa}; SAIR will not fight it: delete the HPA before letting SAIR manage this stage (or keep the coordinator on --actuator dry-run)"
    )]
    HpaTargets {
        namespace: String,
        deployment: String,
        hpa: String,
    },
    /// This coordinator does not hold the Lease: only the leader scales. Not retried.
    #[error(
        "not the leader: the Lease {namespace}/{lease} is held by {}; only the leader scales",
        holder.as_deref().unwrap_or("nobody")
    )]
    NotLeader {
        namespace: String,
        lease: String,
        holder: Option<String>,
    },
    /// A stage's `kubernetes` table, or the Kubernetes options, cannot be used.
    #[error("invalid Kubernetes configuration: {0}")]
    Invalid(String),
    /// No cluster configuration found (neither in-cluster nor a kubeconfig).
    #[error(
        "cannot find a Kubernetes configuration (not in a pod, and no usable KUBECONFIG or ~/.kube/config): {0}"
    )]
    Infer(#[source] kube::config::InferConfigError),
    /// The kubeconfig file given cannot be used.
    #[error("cannot use the kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built from a configuration.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] Box<kube::Error>),
}

impl KubeError {
    /// Whether another attempt may succeed (see each variant).
    pub fn is_retryable(&self) -> bool {
        match self {
            KubeError::Forbidden { .. }
            | KubeError::Conflict { .. }
            | KubeError::Transport { .. } => true,
            KubeError::Api { code, .. } => *code >= 500 || *code == 429,
            KubeError::NotFound { .. }
            | KubeError::BadAnswer { .. }
            | KubeError::HpaTargets { .. }
            | KubeError::NotLeader { .. }
            | KubeError::Invalid(_)
            | KubeError::Infer(_)
            | KubeError::Kubeconfig { .. }
            | KubeError::Client(_) => false,
        }
    }

    /// Classifies what kube returned for `call`.
    pub(crate) fn from_kube(call: Box<Call>, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => {
                let message = status.message.clone();
                if status.is_forbidden() {
                    KubeError::Forbidden { call, message }
                } else if status.is_conflict() || status.is_already_exists() {
                    KubeError::Conflict {
                        call,
                        reason: if status.reason.is_empty() {
                            "Conflict".into()
                        } else {
                            status.reason.clone()
                        },
                        message,
                    }
                } else if status.is_not_found() {
                    KubeError::NotFound { call }
                } else {
                    KubeError::Api {
                        call,
                        code: status.code,
                        reason: status.reason.clone(),
                        message,
                    }
                }
            }
            other => KubeError::Transport {
                call,
                source: Box::new(other),
            },
        }
    }

    /// Whether this is a lost write race (409, Conflict or AlreadyExists).
    pub fn is_conflict(&self) -> bool {
        matches!(self, KubeError::Conflict { .. })
    }
}
