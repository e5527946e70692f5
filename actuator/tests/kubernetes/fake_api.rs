//! A local HTTP server on 127.0.0.1 that speaks the part of the Kubernetes API the actuator and
//! the Lease driver use, with the API server's semantics where they matter (resourceVersion
//! checks on update, AlreadyExists on create, Status bodies for errors, the merge-patch content
//! type on the scale subresource), and that records every request so tests check exactly what
//! was sent.
//!
//! Routes: `GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`,
//! `GET /apis/apps/v1/namespaces/{ns}/deployments/{name}/status`,
//! `GET /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers`,
//! `POST /apis/coordination.k8s.io/v1/namespaces/{ns}/leases`,
//! `GET/PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}`. Anything else: 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    /// The body as JSON (`None` when empty).
    pub body: Option<Value>,
}

#[derive(Debug, Clone, Copy)]
struct Deployment {
    replicas: i64,
    ready: i64,
}

/// A planned answer to the next `times` requests of `method` on exactly `path`.
#[derive(Debug, Clone)]
struct Fault {
    method: &'static str,
    path: String,
    times: u32,
    effect: Effect,
}

#[derive(Debug, Clone)]
enum Effect {
    /// Answer this status (a Kubernetes `Status` body).
    Status { code: u16, reason: &'static str },
    /// Before handling the request, another candidate writes the Lease (holder, one more
    /// transition, new version): the request then meets a real resourceVersion conflict (PUT)
    /// or an existing object (POST).
    StealLease { holder: String },
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Recorded>,
    deployments: BTreeMap<(String, String), Deployment>,
    hpas: BTreeMap<String, Vec<Value>>,
    leases: BTreeMap<(String, String), Value>,
    next_rv: u64,
    faults: Vec<Fault>,
}

impl State {
    fn rv(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    fn steal(&mut self, ns: &str, name: &str, holder: &str) {
        let rv = self.rv();
        let now = now_micro();
        let lease = self
            .leases
            .entry((ns.to_owned(), name.to_owned()))
            .or_insert_with(|| lease_json(ns, name, "", 0, "0"));
        let transitions = lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0) + 1;
        lease["metadata"]["resourceVersion"] = json!(rv);
        lease["spec"] = json!({
            "holderIdentity": holder,
            "leaseDurationSeconds": 3,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": transitions,
        });
    }
}

/// The running server. Dropped with the test's runtime.
#[derive(Debug, Clone)]
pub struct FakeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "fake API: accept failed");
                        continue;
                    }
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(error = %e, "fake API: connection ended");
                    }
                });
            }
        });
        Self { addr, state }
    }

    /// A client for this server: plain HTTP on loopback, no credentials, no kubeconfig.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().expect("a URL");
        sair_actuator::kubernetes::client_from_config(kube::Config::new(url)).expect("a client")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add_deployment(&self, ns: &str, name: &str, replicas: i64, ready: i64) {
        self.lock()
            .deployments
            .insert((ns.into(), name.into()), Deployment { replicas, ready });
    }

    pub fn set_ready(&self, ns: &str, name: &str, ready: i64) {
        if let Some(d) = self.lock().deployments.get_mut(&(ns.into(), name.into())) {
            d.ready = ready;
        }
    }

    pub fn replicas(&self, ns: &str, name: &str) -> Option<i64> {
        self.lock()
            .deployments
            .get(&(ns.into(), name.into()))
            .map(|d| d.replicas)
    }

    /// An HPA `hpa` in `ns` whose scale target is the Deployment `target`.
    pub fn add_hpa(&self, ns: &str, hpa: &str, target: &str) {
        self.lock().hpas.entry(ns.into()).or_default().push(json!({
            "metadata": { "name": hpa, "namespace": ns },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": target },
                "minReplicas": 1,
                "maxReplicas": 10,
            }
        }));
    }

    /// Another candidate writes the Lease now (one more transition, new version).
    pub fn steal_lease(&self, ns: &str, name: &str, holder: &str) {
        self.lock().steal(ns, name, holder);
    }

    /// The Lease as stored.
    pub fn lease(&self, ns: &str, name: &str) -> Option<Value> {
        self.lock().leases.get(&(ns.into(), name.into())).cloned()
    }

    /// The next `times` requests of `method` on `path` are answered `code`/`reason`.
    pub fn fail(
        &self,
        method: &'static str,
        path: &str,
        times: u32,
        code: u16,
        reason: &'static str,
    ) {
        self.lock().faults.push(Fault {
            method,
            path: path.into(),
            times,
            effect: Effect::Status { code, reason },
        });
    }

    /// Just before the next `method` on `path` is handled, `holder` writes the Lease.
    pub fn race_lease(&self, method: &'static str, path: &str, holder: &str) {
        self.lock().faults.push(Fault {
            method,
            path: path.into(),
            times: 1,
            effect: Effect::StealLease {
                holder: holder.into(),
            },
        });
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests so far of `method` on `path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
}

async fn handle(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return status(400, "BadRequest", &format!("cannot read the body: {e}")),
    };
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => return status(400, "BadRequest", &format!("not JSON: {e}")),
        }
    };
    let recorded = Recorded {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        content_type: parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let mut st = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    st.requests.push(recorded.clone());
    route(&mut st, &recorded)
}

fn route(st: &mut State, req: &Recorded) -> Response<Full<Bytes>> {
    let fault = st
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && f.method == req.method && f.path == req.path);
    if let Some(fault) = fault {
        fault.times -= 1;
        match fault.effect.clone() {
            Effect::Status { code, reason } => {
                let message = match code {
                    403 => format!(
                        "User \"system:serviceaccount:sair:sair-coordinator\" cannot {} resource at {}",
                        req.method.to_lowercase(),
                        req.path
                    ),
                    _ => format!("injected {code} {reason}"),
                };
                return status(code, reason, &message);
            }
            Effect::StealLease { holder } => {
                let segs: Vec<&str> = req.path.split('/').collect();
                if let [
                    "",
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "leases",
                    rest @ ..,
                ] = segs.as_slice()
                {
                    let name = rest.first().copied().unwrap_or("sair-coordinator");
                    st.steal(ns, name, &holder);
                }
            }
        }
    }

    let segs: Vec<&str> = req.path.split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        (
            "GET",
            [
                "",
                "apis",
                "apps",
                "v1",
                "namespaces",
                ns,
                "deployments",
                name,
                "scale",
            ],
        ) => match st.deployments.get(&(ns.to_string(), name.to_string())) {
            Some(d) => ok(scale_json(ns, name, *d)),
            None => not_found("deployments.apps", name),
        },
        (
            "PATCH",
            [
                "",
                "apis",
                "apps",
                "v1",
                "namespaces",
                ns,
                "deployments",
                name,
                "scale",
            ],
        ) => {
            if req.content_type.as_deref() != Some("application/merge-patch+json") {
                return status(415, "UnsupportedMediaType", "expected a merge patch");
            }
            let Some(replicas) = req
                .body
                .as_ref()
                .and_then(|b| b["spec"]["replicas"].as_i64())
            else {
                return status(422, "Invalid", "spec.replicas missing");
            };
            match st.deployments.get_mut(&(ns.to_string(), name.to_string())) {
                Some(d) => {
                    d.replicas = replicas;
                    ok(scale_json(ns, name, *d))
                }
                None => not_found("deployments.apps", name),
            }
        }
        (
            "GET",
            [
                "",
                "apis",
                "apps",
                "v1",
                "namespaces",
                ns,
                "deployments",
                name,
                "status",
            ],
        ) => match st.deployments.get(&(ns.to_string(), name.to_string())) {
            Some(d) => ok(deployment_json(ns, name, *d)),
            None => not_found("deployments.apps", name),
        },
        (
            "GET",
            [
                "",
                "apis",
                "autoscaling",
                "v2",
                "namespaces",
                ns,
                "horizontalpodautoscalers",
            ],
        ) => {
            let items = st.hpas.get(*ns).cloned().unwrap_or_default();
            ok(json!({
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscalerList",
                "metadata": { "resourceVersion": "1" },
                "items": items,
            }))
        }
        (
            "GET",
            [
                "",
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                name,
            ],
        ) => match st.leases.get(&(ns.to_string(), name.to_string())) {
            Some(lease) => ok(lease.clone()),
            None => not_found("leases.coordination.k8s.io", name),
        },
        (
            "POST",
            [
                "",
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
            ],
        ) => {
            let Some(mut lease) = req.body.clone() else {
                return status(400, "BadRequest", "no body");
            };
            let Some(name) = lease["metadata"]["name"].as_str().map(str::to_owned) else {
                return status(422, "Invalid", "metadata.name missing");
            };
            let key = (ns.to_string(), name.clone());
            if st.leases.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("leases.coordination.k8s.io \"{name}\" already exists"),
                );
            }
            lease["metadata"]["resourceVersion"] = json!(st.rv());
            lease["apiVersion"] = json!("coordination.k8s.io/v1");
            lease["kind"] = json!("Lease");
            st.leases.insert(key, lease.clone());
            created(lease)
        }
        (
            "PUT",
            [
                "",
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                name,
            ],
        ) => {
            let Some(mut lease) = req.body.clone() else {
                return status(400, "BadRequest", "no body");
            };
            let key = (ns.to_string(), name.to_string());
            let Some(stored) = st.leases.get(&key) else {
                return not_found("leases.coordination.k8s.io", name);
            };
            // An update must name the version it read (optimistic concurrency).
            if lease["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"] {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                );
            }
            lease["metadata"]["resourceVersion"] = json!(st.rv());
            st.leases.insert(key, lease.clone());
            ok(lease)
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn scale_json(ns: &str, name: &str, d: Deployment) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": { "name": name, "namespace": ns, "resourceVersion": "100" },
        "spec": { "replicas": d.replicas },
        "status": { "replicas": d.replicas, "selector": format!("app={name}") },
    })
}

fn deployment_json(ns: &str, name: &str, d: Deployment) -> Value {
    let mut status = json!({ "replicas": d.replicas, "observedGeneration": 1 });
    // The API server omits zero counts.
    if d.ready > 0 {
        status["readyReplicas"] = json!(d.ready);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": ns, "resourceVersion": "100", "generation": 1 },
        "spec": {
            "replicas": d.replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "server", "image": "example/server:1" }] },
            },
        },
        "status": status,
    })
}

fn lease_json(ns: &str, name: &str, holder: &str, transitions: i64, rv: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": name, "namespace": ns, "resourceVersion": rv },
        "spec": { "holderIdentity": holder, "leaseTransitions": transitions },
    })
}

/// RFC 3339 with microseconds, as the API server writes `MicroTime`.
fn now_micro() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::from_microsecond(i64::try_from(now.as_micros()).unwrap_or(0))
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

fn respond(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn ok(body: Value) -> Response<Full<Bytes>> {
    respond(200, &body)
}

fn created(body: Value) -> Response<Full<Bytes>> {
    respond(201, &body)
}

fn not_found(resource: &str, name: &str) -> Response<Full<Bytes>> {
    status(404, "NotFound", &format!("{resource} \"{name}\" not found"))
}

/// A Kubernetes `Status` error body, as the API server sends.
fn status(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    respond(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }),
    )
}
