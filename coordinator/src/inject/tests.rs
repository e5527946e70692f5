use super::*;

fn opts() -> InjectOptions {
    InjectOptions::try_new("demo", "pre").expect("valid names")
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pre
spec:
  selector:
    matchLabels: {app: pre}
  template:
    metadata:
      labels: {app: pre}
    spec:
      containers:
        - name: server
          image: example/pre:1
          ports:
            - {name: http, containerPort: 8000}
---
apiVersion: v1
kind: Service
metadata:
  name: pre
spec:
  selector: {app: pre}
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: other, port: 9000}
";

#[test]
fn names_are_dns_labels() {
    assert!(parse_name("infer-2").is_ok());
    for bad in ["", "Infer", "a.b", "-a", "a-", &"x".repeat(64)] {
        assert!(parse_name(bad).is_err(), "{bad:?}");
    }
    let long = "a".repeat(60);
    assert_eq!(
        InjectOptions::try_new(&long, &long),
        Err(BadName::TooLong { len: 120 })
    );
}

#[test]
fn deployment_gets_the_sidecar_and_its_service_the_sidecar_port() {
    let out = inject(DEPLOYMENT, &opts()).expect("injects");
    tracing::info!("{out}");
    assert!(out.contains("name: sair-sidecar"), "{out}");
    assert!(out.contains("restartPolicy: Always"), "{out}");
    assert!(out.contains("value: http://127.0.0.1:8000"), "{out}");
    assert!(out.contains("targetPort: sair-proxy"), "{out}");
    // The other port of the Service still reaches the server directly.
    assert!(out.contains("port: 9000\n"), "{out}");
    assert_eq!(out.matches("targetPort").count(), 1, "{out}");
    assert!(!out.contains("LD_PRELOAD"), "{out}");
}

#[test]
fn injecting_twice_changes_nothing() {
    let mut o = opts();
    o.gpu = true;
    o.next = Some("dns:infer.demo.svc:4180".into());
    let once = inject(DEPLOYMENT, &o).expect("injects");
    let twice = inject(&once, &o).expect("injects again");
    assert_eq!(once, twice);
}

#[test]
fn gpu_keeps_the_users_preload_after_ours() {
    let input = DEPLOYMENT.replace(
        "          ports:\n",
        "          env:\n            - {name: LD_PRELOAD, value: /opt/libfoo.so}\n          ports:\n",
    );
    let mut o = opts();
    o.gpu = true;
    let out = inject(&input, &o).expect("injects");
    assert!(
        out.contains("value: /var/run/sair/lib/libsair_intercept.so:/opt/libfoo.so"),
        "{out}"
    );
    assert_eq!(inject(&out, &o).expect("again"), out);
}

#[test]
fn errors_name_the_document() {
    let e = inject(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        &opts(),
    )
    .expect_err("no workload");
    assert_eq!(
        e.to_string(),
        "document 1 (ConfigMap/c): ConfigMap is not a workload kind; sair inject adds the \
         sidecar to Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod"
    );
    let e = inject(&format!("{DEPLOYMENT}---\n[a, b\n"), &opts()).expect_err("not yaml");
    assert!(e.to_string().starts_with("document 3: not YAML"), "{e}");
    let e = inject("just text\n", &opts()).expect_err("scalar");
    assert!(matches!(e, InjectError::NotAnObject { .. }), "{e}");
    let no_containers = DEPLOYMENT.split("---").next().unwrap_or_default().replace(
        "      containers:\n        - name: server\n          image: example/pre:1\n          ports:\n            - {name: http, containerPort: 8000}\n",
        "      containers: []\n",
    );
    let e = inject(&no_containers, &opts()).expect_err("no containers");
    assert_eq!(
        e.to_string(),
        "document 1 (Deployment/pre): the pod template has no containers \
         (spec.template.spec.containers is empty or missing)"
    );
    assert!(e.is_bad_input());
}

#[test]
fn a_service_of_other_pods_is_left_alone() {
    let input = DEPLOYMENT.replace("selector: {app: pre}", "selector: {app: other}");
    let out = inject(&input, &opts()).expect("injects");
    assert!(
        !out.contains("sair-proxy\n---") && out.contains("targetPort: http"),
        "{out}"
    );
}

#[test]
fn cronjob_and_pod_templates_are_found() {
    let cronjob = "\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - {name: batch, image: example/batch:1, ports: [{containerPort: 8000}]}
";
    let out = inject(cronjob, &opts()).expect("injects");
    let v: Value = serde_norway::from_str(&out).expect("yaml");
    let init = &v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], s(SIDECAR_CONTAINER), "{out}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: a, image: x, ports: [{containerPort: 7000}]}\n";
    let out = inject(pod, &opts()).expect("injects");
    let v: Value = serde_norway::from_str(&out).expect("yaml");
    assert_eq!(v["metadata"]["labels"][LABEL_STAGE], s("pre"), "{out}");
    assert_eq!(
        v["spec"]["initContainers"][0]["env"][4]["value"],
        s("http://127.0.0.1:7000"),
        "{out}"
    );
}

#[test]
fn container_and_port_choices_are_checked() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: a, image: x}\n    - {name: b, image: y, ports: [{containerPort: 9000, name: web}]}\n";
    // The first container has no port: say which option fixes it.
    let e = inject(pod, &opts()).expect_err("no port");
    assert!(matches!(e, InjectError::NoUpstreamPort { .. }), "{e}");
    assert!(e.to_string().contains("--upstream-port"), "{e}");
    let mut o = opts();
    o.container = Some("b".into());
    let out = inject(pod, &o).expect("injects container b");
    assert!(out.contains("http://127.0.0.1:9000"), "{out}");
    o.container = Some("c".into());
    let e = inject(pod, &o).expect_err("no container c");
    assert!(e.to_string().contains("containers: a, b"), "{e}");
    let taken = pod.replace("9000", "4180");
    let e = inject(&taken, &opts()).expect_err("port taken");
    assert!(
        matches!(e, InjectError::PortTaken { port: 4180, .. }),
        "{e}"
    );
}
