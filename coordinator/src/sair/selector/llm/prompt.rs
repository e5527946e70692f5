//! What the `llm` selector says to the model and how it reads the answer: the system prompt,
//! the user prompt under a token budget, the answer's JSON schema (in the two
//! `response_format` dialects servers accept), and the parsers of the completion and the
//! answer. Plain functions of a [`SelectionInput`]; no IO.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::super::candidates::Candidates;
use super::super::SelectionInput;
use super::LlmError;

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

/// The `response_format` request field carrying `schema` in dialect `d`.
pub fn response_format(d: FormatDialect, schema: Value) -> Value {
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
        let util = input.utilisation.get(i).copied().unwrap_or(0.0);
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
    let mut order: Vec<usize> = input.offerable().collect();
    // Hold first (never dropped), then by predicted reward, best first.
    order.sort_by(|&a, &b| {
        Candidates::is_hold(b)
            .cmp(&Candidates::is_hold(a))
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
