//! The `llm` selector: asks an OpenAI-compatible chat-completions server to choose, in three
//! parts: [`client`] (the HTTP client on its own thread), [`prompt`] (what is asked and how the
//! answer is read) and, here, the selector itself (retries, the dialect switch, the fallback).
//!
//! The answer is constrained with `response_format` carrying a JSON schema
//! (`{"bottleneck": stage, "action": candidate id, "rationale": text}`, with the stage names and
//! candidate ids as enums). The OpenAI form `{"type": "json_schema", ...}` is tried first;
//! servers that reject it (llama-cpp-python's server accepts only `json_object` + `schema`)
//! get the `json_object` form from then on. Timeouts, transport errors and 5xx are retried a
//! bounded number of times; anything else, or an answer outside the schema, or an action the
//! validator rejects, falls back to the `model` selector, and the log says why.

pub mod client;
pub mod prompt;

use std::time::{Duration, Instant};

use sair_service::config::EnvSource;
use serde_json::{Value, json};

use super::super::candidates::Candidates;
use super::super::store::Source;
use super::{ModelSelector, Selection, SelectionInput, Selector};

pub use client::LlmClient;
pub use prompt::{
    Answer, Completion, FormatDialect, Hint, Prompt, SYSTEM_PROMPT, answer_schema, build_prompt,
    estimate_tokens, parse_answer, parse_completion, response_format,
};

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
    /// A config with defaults; the API key is read from `api_key_env` through `env` (so tests
    /// never touch the process environment).
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

/// Measurements of one LLM call, for benchmarks and tests.
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
    /// Stats of the last 1,000 calls.
    calls: Vec<CallStats>,
    /// Prompt tokens of every call so far (the server's count, else the estimate).
    prompt_tokens: u64,
}

impl LlmSelector {
    pub fn new(cfg: LlmConfig, fallback: ModelSelector) -> Self {
        Self {
            cfg,
            client: LlmClient::new(),
            fallback,
            dialect: FormatDialect::JsonSchema,
            calls: Vec::new(),
            prompt_tokens: 0,
        }
    }

    /// Prompt tokens of every call so far: the server's `usage.prompt_tokens` where it reports
    /// it, else the prompt builder's estimate.
    pub fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens
    }

    /// Measurements of the last 1,000 calls, oldest first.
    pub fn calls(&self) -> &[CallStats] {
        &self.calls
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
        let hint = Hint {
            bottleneck: &input.state.stages[input.bottleneck].name,
            utilisation: input
                .utilisation
                .get(input.bottleneck)
                .copied()
                .unwrap_or(0.0),
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

    fn select(&mut self, input: &SelectionInput<'_>) -> Selection {
        let started = Instant::now();
        let mut stats = CallStats::default();
        let result = self.ask(input, &mut stats);
        stats.latency = started.elapsed();
        let sel = match result {
            Ok(a) => {
                // `parse_answer` accepts only candidate ids, so the hold default is never used.
                let index = input
                    .candidates
                    .position(&a.action)
                    .unwrap_or(Candidates::HOLD);
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
        let tokens = stats
            .server_prompt_tokens
            .unwrap_or(stats.estimated_prompt_tokens as u64);
        self.prompt_tokens = self.prompt_tokens.saturating_add(tokens);
        self.calls.push(stats);
        if self.calls.len() > 1000 {
            self.calls.remove(0);
        }
        sel
    }
}

#[cfg(test)]
mod tests;
