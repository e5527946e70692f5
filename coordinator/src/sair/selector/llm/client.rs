//! The blocking-friendly HTTP client of the `llm` selector: plain HTTP/1.1 (hyper), meant for a
//! model server on loopback or inside the cluster.
//!
//! The policy calls [`crate::policy::Policy::decide`] synchronously, so the client owns one
//! worker thread with a current-thread tokio runtime; a call sends it a request over a channel
//! and waits with a deadline. This works from plain threads and from inside an async runtime
//! alike (no nested `block_on`). It knows nothing of prompts or answers.

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::LlmError;

struct Request {
    uri: http::Uri,
    api_key: Option<String>,
    body: Vec<u8>,
    timeout: Duration,
    reply: mpsc::Sender<Result<(u16, Vec<u8>), LlmError>>,
}

/// The blocking-friendly HTTP client (a worker thread with its own runtime).
#[derive(Debug)]
pub struct LlmClient {
    tx: mpsc::Sender<Request>,
}

async fn post(
    uri: &http::Uri,
    api_key: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), LlmError> {
    let host = uri
        .host()
        .ok_or_else(|| LlmError::BadUrl(uri.to_string()))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| LlmError::Connect(e.to_string()))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| LlmError::Transport(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "LLM connection closed with an error");
        }
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = http::Request::post(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    if let Some(k) = api_key {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| LlmError::Transport(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| LlmError::Transport(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| LlmError::Transport(e.to_string()))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

impl LlmClient {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("sair-llm".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the LLM client runtime");
                        return;
                    }
                };
                for r in rx {
                    let out = rt.block_on(async {
                        tokio::time::timeout(r.timeout, post(&r.uri, r.api_key.as_deref(), r.body))
                            .await
                            .unwrap_or(Err(LlmError::Timeout(r.timeout)))
                    });
                    // The caller may have given up waiting; nothing to do then.
                    let _ignored = r.reply.send(out);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot spawn the LLM client thread; every call will fall back");
        }
        Self { tx }
    }

    /// POSTs `body` (JSON) to `url`, waiting at most `timeout`.
    pub fn post_json(
        &self,
        url: &str,
        api_key: Option<&str>,
        body: &Value,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), LlmError> {
        let uri: http::Uri = url.parse().map_err(|_| LlmError::BadUrl(url.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(LlmError::BadUrl(url.to_string()));
        }
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(Request {
                uri,
                api_key: api_key.map(str::to_string),
                body: body.to_string().into_bytes(),
                timeout,
                reply,
            })
            .map_err(|_| LlmError::WorkerGone)?;
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LlmError::Timeout(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LlmError::WorkerGone),
        }
    }
}

impl Default for LlmClient {
    fn default() -> Self {
        Self::new()
    }
}
