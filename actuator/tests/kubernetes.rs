//! The `kubernetes` actuator and the Lease driver against a local HTTP server that speaks the
//! relevant part of the Kubernetes API (`kubernetes/fake_api.rs`), checking the exact requests
//! sent: method, path, query, content type and body.

// A test crate's root resolves modules beside it, not in a folder of its name: point there.
#[path = "kubernetes/fake_api.rs"]
mod fake_api;

use std::time::Duration;

use fake_api::FakeApi;
use sair_actuator::kubernetes::lease::LeaseConfig;
use sair_actuator::kubernetes::{
    KubeError, KubernetesActuator, KubernetesStage, LeaderElection, LeaderWatch, LeaseOptions,
};
use sair_actuator::retry::{self, Backoff};
use sair_actuator::{Actuator, ActuatorError, ReplicaStatus, StageRef};
use serde_json::json;

const SCALE: &str = "/apis/apps/v1/namespaces/demo/deployments/infer/scale";
const DEPLOYMENT_STATUS: &str = "/apis/apps/v1/namespaces/demo/deployments/infer/status";
const HPAS: &str = "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/sair/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/sair/leases/sair-coordinator";

fn stage() -> StageRef {
    StageRef::new("demo", "infer")
}

fn actuator(api: &FakeApi) -> KubernetesActuator {
    let table = KubernetesStage {
        namespace: "demo".into(),
        deployment: "infer".into(),
    };
    KubernetesActuator::new(api.client(), [(stage(), table)]).expect("valid stages")
}

/// Three quick attempts, so that retries are visible without slowing the test.
fn quick() -> Backoff {
    Backoff::try_new(3, Duration::from_millis(1), Duration::from_millis(2), 0.0).expect("valid")
}

fn kube_error(err: &ActuatorError) -> &KubeError {
    match err {
        ActuatorError::Kubernetes { source, .. } => source,
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }
}

#[tokio::test]
async fn status_reads_the_scale_and_ready_replicas_and_scale_patches_the_subresource() {
    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 1, 1);
    let mut act = actuator(&api);
    assert_eq!(act.name(), "kubernetes");

    let st = act.status(&stage()).await.expect("status");
    assert_eq!(
        st,
        ReplicaStatus {
            desired: 1,
            serving: 1
        }
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", SCALE)
    );
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path.as_str()),
        ("GET", DEPLOYMENT_STATUS)
    );

    act.scale(&stage(), 3).await.expect("scale");
    let reqs = api.requests();
    assert_eq!(reqs.len(), 4, "{reqs:#?}");
    // The HPA check comes first, then the one write.
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].path.as_str()),
        ("GET", HPAS)
    );
    let patch = &reqs[3];
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", SCALE)
    );
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.body, Some(json!({ "spec": { "replicas": 3 } })));
    // kube writes the query as `&fieldManager=…` (a leading empty pair the API server
    // ignores): compare the parameters.
    let params: Vec<&str> = patch
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(params, ["fieldManager=sair-coordinator"]);
    assert_eq!(api.replicas("demo", "infer"), Some(3));

    // Desired follows the patch; serving waits for readiness.
    let st = act.status(&stage()).await.expect("status");
    assert_eq!(
        st,
        ReplicaStatus {
            desired: 3,
            serving: 1
        }
    );
    api.set_ready("demo", "infer", 3);
    let st = act.status(&stage()).await.expect("status");
    assert_eq!(
        st,
        ReplicaStatus {
            desired: 3,
            serving: 3
        }
    );

    // Scaling down: pods on their way out still count as ready for a moment; serving never
    // exceeds desired.
    act.scale(&stage(), 1).await.expect("scale down");
    let st = act.status(&stage()).await.expect("status");
    assert_eq!(
        st,
        ReplicaStatus {
            desired: 1,
            serving: 1
        }
    );
    api.set_ready("demo", "infer", 0);
    let st = act.status(&stage()).await.expect("status");
    assert_eq!(
        st,
        ReplicaStatus {
            desired: 1,
            serving: 0
        }
    );
}

#[tokio::test]
async fn a_deployment_an_hpa_also_targets_is_refused_and_not_patched() {
    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 2, 2);
    api.add_hpa("demo", "other-hpa", "post");
    let mut act = actuator(&api);
    // An HPA on another Deployment does not matter.
    act.scale(&stage(), 3).await.expect("scale");
    assert_eq!(api.replicas("demo", "infer"), Some(3));

    api.add_hpa("demo", "infer-hpa", "infer");
    let before = api.requests_to("PATCH", SCALE).len();
    let err = retry::scale(&mut act, &stage(), 4, &quick())
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        matches!(kube_error(&err), KubeError::HpaTargets { hpa, .. } if hpa == "infer-hpa"),
        "{err:?}"
    );
    assert!(
        text.contains("Deployment demo/infer")
            && text.contains("HorizontalPodAutoscaler demo/infer-hpa"),
        "{text}"
    );
    assert!(!err.is_retryable());
    // Not retried (one list), nothing written.
    assert_eq!(api.requests_to("GET", HPAS).len(), 2);
    assert_eq!(api.requests_to("PATCH", SCALE).len(), before);
    assert_eq!(api.replicas("demo", "infer"), Some(3));
}

#[tokio::test]
async fn a_403_from_rbac_is_retried_then_reported_with_the_missing_permission() {
    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 1, 1);
    let mut act = actuator(&api);

    // Refused on every attempt: retried, then the last error is reported.
    api.fail("PATCH", SCALE, 100, 403, "Forbidden");
    let err = retry::scale(&mut act, &stage(), 2, &quick())
        .await
        .expect_err("forbidden");
    assert!(
        matches!(kube_error(&err), KubeError::Forbidden { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("stage demo/infer: ")
            && text.contains("patch deployments/scale in namespace demo (name infer)")
            && text.contains("403 Forbidden")
            && text.contains("cannot patch resource")
            && text.contains("RBAC"),
        "{text}"
    );
    assert_eq!(api.requests_to("PATCH", SCALE).len(), 3, "three attempts");
    assert_eq!(api.replicas("demo", "infer"), Some(1));

    // Granted while retrying (two refusals, then the Role is there): the call succeeds.
    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 1, 1);
    let mut act = actuator(&api);
    api.fail("PATCH", SCALE, 2, 403, "Forbidden");
    retry::scale(&mut act, &stage(), 2, &quick())
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(api.requests_to("PATCH", SCALE).len(), 3);
    assert_eq!(api.replicas("demo", "infer"), Some(2));

    // A 403 on the HPA check (the read-only permission missing) fails the same way, naming
    // that call: SAIR does not scale what it cannot check.
    api.fail("GET", HPAS, 100, 403, "Forbidden");
    let err = retry::scale(&mut act, &stage(), 3, &quick())
        .await
        .expect_err("forbidden");
    assert!(
        err.to_string()
            .contains("list horizontalpodautoscalers in namespace demo"),
        "{err}"
    );
    assert_eq!(api.replicas("demo", "infer"), Some(2));
}

#[tokio::test]
async fn a_409_conflict_is_retried_then_reported() {
    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 1, 1);
    let mut act = actuator(&api);

    api.fail("PATCH", SCALE, 100, 409, "Conflict");
    let err = retry::scale(&mut act, &stage(), 2, &quick())
        .await
        .expect_err("conflict");
    assert!(
        matches!(kube_error(&err), KubeError::Conflict { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "conflict on patch deployments/scale in namespace demo (name infer): 409 Conflict"
        ),
        "{text}"
    );
    assert_eq!(api.requests_to("PATCH", SCALE).len(), 3);

    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 1, 1);
    let mut act = actuator(&api);
    api.fail("PATCH", SCALE, 1, 409, "Conflict");
    retry::scale(&mut act, &stage(), 4, &quick())
        .await
        .expect("the second attempt succeeds");
    assert_eq!(api.requests_to("PATCH", SCALE).len(), 2);
    assert_eq!(api.replicas("demo", "infer"), Some(4));
}

#[tokio::test]
async fn a_missing_deployment_and_an_unknown_stage_are_not_retried() {
    let api = FakeApi::start().await;
    let mut act = actuator(&api);
    let err = retry::status(&mut act, &stage(), &quick())
        .await
        .expect_err("no such deployment");
    assert!(
        matches!(kube_error(&err), KubeError::NotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("[kubernetes] namespace and deployment"),
        "{err}"
    );
    assert_eq!(api.requests_to("GET", SCALE).len(), 1, "not retried");

    let err = act
        .scale(&StageRef::new("demo", "nope"), 1)
        .await
        .expect_err("unknown stage");
    assert!(matches!(err, ActuatorError::UnknownStage { .. }), "{err:?}");
    let err = act.scale(&stage(), u32::MAX).await.expect_err("too many");
    assert!(
        matches!(err, ActuatorError::TooManyReplicas { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_stage_tables_are_refused_at_construction() {
    let api = FakeApi::start().await;
    let table = KubernetesStage {
        namespace: "Demo".into(),
        deployment: "infer".into(),
    };
    let err = KubernetesActuator::new(api.client(), [(stage(), table)]).expect_err("refused");
    assert!(
        matches!(err, ActuatorError::InvalidConfig { .. }),
        "{err:?}"
    );
}

// ---- The Lease ----------------------------------------------------------------------------

/// The shortest lease (3 s: renewals every second, a renew deadline of 2 s), so that the tests
/// see renewals and take-overs in seconds. Real time: the Lease driver talks over real sockets.
fn elect(api: &FakeApi, identity: &str) -> LeaderElection {
    let config = LeaseConfig::try_new(identity, Duration::from_secs(3)).expect("config");
    let options = LeaseOptions::try_new("sair", "sair-coordinator", config).expect("options");
    LeaderElection::spawn(api.client(), options)
}

/// Waits (bounded) until `cond` holds; panics naming `what` otherwise.
async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_missing_lease_is_created_renewed_with_its_version_and_released() {
    let api = FakeApi::start().await;
    let election = elect(&api, "coord-a");
    let watch = election.watch();
    eventually("coord-a leads", Duration::from_secs(5), || {
        watch.is_leader()
    })
    .await;
    assert_eq!(watch.leadership().term, 0);
    assert_eq!(watch.leadership().holder.as_deref(), Some("coord-a"));

    // First round: a read (404), then a create.
    let reqs = api.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", LEASE)
    );
    let create = &reqs[1];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", LEASES)
    );
    assert_eq!(create.content_type.as_deref(), Some("application/json"));
    let body = create.body.as_ref().expect("a body");
    assert_eq!(body["metadata"]["name"], "sair-coordinator");
    assert_eq!(body["spec"]["holderIdentity"], "coord-a");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 3);
    assert_eq!(body["spec"]["leaseTransitions"], 0);
    assert!(body["spec"]["renewTime"].is_string(), "{body}");
    assert!(body["metadata"].get("resourceVersion").is_none(), "{body}");

    // Renewals: each update names the version the server gave last.
    eventually("two renewals", Duration::from_secs(5), || {
        api.requests_to("PUT", LEASE).len() >= 2
    })
    .await;
    let puts = api.requests_to("PUT", LEASE);
    let rv = |r: &fake_api::Recorded| {
        r.body.as_ref().expect("a body")["metadata"]["resourceVersion"].clone()
    };
    assert_eq!(rv(&puts[0]), json!("1"));
    assert_eq!(rv(&puts[1]), json!("2"));
    assert_eq!(puts[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        puts[1].body.as_ref().expect("body")["spec"]["holderIdentity"],
        "coord-a"
    );
    assert_eq!(
        puts[1].body.as_ref().expect("body")["spec"]["leaseTransitions"],
        0
    );
    assert!(watch.is_leader());

    // Shutdown hands the Lease over: no holder, a one-second lease.
    election.shutdown().await;
    assert!(!watch.is_leader());
    let stored = api.lease("sair", "sair-coordinator").expect("stored");
    assert_eq!(stored["spec"]["holderIdentity"], "");
    assert_eq!(stored["spec"]["leaseDurationSeconds"], 1);
}

#[tokio::test]
async fn a_live_holder_is_followed_an_expired_one_taken_over_and_scaling_is_gated() {
    let api = FakeApi::start().await;
    api.add_deployment("demo", "infer", 1, 1);
    api.steal_lease("sair", "sair-coordinator", "coord-a"); // transitions 1, version 1
    let election = elect(&api, "coord-b");
    let watch = election.watch();
    let mut act = actuator(&api).gated_by(watch.clone());

    eventually("coord-b sees coord-a", Duration::from_secs(5), || {
        watch.leadership().holder.as_deref() == Some("coord-a")
    })
    .await;
    // coord-a keeps renewing for a while: coord-b follows and writes nothing.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        api.steal_lease("sair", "sair-coordinator", "coord-a");
        assert!(!watch.is_leader());
    }
    eventually(
        "coord-b sees the last renewal",
        Duration::from_secs(3),
        || watch.leadership().term == 4,
    )
    .await;
    assert!(api.requests_to("PUT", LEASE).is_empty());
    assert!(!watch.is_leader());

    // Only the leader scales.
    let err = act.scale(&stage(), 2).await.expect_err("not the leader");
    assert!(
        matches!(kube_error(&err), KubeError::NotLeader { holder: Some(h), .. } if h == "coord-a"),
        "{err:?}"
    );
    assert!(err.to_string().contains("held by coord-a"), "{err}");
    assert!(!err.is_retryable());
    assert!(api.requests_to("PATCH", SCALE).is_empty());
    assert!(
        api.requests_to("GET", HPAS).is_empty(),
        "a follower calls nothing"
    );

    // coord-a stops renewing: after a whole lease (3 s) unchanged, coord-b takes over, with
    // the version it read and one more transition.
    eventually("coord-b takes over", Duration::from_secs(8), || {
        watch.is_leader()
    })
    .await;
    let puts = api.requests_to("PUT", LEASE);
    let takeover = puts[0].body.as_ref().expect("a body");
    assert_eq!(takeover["spec"]["holderIdentity"], "coord-b");
    assert_eq!(takeover["spec"]["leaseTransitions"], 5);
    assert_eq!(takeover["metadata"]["resourceVersion"], "4");
    assert_eq!(watch.leadership().term, 5);

    act.scale(&stage(), 2).await.expect("the leader scales");
    assert_eq!(api.replicas("demo", "infer"), Some(2));
    election.shutdown().await;
}

#[tokio::test]
async fn a_resource_version_conflict_steps_the_leader_down() {
    let api = FakeApi::start().await;
    let election = elect(&api, "coord-a");
    let mut watch: LeaderWatch = election.watch();
    eventually("coord-a leads", Duration::from_secs(5), || {
        watch.is_leader()
    })
    .await;

    // Between coord-a's read and its renewal, coord-b writes the Lease: the renewal carries a
    // stale resourceVersion, the server answers 409, and coord-a steps down at once.
    api.race_lease("PUT", LEASE, "coord-b");
    eventually("coord-a steps down", Duration::from_secs(5), || {
        !watch.is_leader()
    })
    .await;
    let puts = api.requests_to("PUT", LEASE);
    let stale = puts.last().expect("the refused renewal");
    assert_eq!(
        stale.body.as_ref().expect("body")["spec"]["holderIdentity"],
        "coord-a"
    );
    eventually("coord-a follows coord-b", Duration::from_secs(5), || {
        watch.leadership().holder.as_deref() == Some("coord-b")
    })
    .await;
    assert_eq!(watch.leadership().term, 1);
    assert!(watch.changed().await, "the driver still runs");
    election.shutdown().await;
    // It did not hold the Lease: shutdown leaves coord-b's alone.
    let stored = api.lease("sair", "sair-coordinator").expect("stored");
    assert_eq!(stored["spec"]["holderIdentity"], "coord-b");
}

#[tokio::test]
async fn a_create_race_is_lost_cleanly_and_api_errors_do_not_stop_the_driver() {
    let api = FakeApi::start().await;
    // The API server refuses the first reads (RBAC not applied yet), then coord-b creates the
    // Lease between coord-a's read and its create: 409 AlreadyExists.
    api.fail("GET", LEASE, 2, 403, "Forbidden");
    api.race_lease("POST", LEASES, "coord-b");
    let election = elect(&api, "coord-a");
    let watch = election.watch();
    eventually("coord-a follows coord-b", Duration::from_secs(8), || {
        watch.leadership().holder.as_deref() == Some("coord-b")
    })
    .await;
    assert!(!watch.is_leader());
    let posts = api.requests_to("POST", LEASES);
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert!(api.requests_to("GET", LEASE).len() >= 3);
    election.shutdown().await;
}
