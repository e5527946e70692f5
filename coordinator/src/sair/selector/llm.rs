//! The `llm` selector: an OpenAI-compatible chat-completions client over plain HTTP/1.1
//! (hyper), meant for a model server on loopback or inside the cluster.
//!
//! The policy calls [`crate::policy::Policy::decide`] synchronously, so the client owns one
//! worker thread with a current-thread tokio runtime; `select` sends it a request over a
//! channel and waits with a deadline. This works from plain threads and from inside an async
//! runtime alike (no nested `block_on`).
//!
//! The answer is constrained with `response_format` carrying a JSON schema
//! (`{"bottleneck": stage, "action": candidate id, "rationale": text}`, with the stage names and
//! candidate ids as enums). The OpenAI form `{"type": "json_schema", ...}` is tried first;
//! servers that reject it (llama-cpp-python's server accepts only `json_object` + `schema`)
//! get the `json_object` form from then on. Timeouts, transport errors and 5xx are retried a
//! bounded number of times; anything else, or an answer outside the schema, or an action the
//! validator rejects, falls back to the `model` selector, and the log says why.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{Value, json};

use super::selector::{ModelSelector, Selection, SelectionInput, Selector};
use super::store::Source;

/// Where process environment variables come from (injected so tests never mutate the real
/// environment).
pub trait EnvSource {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// Settings of the LLM selector.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:18080/v1`.
    pub url: String,
    pub model: String,
    /// Bearer token, resolved from the variable named by `--llm-api-key-env`.
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Retries after the first attempt (transport errors, timeouts, 5xx).
    pub retries: u32,
    /// Prompt budget in (estimated) tokens.
    pub token_budget: usize,
    pub max_tokens: u32,
}

impl LlmConfig {
    /// A config with defaults; the API key is read from `api_key_env` through `env`.
    pub fn new(url: &str, model: &str, api_key_env: Option<&str>, env: &dyn EnvSource) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: api_key_env
                .and_then(|k| env.get(k))
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(20),
            retries: 2,
            token_budget: 2000,
            max_tokens: 160,
        }
    }
}

/// LLM call failures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("bad LLM URL `{0}` (http://host:port/path expected)")]
    BadUrl(String),
    #[error("cannot connect to the LLM server: {0}")]
    Connect(String),
    #[error("LLM request timed out after {0:?}")]
    Timeout(Duration),
    #[error("LLM server answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("LLM transport error: {0}")]
    Transport(String),
    #[error("LLM answer is not a chat completion: {0}")]
    NotCompletion(String),
    #[error("LLM answer is outside the schema: {0}")]
    Schema(String),
    #[error("LLM named action `{0}`, which is not a candidate")]
    UnknownAction(String),
    #[error("LLM worker thread is gone")]
    WorkerGone,
}

impl LlmError {
    fn retryable(&self) -> bool {
        match self {
            LlmError::Connect(_) | LlmError::Timeout(_) | LlmError::Transport(_) => true,
            LlmError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// One parsed completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: String,
    /// The server's count, when it reports usage.
    pub prompt_tokens: Option<u64>,
}

/// What the model must answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub bottleneck: String,
    pub action: String,
    pub rationale: String,
}

/// Token estimate used for the prompt budget: one token per 2 characters, rounded up, plus 8
/// for the chat template's framing. BPE tokenizers average about 4 characters per token on
/// English prose, but SmolLM2's (like Llama's) splits numbers into single digits, and this
/// prompt is mostly numbers: measured against the server's own count, 1 token per 3
/// characters undercounted by 30%; 2 keeps the estimate conservative (the real-LLM test checks
/// it against the server's `usage.prompt_tokens`).
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(2) + 8
}

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

/// Which `response_format` dialect the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatDialect {
    /// OpenAI: `{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`.
    JsonSchema,
    /// llama-cpp-python: `{"type": "json_object", "schema": ...}`.
    JsonObject,
}

/// The answer schema, with stage names and candidate ids as enums.
pub fn answer_schema(stages: &[&str], ids: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": {
            "bottleneck": {"type": "string", "enum": stages},
            "action": {"type": "string", "enum": ids},
            "rationale": {"type": "string", "maxLength": 240}
        },
        "required": ["bottleneck", "action", "rationale"],
        "additionalProperties": false
    })
}

fn response_format(d: FormatDialect, schema: Value) -> Value {
    match d {
        FormatDialect::JsonSchema => json!({
            "type": "json_schema",
            "json_schema": {"name": "sair_decision", "strict": true, "schema": schema}
        }),
        FormatDialect::JsonObject => json!({"type": "json_object", "schema": schema}),
    }
}

/// The system prompt: the task, the objective, the answer format.
pub const SYSTEM_PROMPT: &str = "You control the autoscaler of a multi-stage ML inference pipeline. \
Each interval you pick ONE candidate action by id. Goal: keep end-to-end P99 under the SLO at the \
lowest cost; a move that lowers cost without raising P99, or lowers P99 without raising cost, is \
best. Past episodes show what similar moves really did (reward: higher is better; above 2.0 means \
both objectives improved, below 1.0 means both got worse). Name the bottleneck stage (highest \
utilisation). Answer only JSON: {\"bottleneck\": stage, \"action\": id, \"rationale\": short reason}.";

/// A prompt and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub user: String,
    pub estimated_tokens: usize,
    pub episodes: usize,
    pub candidates: usize,
    /// Indices of the candidates offered (the schema's enum).
    pub offered: Vec<usize>,
}

/// What the queueing model thinks, offered to the LLM as a hint it may overrule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hint<'a> {
    pub bottleneck: &'a str,
    pub utilisation: f64,
    pub best: &'a str,
}

fn render(
    input: &SelectionInput<'_>,
    n_eps: usize,
    cand_idx: &[usize],
    hint: Option<Hint<'_>>,
) -> String {
    let s = input.state;
    let mut u = String::new();
    let _ = writeln!(
        u,
        "Pipeline {} at t={:.0}s. SLO P99 {:.0} ms. Now: P99 {:.1} ms, {:.1} req/s in, cost {:.3}/h.",
        s.pipeline,
        s.t_s,
        s.slo_p99_s * 1e3,
        s.e2e_p99_s * 1e3,
        s.arrival_rate,
        s.cost_per_hour
    );
    u.push_str("Stages (name kind: replicas x rho, util, queue-wait p99 ms, service p50 ms):\n");
    for (i, st) in s.stages.iter().enumerate() {
        let util = input.features.get(i * 4).map_or(0.0, |f| f * 2.0);
        let _ = writeln!(
            u,
            "- {} {:?}: {}x{:.2}, util {:.2}, wait {:.1}, svc {:.1}",
            st.name,
            st.kind,
            st.replicas_desired,
            st.rho,
            util,
            st.queue_wait_p99_s * 1e3,
            st.service_p50_s * 1e3
        );
    }
    if n_eps > 0 {
        u.push_str("Past episodes (move -> reward, P99 ms before->after, cost before->after):\n");
        for e in input.episodes.iter().take(n_eps) {
            let _ = writeln!(
                u,
                "- {} -> {:.2}, {:.0}->{:.0}, {:.2}->{:.2}",
                e.label,
                e.reward,
                e.before.p99_s * 1e3,
                e.realised.p99_s * 1e3,
                e.before.cost_per_hour,
                e.realised.cost_per_hour
            );
        }
    }
    u.push_str("Candidates (id: move -> predicted P99 ms, cost/h, predicted reward):\n");
    for &i in cand_idx {
        let c = &input.candidates[i];
        let _ = writeln!(
            u,
            "- {}: {} -> {:.1}, {:.3}, {:.2}",
            c.id,
            c.label,
            c.predicted.p99_s * 1e3,
            c.predicted.cost_per_hour,
            input.predicted_reward[i]
        );
    }
    if let Some(h) = hint {
        let _ = writeln!(
            u,
            "Queueing model: bottleneck {} (utilisation {:.2}); its pick: {}.",
            h.bottleneck, h.utilisation, h.best
        );
    }
    u.push_str("Answer with JSON only.");
    u
}

/// Builds the prompt under the token budget. Only candidates the validator accepts now are
/// offered (hold always is). Over budget it drops episodes (lowest-ranked first), then the
/// candidates with the lowest predicted reward.
pub fn build_prompt(input: &SelectionInput<'_>, budget: usize, hint: Option<Hint<'_>>) -> Prompt {
    let sys = estimate_tokens(SYSTEM_PROMPT);
    let mut order: Vec<usize> = (0..input.candidates.len())
        .filter(|&i| i == 0 || input.safe[i])
        .collect();
    order.sort_by(|&a, &b| {
        (b == 0)
            .cmp(&(a == 0))
            .then(input.predicted_reward[b].total_cmp(&input.predicted_reward[a]))
    });
    let mut n_eps = input.episodes.len();
    let mut n_c = order.len();
    loop {
        let mut idx: Vec<usize> = order[..n_c].to_vec();
        idx.sort_unstable();
        let user = render(input, n_eps, &idx, hint);
        let t = sys + estimate_tokens(&user);
        if t <= budget || (n_eps == 0 && n_c <= 1) {
            return Prompt {
                user,
                estimated_tokens: t,
                episodes: n_eps,
                candidates: n_c,
                offered: idx,
            };
        }
        if n_eps > 0 {
            n_eps -= 1;
        } else {
            n_c -= 1;
        }
    }
}

/// Extracts the completion text and usage from a chat-completions response body.
pub fn parse_completion(body: &[u8]) -> Result<Completion, LlmError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| LlmError::NotCompletion(format!("not JSON: {e}")))?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::NotCompletion("no choices[0].message.content".into()))?;
    Ok(Completion {
        content: content.to_string(),
        prompt_tokens: v.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
    })
}

/// Parses and checks the model's answer against the schema.
pub fn parse_answer(content: &str, stages: &[&str], ids: &[&str]) -> Result<Answer, LlmError> {
    let a: Answer = serde_json::from_str(content.trim())
        .map_err(|e| LlmError::Schema(format!("{e}: {:.120}", content)))?;
    if !stages.contains(&a.bottleneck.as_str()) {
        return Err(LlmError::Schema(format!(
            "unknown bottleneck `{}`",
            a.bottleneck
        )));
    }
    if !ids.contains(&a.action.as_str()) {
        return Err(LlmError::UnknownAction(a.action));
    }
    Ok(a)
}

/// Measurements of the last LLM call, for benchmarks and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub estimated_prompt_tokens: usize,
    pub server_prompt_tokens: Option<u64>,
    pub latency: Duration,
    pub attempts: u32,
    pub error: Option<String>,
}

/// The `llm` selector.
#[derive(Debug)]
pub struct LlmSelector {
    cfg: LlmConfig,
    client: LlmClient,
    fallback: ModelSelector,
    dialect: FormatDialect,
    /// Stats of every call so far.
    pub calls: Vec<CallStats>,
}

impl LlmSelector {
    pub fn new(cfg: LlmConfig, fallback: ModelSelector) -> Self {
        Self {
            cfg,
            client: LlmClient::new(),
            fallback,
            dialect: FormatDialect::JsonSchema,
            calls: Vec::new(),
        }
    }

    fn body(&self, prompt: &Prompt, schema: &Value) -> Value {
        json!({
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt.user}
            ],
            "temperature": 0,
            "max_tokens": self.cfg.max_tokens,
            "response_format": response_format(self.dialect, schema.clone())
        })
    }

    /// One decision through the LLM: the answer, or why not.
    fn ask(
        &mut self,
        input: &SelectionInput<'_>,
        stats: &mut CallStats,
    ) -> Result<Answer, LlmError> {
        let pick = self.fallback.clone().select(input);
        let util = input
            .features
            .get(input.bottleneck * 4)
            .map_or(0.0, |f| f * 2.0);
        let hint = Hint {
            bottleneck: &input.state.stages[input.bottleneck].name,
            utilisation: util,
            best: &input.candidates[pick.index].id,
        };
        let prompt = build_prompt(input, self.cfg.token_budget, Some(hint));
        stats.estimated_prompt_tokens = prompt.estimated_tokens;
        let stages: Vec<&str> = input.state.stages.iter().map(|s| s.name.as_str()).collect();
        // The schema offers what the prompt offers; an answer naming any other candidate id
        // is still parsed, so the validator (not the parser) says why it is refused.
        let offered: Vec<&str> = prompt
            .offered
            .iter()
            .map(|&i| input.candidates[i].id.as_str())
            .collect();
        let ids: Vec<&str> = input.candidates.iter().map(|c| c.id.as_str()).collect();
        let schema = answer_schema(&stages, &offered);
        let url = format!("{}/chat/completions", self.cfg.url);
        let mut last = LlmError::WorkerGone;
        let mut switched = false;
        let mut attempt = 0;
        while attempt <= self.cfg.retries {
            stats.attempts += 1;
            let body = self.body(&prompt, &schema);
            match self
                .client
                .post_json(&url, self.cfg.api_key.as_deref(), &body, self.cfg.timeout)
            {
                Ok((200, bytes)) => {
                    let c = parse_completion(&bytes)?;
                    stats.server_prompt_tokens = c.prompt_tokens;
                    return parse_answer(&c.content, &stages, &ids);
                }
                Ok((status, bytes)) => {
                    let text = String::from_utf8_lossy(&bytes);
                    if !switched
                        && self.dialect == FormatDialect::JsonSchema
                        && text.contains("response_format")
                    {
                        tracing::info!(
                            "LLM server rejects json_schema; using json_object + schema"
                        );
                        self.dialect = FormatDialect::JsonObject;
                        switched = true;
                        continue;
                    }
                    last = LlmError::Status {
                        status,
                        body: text.chars().take(200).collect(),
                    };
                }
                Err(e) => last = e,
            }
            if !last.retryable() {
                break;
            }
            attempt += 1;
        }
        Err(last)
    }
}

impl Selector for LlmSelector {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn calls(&self) -> &[CallStats] {
        &self.calls
    }

    fn select(&mut self, input: &SelectionInput<'_>) -> Selection {
        let started = Instant::now();
        let mut stats = CallStats::default();
        let result = self.ask(input, &mut stats);
        stats.latency = started.elapsed();
        let sel = match result {
            Ok(a) => {
                let index = input
                    .candidates
                    .iter()
                    .position(|c| c.id == a.action)
                    .unwrap_or(0);
                let bottleneck = input
                    .state
                    .stages
                    .iter()
                    .position(|s| s.name == a.bottleneck);
                Selection {
                    index,
                    bottleneck,
                    rationale: a.rationale,
                    source: Source::Llm,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "LLM selector failed; the model selector decides");
                stats.error = Some(e.to_string());
                let mut f = self.fallback.select(input);
                f.source = Source::Fallback;
                f.rationale = format!("llm failed ({e}); model: {}", f.rationale);
                f
            }
        };
        tracing::info!(
            latency_ms = stats.latency.as_secs_f64() * 1e3,
            estimated_prompt_tokens = stats.estimated_prompt_tokens,
            server_prompt_tokens = stats.server_prompt_tokens,
            attempts = stats.attempts,
            "LLM selector call"
        );
        self.calls.push(stats);
        if self.calls.len() > 1000 {
            self.calls.remove(0);
        }
        sel
    }
}

#[cfg(test)]
mod tests;
