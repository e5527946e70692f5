//! The `kubernetes` actuator: sets each stage's Deployment replicas through the `scale`
//! subresource (`deployments/scale`), reads them back with the Deployment's ready count, refuses
//! a Deployment that a HorizontalPodAutoscaler also scales, and, when given a [`LeaderWatch`],
//! acts only while this coordinator holds the `coordination.k8s.io/v1` Lease ([`leader`]).
//!
//! Why the scale subresource rather than patching the Deployment: it is the narrowest write
//! RBAC can grant (`deployments/scale` `patch` cannot change the pod template, the image or
//! anything but the replica count), and it is what `kubectl scale` and the HPA use.
//!
//! API calls (and the RBAC verbs they need, docs/kubernetes.md):
//! - `scale`: `list horizontalpodautoscalers` in the stage's namespace (the HPA check), then
//!   `patch deployments/scale` with a JSON merge patch `{"spec":{"replicas":N}}`.
//! - `status`: `get deployments/scale` (desired: `spec.replicas`) and `get
//!   deployments/status` (serving: `status.readyReplicas`, which the scale subresource does not
//!   carry; the status subresource is read rather than the Deployment so that the Role names
//!   subresources only, and says what is read).
//!
//! Errors become [`ActuatorError::Kubernetes`] with a [`KubeError`] that names the call; 403 and
//! 409 are retryable, so `retry::with_backoff` retries, logs and counts them before reporting.

mod client;
mod error;
pub mod leader;
pub mod lease;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::{Actuator, ActuatorError, BoxFuture, ReplicaStatus, StageRef};

pub use client::{READ_TIMEOUT, client_from_config, connect};
pub use error::{Call, KubeError};
pub use leader::{DEFAULT_LEASE_NAME, LeaderElection, LeaderWatch, LeaseOptions};

/// The field manager SAIR's writes are recorded under (`metadata.managedFields`), so an
/// operator can see which replica counts came from SAIR.
pub const FIELD_MANAGER: &str = "sair-coordinator";

/// A stage's `[pipeline.stages.kubernetes]` table in the pipelines file: which Deployment
/// runs the stage's replicas.
///
/// ```toml
/// [pipeline.stages.kubernetes]
/// namespace = "demo"
/// deployment = "infer"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesStage {
    /// The Deployment's namespace (a DNS label).
    pub namespace: String,
    /// The Deployment's name (a DNS subdomain).
    pub deployment: String,
}

impl KubernetesStage {
    /// Checks the names as the API server would, so a typo is reported at start-up rather than
    /// as a 404 at the first decision.
    pub fn validate(&self) -> Result<(), String> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_subdomain("deployment", &self.deployment)
    }
}

/// `name` must be an RFC 1123 label: at most 63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn check_dns_label(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not a DNS label (at most 63 of a-z, 0-9 and '-', alphanumeric at both ends)"
        ))
    }
}

/// `name` must be an RFC 1123 subdomain: at most 253 characters, dot-separated labels.
pub(crate) fn check_dns_subdomain(what: &str, name: &str) -> Result<(), String> {
    if name.len() <= 253 && name.split('.').all(|l| check_dns_label(what, l).is_ok()) {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not a DNS subdomain (at most 253 characters of a-z, 0-9, '-' and '.', alphanumeric at both ends of each part)"
        ))
    }
}

/// Scales Deployments through the Kubernetes API. Built once per coordinator from the
/// pipelines file's `kubernetes` tables; see the module docs.
pub struct KubernetesActuator {
    client: kube::Client,
    stages: BTreeMap<StageRef, KubernetesStage>,
    leader: Option<LeaderWatch>,
}

impl fmt::Debug for KubernetesActuator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesActuator")
            .field("stages", &self.stages)
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

impl KubernetesActuator {
    /// An actuator for `stages` (every stage the coordinator manages, with its table), talking
    /// through `client` ([`connect`]). Every table is validated here.
    pub fn new(
        client: kube::Client,
        stages: impl IntoIterator<Item = (StageRef, KubernetesStage)>,
    ) -> Result<Self, ActuatorError> {
        let mut map = BTreeMap::new();
        for (stage, table) in stages {
            if let Err(reason) = table.validate() {
                return Err(ActuatorError::InvalidConfig { stage, reason });
            }
            map.insert(stage, table);
        }
        Ok(Self {
            client,
            stages: map,
            leader: None,
        })
    }

    /// Acts (scales) only while `leader` says this coordinator holds the Lease; `scale` fails
    /// with [`KubeError::NotLeader`] otherwise. `status` reads regardless.
    pub fn gated_by(mut self, leader: LeaderWatch) -> Self {
        self.leader = Some(leader);
        self
    }

    fn table(&self, stage: &StageRef) -> Result<&KubernetesStage, ActuatorError> {
        self.stages
            .get(stage)
            .ok_or_else(|| ActuatorError::UnknownStage {
                actuator: "kubernetes",
                stage: stage.clone(),
            })
    }

    fn check_leader(&self) -> Result<(), KubeError> {
        match &self.leader {
            Some(watch) if !watch.is_leader() => {
                let (namespace, lease) = watch.lease();
                Err(KubeError::NotLeader {
                    namespace: namespace.to_owned(),
                    lease: lease.to_owned(),
                    holder: watch.leadership().holder,
                })
            }
            _ => Ok(()),
        }
    }

    /// The name of an HPA in the stage's namespace whose `scaleTargetRef` is the stage's
    /// Deployment, if any.
    async fn hpa_targeting(&self, table: &KubernetesStage) -> Result<Option<String>, KubeError> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &table.namespace);
        let call = Call::new("list", "horizontalpodautoscalers", &table.namespace, None);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| KubeError::from_kube(call, e))?;
        Ok(list.items.into_iter().find_map(|hpa| {
            let target = hpa.spec?.scale_target_ref;
            // An HPA names its target by kind and name; the group is `apps` for a
            // Deployment (an absent apiVersion is taken as a match, to err on refusing).
            let same_group = target
                .api_version
                .as_deref()
                .is_none_or(|v| v.starts_with("apps/"));
            (target.kind == "Deployment" && target.name == table.deployment && same_group)
                .then(|| hpa.metadata.name.unwrap_or_default())
        }))
    }

    async fn scale_stage(&self, table: &KubernetesStage, replicas: i32) -> Result<(), KubeError> {
        // A follower makes no API call at all.
        self.check_leader()?;
        if let Some(hpa) = self.hpa_targeting(table).await? {
            return Err(KubeError::HpaTargets {
                namespace: table.namespace.clone(),
                deployment: table.deployment.clone(),
                hpa,
            });
        }
        // Checked again right before the write, so that a Lease lost during the HPA list is
        // honoured.
        self.check_leader()?;
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &table.namespace);
        let call = Call::new(
            "patch",
            "deployments/scale",
            &table.namespace,
            Some(&table.deployment),
        );
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let scale = api
            .patch_scale(&table.deployment, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| KubeError::from_kube(call.clone(), e))?;
        let now = scale.spec.and_then(|s| s.replicas);
        if now != Some(replicas) {
            return Err(KubeError::BadAnswer {
                call,
                problem: format!("asked for {replicas} replicas, the answer says {now:?}"),
            });
        }
        Ok(())
    }

    async fn stage_status(&self, table: &KubernetesStage) -> Result<ReplicaStatus, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &table.namespace);
        let name = Some(table.deployment.as_str());
        let call = Call::new("get", "deployments/scale", &table.namespace, name);
        let scale = api
            .get_scale(&table.deployment)
            .await
            .map_err(|e| KubeError::from_kube(call.clone(), e))?;
        let desired = scale
            .spec
            .and_then(|s| s.replicas)
            .ok_or_else(|| KubeError::BadAnswer {
                call: call.clone(),
                problem: "the scale has no spec.replicas".into(),
            })?;
        let desired = u32::try_from(desired).map_err(|_| KubeError::BadAnswer {
            call,
            problem: format!("spec.replicas is {desired}"),
        })?;
        let call = Call::new("get", "deployments/status", &table.namespace, name);
        let deployment = api
            .get_status(&table.deployment)
            .await
            .map_err(|e| KubeError::from_kube(call.clone(), e))?;
        // The API server omits a zero readyReplicas, so absent means none ready.
        let ready = deployment
            .status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let ready = u32::try_from(ready).map_err(|_| KubeError::BadAnswer {
            call,
            problem: format!("status.readyReplicas is {ready}"),
        })?;
        // While scaling down, pods being removed still count as ready for a moment; the trait
        // promises serving ≤ desired (a replica leaves traffic before it stops).
        Ok(ReplicaStatus {
            desired,
            serving: ready.min(desired),
        })
    }
}

impl Actuator for KubernetesActuator {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn scale<'a>(
        &'a mut self,
        stage: &'a StageRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ActuatorError>> {
        Box::pin(async move {
            let table = self.table(stage)?;
            // `spec.replicas` is an int32.
            let want = i32::try_from(replicas).map_err(|_| ActuatorError::TooManyReplicas {
                stage: stage.clone(),
                requested: replicas,
                max: i32::MAX.unsigned_abs(),
            })?;
            self.scale_stage(table, want)
                .await
                .map_err(|source| ActuatorError::Kubernetes {
                    stage: stage.clone(),
                    source: Box::new(source),
                })?;
            tracing::info!(
                %stage,
                namespace = %table.namespace,
                deployment = %table.deployment,
                replicas,
                "patched deployments/scale"
            );
            Ok(())
        })
    }

    fn status<'a>(
        &'a mut self,
        stage: &'a StageRef,
    ) -> BoxFuture<'a, Result<ReplicaStatus, ActuatorError>> {
        Box::pin(async move {
            let table = self.table(stage)?;
            self.stage_status(table)
                .await
                .map_err(|source| ActuatorError::Kubernetes {
                    stage: stage.clone(),
                    source: Box::new(source),
                })
        })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        // The Deployments keep running at their last count: stopping the coordinator must not
        // stop the pipeline. The Lease is released by `LeaderElection::shutdown`.
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests;
