//! The coordinator's HTTP API as the demo reads it (`GET /v1/pipelines`, `GET /v1/decisions`,
//! `GET /healthz`; docs/coordinator.md), through a minimal HTTP/1.1 client: one request per
//! connection, a bounded body, a timeout. Fields are read leniently (`serde(default)`), so a
//! coordinator that adds fields, or leaves a figure null while it has no reports, still shows.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response body read (the decisions of a long run are the biggest).
const MAX_BODY: u64 = 64 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{addr}{path}: {source}")]
    Io {
        addr: SocketAddr,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}{path}: no answer within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        path: String,
        timeout: Duration,
    },
    #[error("{addr}{path}: {why}")]
    Http {
        addr: SocketAddr,
        path: String,
        why: String,
    },
}

/// `GET path` on `addr`; the status and the body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), ApiError> {
    let io = |source| ApiError::Io {
        addr,
        path: path.to_string(),
        source,
    };
    let fetch = async {
        let mut s = TcpStream::connect(addr).await.map_err(io)?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        s.take(MAX_BODY).read_to_end(&mut raw).await.map_err(io)?;
        Ok(raw)
    };
    let raw = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| ApiError::Timeout {
            addr,
            path: path.to_string(),
            timeout,
        })??;
    parse_response(&raw).map_err(|why| ApiError::Http {
        addr,
        path: path.to_string(),
        why,
    })
}

/// Splits an HTTP/1.1 response into its status and its body (chunked or not).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response has no header end")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let body = &raw[head_end + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the response has no status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line has no end")?;
        let size_str = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_str:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// `GET path` as JSON.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<T, ApiError> {
    let (status, body) = get(addr, path, timeout).await?;
    if status != 200 {
        return Err(ApiError::Http {
            addr,
            path: path.to_string(),
            why: format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        });
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::Http {
        addr,
        path: path.to_string(),
        why: format!("not the expected JSON: {e}"),
    })
}

/// `GET /v1/pipelines`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipelines {
    pub pipelines: Vec<PipelineView>,
}

/// One pipeline as the coordinator sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineView {
    pub name: String,
    pub slo_p99_s: Option<f64>,
    pub e2e_p99_s: Option<f64>,
    pub e2e_p50_s: Option<f64>,
    pub arrival_rate: Option<f64>,
    pub cost_per_hour: Option<f64>,
    pub bottleneck: Option<String>,
    pub stale: bool,
    pub stages: Vec<StageView>,
}

/// One stage as the coordinator sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StageView {
    pub name: String,
    pub kind: String,
    /// Serving replicas.
    pub replicas: Option<u32>,
    /// Replicas asked of the actuator (serving + starting).
    pub replicas_desired: Option<u32>,
    /// The GPU share target (GPU stages).
    pub rho: Option<f64>,
    pub rho_measured: Option<f64>,
    pub arrival_rate: Option<f64>,
    pub queue_wait_p99_s: Option<f64>,
    pub service_p99_s: Option<f64>,
    pub busy_fraction: Option<f64>,
    pub stale: bool,
}

/// `GET /v1/decisions`: EXPLAIN's `DecisionRecord`s, kept as JSON so that every field the
/// coordinator writes reaches `decisions.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Decisions {
    pub decisions: Vec<serde_json::Value>,
}

/// The fields of a decision record the view and the report show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionLine {
    pub time: f64,
    pub action: String,
    pub source: String,
    pub bottleneck: Option<String>,
    pub rationale: String,
}

impl DecisionLine {
    /// Reads the shown fields of one record; the action is shown as compact JSON unless it is
    /// a string.
    pub fn of(record: &serde_json::Value) -> Self {
        let s = |k: &str| {
            record
                .get(k)
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default()
        };
        DecisionLine {
            time: record
                .get("time")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            action: s("action"),
            source: s("source"),
            bottleneck: record
                .get("bottleneck")
                .and_then(|b| b.as_str())
                .map(str::to_string),
            rationale: s("rationale"),
        }
    }
}

#[cfg(test)]
mod tests;
