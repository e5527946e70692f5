//! The pod template of one workload: the sidecar, the labels and annotations, and for a GPU
//! stage the interception library and the segment. Every change is an upsert by name.

use serde_norway::{Mapping, Value};

use super::{
    ADMIN_PORT, ADMIN_PORT_NAME, AGENT_CA_DIR, AGENT_CA_SECRET, AGENT_REPORT_PORT,
    AGENT_SERVER_NAME, ANNOTATION_INJECTED, DocRef, INSTALL_CONTAINER, InjectError, InjectOptions,
    LABEL_PIPELINE, LABEL_STAGE, LIB_DIR, LIB_FILE, LIB_IN_IMAGE, PROXY_PORT, PROXY_PORT_NAME,
    PodTarget, SHM_DIR, SIDECAR_CONTAINER, map, s, seq,
};

const VOLUME_AGENT_CA: &str = "sair-agent-ca";
const VOLUME_LIB: &str = "sair-intercept";
const VOLUME_SHM: &str = "sair-shm";

/// Injects the pod template of `obj` (a workload of kind `kind`).
pub(super) fn inject_workload(
    doc: &DocRef,
    kind: &str,
    obj: &mut Value,
    opts: &InjectOptions,
) -> Result<PodTarget, InjectError> {
    let namespace = obj
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (path, template): (&str, &mut Mapping) = match kind {
        "Pod" => ("", as_mapping(obj, doc, "the object")?),
        "CronJob" => {
            let p = "spec.jobTemplate.spec.template";
            (
                p,
                walk(obj, &["spec", "jobTemplate", "spec", "template"], doc, p)?,
            )
        }
        _ => (
            "spec.template",
            walk(obj, &["spec", "template"], doc, "spec.template")?,
        ),
    };
    let field = |f: &str| {
        if path.is_empty() {
            f.to_owned()
        } else {
            format!("{path}.{f}")
        }
    };

    let meta = child_mapping(template, "metadata", doc, &field("metadata"))?;
    let labels = string_pairs(meta.get("labels"));
    let label_map = child_mapping(meta, "labels", doc, &field("metadata.labels"))?;
    label_map.insert(s(LABEL_PIPELINE), s(&opts.pipeline));
    label_map.insert(s(LABEL_STAGE), s(&opts.stage));
    let annotations = child_mapping(meta, "annotations", doc, &field("metadata.annotations"))?;
    annotations.insert(s(ANNOTATION_INJECTED), s("true"));
    // Plain scrape annotations for clusters without the Prometheus operator. A pod that
    // already has some points them at its own server's metrics: they are left as they are
    // (the PodMonitor scrapes the sidecar's admin port by name either way).
    let users_own = annotations
        .keys()
        .filter_map(Value::as_str)
        .any(|k| k.starts_with("prometheus.io/"));
    if !users_own {
        for (k, v) in [
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", ADMIN_PORT.to_string()),
            ("prometheus.io/path", "/metrics".to_owned()),
        ] {
            annotations.insert(s(k), s(&v));
        }
    }

    let spec = child_mapping(template, "spec", doc, &field("spec"))?;
    let containers_field = field("spec.containers");
    let containers = match spec.get_mut("containers") {
        Some(Value::Sequence(c)) if !c.is_empty() => c,
        Some(Value::Sequence(_)) | Some(Value::Null) | None => {
            return Err(InjectError::NoContainers {
                doc: doc.clone(),
                field: containers_field,
            });
        }
        Some(_) => return Err(malformed(doc, containers_field, "a list of containers")),
    };
    let names: Vec<String> = containers
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let idx =
        match &opts.container {
            None => 0,
            Some(want) => names.iter().position(|n| n == want).ok_or_else(|| {
                InjectError::NoSuchContainer {
                    doc: doc.clone(),
                    name: want.clone(),
                    have: names.join(", "),
                }
            })?,
        };
    for (c, name) in containers.iter().zip(&names) {
        for port in [PROXY_PORT, ADMIN_PORT] {
            if container_ports(c).iter().any(|(p, _)| *p == port) {
                return Err(InjectError::PortTaken {
                    doc: doc.clone(),
                    container: name.clone(),
                    port,
                });
            }
        }
    }
    let (upstream_port, upstream_port_name) = match opts.upstream_port {
        Some(p) => {
            let name = container_ports(&containers[idx])
                .into_iter()
                .find(|(q, _)| *q == p)
                .and_then(|(_, n)| n);
            (p, name)
        }
        None => container_ports(&containers[idx])
            .into_iter()
            .next()
            .ok_or_else(|| InjectError::NoUpstreamPort {
                doc: doc.clone(),
                container: names[idx].clone(),
            })?,
    };
    if opts.upstream_port == Some(PROXY_PORT) || opts.upstream_port == Some(ADMIN_PORT) {
        return Err(InjectError::PortTaken {
            doc: doc.clone(),
            container: names[idx].clone(),
            port: upstream_port,
        });
    }
    if opts.gpu {
        let server = as_mapping(&mut containers[idx], doc, &field("spec.containers[]"))?;
        add_gpu_to_server(server, doc, &field("spec.containers[]"), opts)?;
    }

    let init = child_seq(spec, "initContainers", doc, &field("spec.initContainers"))?;
    if opts.gpu {
        upsert_named(init, install_container(opts));
    }
    upsert_named(init, sidecar_container(opts, upstream_port));

    let volumes = child_seq(spec, "volumes", doc, &field("spec.volumes"))?;
    upsert_named(
        volumes,
        map([
            ("name", s(VOLUME_AGENT_CA)),
            ("secret", map([("secretName", s(AGENT_CA_SECRET))])),
        ]),
    );
    if opts.gpu {
        upsert_named(
            volumes,
            map([
                ("name", s(VOLUME_LIB)),
                ("emptyDir", map([("sizeLimit", s("64Mi"))])),
            ]),
        );
        upsert_named(
            volumes,
            map([
                ("name", s(VOLUME_SHM)),
                (
                    "hostPath",
                    map([("path", s(SHM_DIR)), ("type", s("DirectoryOrCreate"))]),
                ),
            ]),
        );
    }
    Ok(PodTarget {
        namespace,
        labels,
        upstream_port,
        upstream_port_name,
    })
}

/// The model-server container of a GPU stage: the library, `LD_PRELOAD` and the segment.
fn add_gpu_to_server(
    server: &mut Mapping,
    doc: &DocRef,
    field: &str,
    opts: &InjectOptions,
) -> Result<(), InjectError> {
    let lib = format!("{LIB_DIR}/{LIB_FILE}");
    let env = child_seq(server, "env", doc, &format!("{field}.env"))?;
    // Keep a preload the user already has, after ours.
    let preload = match env
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some("LD_PRELOAD"))
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
    {
        Some(v) if v.split([':', ' ']).any(|p| p == lib) => v.to_owned(),
        Some(v) if !v.trim().is_empty() => format!("{lib}:{v}"),
        _ => lib.clone(),
    };
    upsert_named(env, env_value("SAIR_SHM_DIR", SHM_DIR));
    upsert_named(env, env_field("SAIR_POD_UID", "metadata.uid"));
    // `$(SAIR_POD_UID)` is expanded by the kubelet from the variable above: one segment per
    // pod, named so that the node agent can read the pipeline and stage from it.
    upsert_named(
        env,
        env_value(
            "SAIR_SEGMENT",
            &format!("{}.{}.$(SAIR_POD_UID)", opts.pipeline, opts.stage),
        ),
    );
    upsert_named(env, env_value("LD_PRELOAD", &preload));
    let mounts = child_seq(
        server,
        "volumeMounts",
        doc,
        &format!("{field}.volumeMounts"),
    )?;
    upsert_named(
        mounts,
        map([
            ("name", s(VOLUME_LIB)),
            ("mountPath", s(LIB_DIR)),
            ("readOnly", Value::Bool(true)),
        ]),
    );
    upsert_named(
        mounts,
        map([("name", s(VOLUME_SHM)), ("mountPath", s(SHM_DIR))]),
    );
    Ok(())
}

/// The native sidecar: configured by its `SAIR_*` variables (docs/configuration.md).
fn sidecar_container(opts: &InjectOptions, upstream_port: u16) -> Value {
    let mut env = vec![
        env_value("SAIR_PIPELINE", &opts.pipeline),
        env_value("SAIR_STAGE", &opts.stage),
        env_value("SAIR_LISTEN", &format!("0.0.0.0:{PROXY_PORT}")),
        env_value("SAIR_METRICS_LISTEN", &format!("0.0.0.0:{ADMIN_PORT}")),
        env_value(
            "SAIR_UPSTREAM",
            &format!("http://127.0.0.1:{upstream_port}"),
        ),
    ];
    if let Some(next) = opts.next.as_deref().filter(|n| !n.is_empty()) {
        env.push(env_value("SAIR_NEXT", next));
    }
    env.extend([
        env_field("SAIR_REPLICA", "metadata.name"),
        env_field("HOST_IP", "status.hostIP"),
        env_value("SAIR_AGENT", &format!("$(HOST_IP):{AGENT_REPORT_PORT}")),
        env_value("SAIR_AGENT_SERVER_NAME", AGENT_SERVER_NAME),
        env_value("SAIR_AGENT_CA", &format!("{AGENT_CA_DIR}/ca.pem")),
        env_value("SAIR_LOG_FORMAT", "json"),
    ]);
    let probe = |path: &str, period: u64, failures: u64| {
        map([
            (
                "httpGet",
                map([("path", s(path)), ("port", s(ADMIN_PORT_NAME))]),
            ),
            ("periodSeconds", Value::Number(period.into())),
            ("failureThreshold", Value::Number(failures.into())),
        ])
    };
    map([
        ("name", s(SIDECAR_CONTAINER)),
        ("image", s(&opts.sidecar_image)),
        // A native sidecar (Kubernetes ≥ 1.29): started before the app containers, kept
        // running beside them, stopped after them.
        ("restartPolicy", s("Always")),
        ("env", Value::Sequence(env)),
        (
            "ports",
            seq([
                port(PROXY_PORT_NAME, PROXY_PORT),
                port(ADMIN_PORT_NAME, ADMIN_PORT),
            ]),
        ),
        // The app containers start once the sidecar is ready (up to 30 s).
        ("startupProbe", probe("/readyz", 1, 30)),
        ("readinessProbe", probe("/readyz", 5, 3)),
        ("livenessProbe", probe("/healthz", 10, 3)),
        // Requests but no CPU limit: a CPU limit throttles the request path.
        (
            "resources",
            map([
                ("requests", map([("cpu", s("100m")), ("memory", s("64Mi"))])),
                ("limits", map([("memory", s("256Mi"))])),
            ]),
        ),
        ("securityContext", restricted_security_context()),
        (
            "volumeMounts",
            seq([map([
                ("name", s(VOLUME_AGENT_CA)),
                ("mountPath", s(AGENT_CA_DIR)),
                ("readOnly", Value::Bool(true)),
            ])]),
        ),
    ])
}

/// Copies the library from the intercept image into the pod's `emptyDir`, then exits.
fn install_container(opts: &InjectOptions) -> Value {
    map([
        ("name", s(INSTALL_CONTAINER)),
        ("image", s(&opts.intercept_image)),
        (
            "command",
            seq([
                s("cp"),
                s(LIB_IN_IMAGE),
                s(&format!("{LIB_DIR}/{LIB_FILE}")),
            ]),
        ),
        (
            "resources",
            map([
                ("requests", map([("cpu", s("10m")), ("memory", s("16Mi"))])),
                ("limits", map([("memory", s("32Mi"))])),
            ]),
        ),
        ("securityContext", restricted_security_context()),
        (
            "volumeMounts",
            seq([map([("name", s(VOLUME_LIB)), ("mountPath", s(LIB_DIR))])]),
        ),
    ])
}

/// The Pod Security Standard "restricted" profile, for the containers SAIR adds.
fn restricted_security_context() -> Value {
    map([
        ("allowPrivilegeEscalation", Value::Bool(false)),
        ("readOnlyRootFilesystem", Value::Bool(true)),
        ("runAsNonRoot", Value::Bool(true)),
        ("runAsUser", Value::Number(65532.into())),
        ("capabilities", map([("drop", seq([s("ALL")]))])),
        ("seccompProfile", map([("type", s("RuntimeDefault"))])),
    ])
}

fn port(name: &str, number: u16) -> Value {
    map([
        ("name", s(name)),
        ("containerPort", Value::Number(number.into())),
        ("protocol", s("TCP")),
    ])
}

fn env_value(name: &str, value: &str) -> Value {
    map([("name", s(name)), ("value", s(value))])
}

fn env_field(name: &str, path: &str) -> Value {
    map([
        ("name", s(name)),
        (
            "valueFrom",
            map([("fieldRef", map([("fieldPath", s(path))]))]),
        ),
    ])
}

/// The TCP ports of a container, with their names, in order.
fn container_ports(c: &Value) -> Vec<(u16, Option<String>)> {
    c.get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter(|p| {
            p.get("protocol")
                .and_then(Value::as_str)
                .is_none_or(|proto| proto == "TCP")
        })
        .filter_map(|p| {
            let number = p.get("containerPort")?.as_u64()?;
            let name = p.get("name").and_then(Value::as_str).map(str::to_owned);
            Some((u16::try_from(number).ok()?, name))
        })
        .collect()
}

/// Replaces the element with the same `name`, in place, or appends `item`.
fn upsert_named(list: &mut Vec<Value>, item: Value) {
    let name = item.get("name").cloned();
    match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

/// The string pairs of a mapping (labels); anything else is ignored.
fn string_pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

pub(super) fn malformed(doc: &DocRef, field: String, expected: &'static str) -> InjectError {
    InjectError::Malformed {
        doc: doc.clone(),
        field,
        expected,
    }
}

fn as_mapping<'a>(
    v: &'a mut Value,
    doc: &DocRef,
    field: &str,
) -> Result<&'a mut Mapping, InjectError> {
    v.as_mapping_mut()
        .ok_or_else(|| malformed(doc, field.to_owned(), "a mapping"))
}

/// The mapping at `path` under `v`; each step must exist.
fn walk<'a>(
    v: &'a mut Value,
    path: &[&str],
    doc: &DocRef,
    field: &str,
) -> Result<&'a mut Mapping, InjectError> {
    let mut cur = v;
    for key in path {
        cur = cur
            .get_mut(*key)
            .ok_or_else(|| malformed(doc, field.to_owned(), "present (a pod template)"))?;
    }
    as_mapping(cur, doc, field)
}

/// The mapping under `key`, created when missing or null.
fn child_mapping<'a>(
    m: &'a mut Mapping,
    key: &str,
    doc: &DocRef,
    field: &str,
) -> Result<&'a mut Mapping, InjectError> {
    let slot = m.entry(s(key)).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Mapping(Mapping::new());
    }
    as_mapping(slot, doc, field)
}

/// The list under `key`, created when missing or null.
fn child_seq<'a>(
    m: &'a mut Mapping,
    key: &str,
    doc: &DocRef,
    field: &str,
) -> Result<&'a mut Vec<Value>, InjectError> {
    let slot = m.entry(s(key)).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Sequence(Vec::new());
    }
    slot.as_sequence_mut()
        .ok_or_else(|| malformed(doc, field.to_owned(), "a list"))
}
