//! The Lease driver: reads and writes the `coordination.k8s.io/v1` Lease on the rounds the
//! sans-IO [`LeaseCore`] asks for, and publishes where this coordinator stands on a watch
//! channel ([`LeaderWatch`]). No rule lives here.

use std::time::SystemTime;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::lease::{Leadership, LeaseConfig, LeaseCore, LeaseRecord, Plan};
use super::{Call, KubeError, check_dns_label, check_dns_subdomain};

/// The Lease's name in the base manifests (`manifests/base`, namespace `sair`).
pub const DEFAULT_LEASE_NAME: &str = "sair-coordinator";

/// Which Lease to compete for, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    namespace: String,
    name: String,
    config: LeaseConfig,
}

impl LeaseOptions {
    /// `namespace`/`name` of the Lease (created if missing; RBAC: `create leases` in that
    /// namespace, `get`/`update` on that name).
    pub fn try_new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        config: LeaseConfig,
    ) -> Result<Self, KubeError> {
        let (namespace, name) = (namespace.into(), name.into());
        check_dns_label("lease namespace", &namespace).map_err(KubeError::Invalid)?;
        check_dns_subdomain("lease name", &name).map_err(KubeError::Invalid)?;
        Ok(Self {
            namespace,
            name,
            config,
        })
    }
}

/// Where this coordinator stands, readable from any task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaderWatch {
    namespace: String,
    name: String,
    rx: watch::Receiver<Leadership>,
}

impl LeaderWatch {
    /// The latest published state.
    pub fn leadership(&self) -> Leadership {
        self.rx.borrow().clone()
    }

    /// Whether this coordinator may act now: it holds the Lease and its last renewal is
    /// within the renew deadline (checked against the clock, not just the last message).
    pub fn is_leader(&self) -> bool {
        self.rx.borrow().is_leader_at(Instant::now().into_std())
    }

    /// The Lease's term (`leaseTransitions`) while this coordinator may act ([`Self::is_leader`]),
    /// else `None`: what the coordinator hands the mesh as its candidacy
    /// (`sair_mesh::leader::Candidacy`), so that the Lease holder is the mesh's leader.
    pub fn held_term(&self) -> Option<u64> {
        let l = self.rx.borrow();
        l.is_leader_at(Instant::now().into_std()).then_some(l.term)
    }

    /// The Lease's namespace and name.
    pub fn lease(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }

    /// Waits for the next published change; `false` once the driver has stopped.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

/// The running Lease driver. Dropping it stops the task without releasing the Lease (it then
/// expires); call [`LeaderElection::shutdown`] to hand it over at once.
#[derive(Debug)]
pub struct LeaderElection {
    watch: LeaderWatch,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Cancels the task when the handle is dropped without `shutdown`.
    _stop_on_drop: DropGuard,
}

impl LeaderElection {
    /// Starts competing for the Lease on the current Tokio runtime.
    pub fn spawn(client: kube::Client, options: LeaseOptions) -> Self {
        let core = LeaseCore::new(options.config.clone());
        let (tx, rx) = watch::channel(core.leadership());
        let cancel = CancellationToken::new();
        let driver = Driver {
            api: Api::namespaced(client, &options.namespace),
            namespace: options.namespace.clone(),
            name: options.name.clone(),
            core,
            tx,
            last: None,
        };
        let task = tokio::spawn(driver.run(cancel.clone()));
        Self {
            watch: LeaderWatch {
                namespace: options.namespace,
                name: options.name,
                rx,
            },
            _stop_on_drop: cancel.clone().drop_guard(),
            cancel,
            task,
        }
    }

    pub fn watch(&self) -> LeaderWatch {
        self.watch.clone()
    }

    /// Stops competing and, if this coordinator holds the Lease, releases it (no holder, a
    /// one-second lease) so that another coordinator takes over without waiting it out.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the Lease driver task failed");
        }
    }
}

struct Driver {
    api: Api<Lease>,
    namespace: String,
    name: String,
    core: LeaseCore,
    tx: watch::Sender<Leadership>,
    /// The Lease as last read or written, so that a write keeps its labels, annotations and
    /// owners.
    last: Option<Lease>,
}

impl Driver {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let started = Instant::now();
            tokio::select! {
                _ = cancel.cancelled() => break,
                () = self.round(started) => {}
            }
            self.publish();
            let wake = Instant::from_std(self.core.next_round(started.into_std()));
            tokio::select! {
                _ = cancel.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.release().await;
        self.publish();
    }

    fn call(&self, verb: &'static str) -> Box<Call> {
        Call::new(verb, "leases", &self.namespace, Some(&self.name))
    }

    /// One read and at most one write, each bounded by a third of a lease so that a hung API
    /// server cannot hold the loop past the renew deadline.
    async fn round(&mut self, started: Instant) {
        let bound = self.core.config().renew_every();
        let params = PostParams::default();
        let read = match tokio::time::timeout(bound, self.api.get_opt(&self.name)).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(e)) => return self.failed(KubeError::from_kube(self.call("get"), e)),
            Err(_) => return self.timed_out("get"),
        };
        self.last.clone_from(&read);
        let record = read.as_ref().map(record_of);
        let plan = self
            .core
            .on_read(started.into_std(), SystemTime::now(), record);
        let (verb, written) = match plan {
            Plan::Follow { .. } => return,
            Plan::Create(rec) => {
                let lease = lease_of(None, &self.namespace, &self.name, &rec);
                let write = self.api.create(&params, &lease);
                ("create", tokio::time::timeout(bound, write).await)
            }
            Plan::Update(rec) => {
                let lease = lease_of(read, &self.namespace, &self.name, &rec);
                let write = self.api.replace(&self.name, &params, &lease);
                ("update", tokio::time::timeout(bound, write).await)
            }
        };
        match written {
            Ok(Ok(lease)) => {
                self.core.on_written(started.into_std(), record_of(&lease));
                self.last = Some(lease);
            }
            Ok(Err(e)) => self.failed(KubeError::from_kube(self.call(verb), e)),
            Err(_) => self.timed_out(verb),
        }
    }

    fn failed(&mut self, err: KubeError) {
        if err.is_conflict() {
            // Another candidate wrote first: it holds the Lease now.
            tracing::info!(error = %err, "lost a Lease write race; following");
            self.core.on_conflict();
        } else {
            tracing::warn!(error = %err, "Lease call failed; trying again next round");
            self.core.on_error();
        }
    }

    fn timed_out(&mut self, verb: &'static str) {
        let bound = self.core.config().renew_every();
        tracing::warn!(call = %self.call(verb), ?bound, "Lease call timed out; trying again next round");
        self.core.on_error();
    }

    /// Publishes the state, logging every change of holder or of our own role.
    fn publish(&self) {
        let now = self.core.leadership();
        let before = self.tx.borrow().clone();
        let leads = |l: &Leadership| l.leading_until.is_some();
        if leads(&now) != leads(&before) || now.holder != before.holder {
            tracing::info!(
                lease = %format_args!("{}/{}", self.namespace, self.name),
                identity = %now.identity,
                leading = leads(&now),
                holder = now.holder.as_deref().unwrap_or(""),
                term = now.term,
                "Lease leadership changed"
            );
        }
        self.tx.send_replace(now);
    }

    async fn release(&mut self) {
        let Some(rec) = self.core.release(SystemTime::now()) else {
            return;
        };
        let lease = lease_of(self.last.take(), &self.namespace, &self.name, &rec);
        let bound = self.core.config().renew_every();
        let params = PostParams::default();
        let write = self.api.replace(&self.name, &params, &lease);
        match tokio::time::timeout(bound, write).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.name, "released the Lease"),
            Ok(Err(e)) => tracing::warn!(
                error = %KubeError::from_kube(self.call("update"), e),
                "could not release the Lease; it expires by itself"
            ),
            Err(_) => tracing::warn!(
                ?bound,
                "releasing the Lease timed out; it expires by itself"
            ),
        }
    }
}

/// The fields the core reads. Out-of-range numbers from the server are treated as absent.
fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        duration_seconds: spec
            .lease_duration_seconds
            .and_then(|s| u32::try_from(s).ok())
            .filter(|&s| s > 0),
        acquire_time: spec.acquire_time.map(|t| SystemTime::from(t.0)),
        renew_time: spec.renew_time.map(|t| SystemTime::from(t.0)),
        transitions: spec
            .lease_transitions
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
        resource_version: lease.metadata.resource_version.clone(),
    }
}

/// `base` (the Lease as read, so labels, annotations and owners are kept) with the record's
/// fields written in; a new Lease when there is no base.
fn lease_of(base: Option<Lease>, namespace: &str, name: &str, rec: &LeaseRecord) -> Lease {
    let mut lease = base.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    lease.metadata.resource_version = rec.resource_version.clone();
    let micro = |t: Option<SystemTime>| t.and_then(|t| Timestamp::try_from(t).ok()).map(MicroTime);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(rec.holder.clone().unwrap_or_default());
    spec.lease_duration_seconds = rec.duration_seconds.and_then(|s| i32::try_from(s).ok());
    spec.acquire_time = micro(rec.acquire_time);
    spec.renew_time = micro(rec.renew_time);
    spec.lease_transitions = Some(i32::try_from(rec.transitions).unwrap_or(i32::MAX));
    lease
}
