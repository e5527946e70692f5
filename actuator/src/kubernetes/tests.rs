use super::*;

#[test]
fn the_stage_table_deserialises_from_the_pipelines_file() {
    let table: KubernetesStage =
        toml::from_str("namespace = \"demo\"\ndeployment = \"infer\"\n").expect("a valid table");
    assert_eq!(
        table,
        KubernetesStage {
            namespace: "demo".into(),
            deployment: "infer".into()
        }
    );
    assert_eq!(table.validate(), Ok(()));
    let err = toml::from_str::<KubernetesStage>(
        "namespace = \"demo\"\ndeployment = \"infer\"\nreplicas = 3\n",
    )
    .expect_err("unknown keys are refused");
    assert!(err.to_string().contains("replicas"), "{err}");
    assert!(toml::from_str::<KubernetesStage>("namespace = \"demo\"\n").is_err());
}

#[test]
fn names_are_checked_as_the_api_server_would() {
    for ok in ["demo", "a", "ns-1", &"a".repeat(63)] {
        assert_eq!(check_dns_label("namespace", ok), Ok(()), "{ok}");
    }
    for bad in ["", "Demo", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
        assert!(
            check_dns_label("namespace", bad).is_err(),
            "{bad:?} accepted"
        );
    }
    assert_eq!(check_dns_subdomain("deployment", "infer.v2"), Ok(()));
    for bad in ["", "a..b", ".a", "a.", "UPPER", &"a.".repeat(127)] {
        assert!(
            check_dns_subdomain("deployment", bad).is_err(),
            "{bad:?} accepted"
        );
    }
    let err = KubernetesStage {
        namespace: "Demo".into(),
        deployment: "infer".into(),
    }
    .validate()
    .expect_err("upper case");
    assert!(err.contains("namespace \"Demo\""), "{err}");
}

fn call() -> Box<Call> {
    Call::new("patch", "deployments/scale", "demo", Some("infer"))
}

#[test]
fn errors_name_the_call_and_say_what_is_retried() {
    let forbidden = KubeError::Forbidden {
        call: call(),
        message: "denied".into(),
    };
    let text = forbidden.to_string();
    assert!(
        text.contains("patch deployments/scale in namespace demo (name infer)"),
        "{text}"
    );
    assert!(
        text.contains("403 Forbidden") && text.contains("RBAC"),
        "{text}"
    );
    assert!(forbidden.is_retryable());

    let conflict = KubeError::Conflict {
        call: call(),
        reason: "Conflict".into(),
        message: "the object has been modified".into(),
    };
    assert!(conflict.is_retryable() && conflict.is_conflict());

    let hpa = KubeError::HpaTargets {
        namespace: "demo".into(),
        deployment: "infer".into(),
        hpa: "infer-hpa".into(),
    };
    assert!(!hpa.is_retryable());
    assert!(
        hpa.to_string()
            .contains("HorizontalPodAutoscaler demo/infer-hpa")
    );

    assert!(!KubeError::NotFound { call: call() }.is_retryable());
    for (code, retry) in [
        (500, true),
        (503, true),
        (429, true),
        (422, false),
        (400, false),
    ] {
        let e = KubeError::Api {
            call: call(),
            code,
            reason: String::new(),
            message: String::new(),
        };
        assert_eq!(e.is_retryable(), retry, "{code}");
    }

    // The actuator error defers to the Kubernetes one.
    let stage = StageRef::new("p", "s");
    let wrapped = ActuatorError::Kubernetes {
        stage: stage.clone(),
        source: Box::new(forbidden),
    };
    assert!(wrapped.is_retryable());
    assert!(wrapped.to_string().starts_with("stage p/s: "));
    let wrapped = ActuatorError::Kubernetes {
        stage,
        source: Box::new(hpa),
    };
    assert!(!wrapped.is_retryable());
}

#[test]
fn kube_statuses_are_classified() {
    let status = |code: u16, reason: &str| {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: "m".into(),
            ..kube::core::Status::default()
        }))
    };
    assert!(matches!(
        KubeError::from_kube(call(), status(403, "Forbidden")),
        KubeError::Forbidden { .. }
    ));
    assert!(matches!(
        KubeError::from_kube(call(), status(409, "Conflict")),
        KubeError::Conflict { .. }
    ));
    assert!(matches!(
        KubeError::from_kube(call(), status(409, "AlreadyExists")),
        KubeError::Conflict { .. }
    ));
    assert!(matches!(
        KubeError::from_kube(call(), status(404, "NotFound")),
        KubeError::NotFound { .. }
    ));
    assert!(matches!(
        KubeError::from_kube(call(), status(503, "ServiceUnavailable")),
        KubeError::Api { code: 503, .. }
    ));
}
