//! The status API of `sair-coordinator --http-listen` (its JSON is a contract: the demo's live
//! view and the tests read it):
//!
//! - `GET /v1/pipelines`: per pipeline its SLO, end-to-end P99/P50, arrival rate, cost, the
//!   bottleneck the last decision named and whether any stage is stale; per stage replicas,
//!   ρ (target and measured), arrival rate, queue-wait and service P99, busy fraction, stale.
//! - `GET /v1/decisions?limit=N`: the newest N decision records, newest last
//!   ([`crate::record::DecisionRecord`]); N defaults to 100 and is capped by what is held.
//! - `/metrics`, `/healthz`, `/readyz`: the shared admin responses ([`sair_service::admin`]).
//!
//! Shutdown handshake: [`serve`] stops accepting when its `shutdown` future resolves; requests
//! already accepted finish on their own tasks.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use super::observe::Observation;
use crate::policy::StageKind;
use crate::record::{DecisionRecord, Recorder};

/// Records `GET /v1/decisions` returns when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 100;

/// `GET /v1/pipelines`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelinesView {
    pub pipelines: Vec<PipelineView>,
}

/// One pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineView {
    pub name: String,
    pub slo_p99_s: f64,
    pub e2e_p99_s: f64,
    pub e2e_p50_s: f64,
    pub arrival_rate: f64,
    pub cost_per_hour: f64,
    /// The stage the last decision named as the bottleneck.
    pub bottleneck: Option<String>,
    /// Some stage has no fresh report.
    pub stale: bool,
    pub stages: Vec<StageView>,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    pub name: String,
    pub kind: StageKind,
    /// Replicas serving.
    pub replicas: u32,
    /// Replicas asked for.
    pub replicas_desired: u32,
    /// ρ target in force (1 for CPU stages).
    pub rho: f64,
    /// Mean measured share of the stage's segments, when the agents measure it.
    pub rho_measured: Option<f64>,
    pub arrival_rate: f64,
    pub queue_wait_p99_s: f64,
    pub service_p99_s: f64,
    pub busy_fraction: f64,
    pub stale: bool,
}

impl PipelineView {
    /// The view of an observation, with the bottleneck of the last decision.
    pub fn of(o: &Observation, bottleneck: Option<String>) -> Self {
        let s = &o.state;
        Self {
            name: s.pipeline.clone(),
            slo_p99_s: s.slo_p99_s,
            e2e_p99_s: s.e2e_p99_s,
            e2e_p50_s: s.e2e_p50_s,
            arrival_rate: s.arrival_rate,
            cost_per_hour: s.cost_per_hour,
            bottleneck,
            stale: o.stages.iter().any(|x| x.stale),
            stages: s
                .stages
                .iter()
                .zip(&o.stages)
                .map(|(st, x)| StageView {
                    name: st.name.clone(),
                    kind: st.kind,
                    replicas: st.replicas,
                    replicas_desired: st.replicas_desired,
                    rho: st.rho,
                    rho_measured: x.rho_measured,
                    arrival_rate: st.arrival_rate,
                    queue_wait_p99_s: st.queue_wait_p99_s,
                    service_p99_s: st.service_p99_s,
                    busy_fraction: st.busy_fraction,
                    stale: x.stale,
                })
                .collect(),
        }
    }
}

/// What the loop shares with the API: the latest view and the decision ring.
#[derive(Debug)]
pub struct Shared {
    pub pipelines: Vec<PipelineView>,
    pub decisions: Recorder,
}

impl Shared {
    /// No view yet; keeps the newest `history` decisions.
    pub fn new(history: usize) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            pipelines: Vec::new(),
            decisions: Recorder::new(history),
        }))
    }
}

#[derive(Serialize)]
struct DecisionsView<'a> {
    decisions: Vec<&'a DecisionRecord>,
}

/// The `limit` of a query string; `Err` names the problem.
fn limit(query: Option<&str>) -> Result<usize, String> {
    let Some(q) = query else {
        return Ok(DEFAULT_LIMIT);
    };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("limit=") {
            return v
                .parse::<usize>()
                .map_err(|_| format!("limit must be a whole number, got {v:?}"));
        }
    }
    Ok(DEFAULT_LIMIT)
}

/// The response to one request (sans-IO; [`serve`] is the driver): status, content type, body.
pub fn respond(
    shared: &Mutex<Shared>,
    admin: &sair_service::admin::Admin,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> (StatusCode, &'static str, String) {
    const JSON: &str = "application/json";
    const TEXT: &str = "text/plain; charset=utf-8";
    let api = matches!(path, "/v1/pipelines" | "/v1/decisions");
    if !api {
        return admin.respond(method, path);
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "GET only\n".to_owned(),
        );
    }
    let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let body = match path {
        "/v1/pipelines" => serde_json::to_string(&PipelinesView {
            pipelines: shared.pipelines.clone(),
        }),
        _ => match limit(query) {
            Ok(n) => serde_json::to_string(&DecisionsView {
                decisions: shared.decisions.latest(n),
            }),
            Err(e) => return (StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
        },
    };
    match body {
        Ok(b) => (StatusCode::OK, JSON, b),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("cannot encode: {e}\n"),
        ),
    }
}

fn response(
    shared: &Mutex<Shared>,
    admin: &sair_service::admin::Admin,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = respond(
        shared,
        admin,
        req.method(),
        req.uri().path(),
        req.uri().query(),
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    resp
}

/// Serves the API on `listener` until `shutdown` resolves. Accept errors back off
/// ([`sair_service::accept`]); a failed connection is logged at debug level.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Mutex<Shared>>,
    admin: sair_service::admin::Admin,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            a = sair_service::accept::accept(&listener) => a,
            () = &mut shutdown => return,
        };
        let (shared, admin) = (shared.clone(), admin.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let resp = response(&shared, &admin, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests;
