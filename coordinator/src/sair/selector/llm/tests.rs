use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;
use crate::policy::{Action, Policy};
use crate::sair::test_util::pipeline;
use crate::sair::{Sair, SairConfig};

/// How the fake OpenAI-compatible server answers.
#[derive(Debug, Clone)]
enum Mode {
    /// Answer with this action id (and bottleneck `infer`).
    Action(&'static str),
    /// 200 with content that is not JSON.
    Garbage,
    /// Never answer in time.
    Slow,
    /// 400 on `json_schema`, then answer like llama-cpp-python does.
    OnlyJsonObject(&'static str),
    /// 500 every time.
    Error,
    /// Answer with a candidate id the schema does not offer.
    NotOffered,
}

struct Fake {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn fake(mode: Mode) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            let mut auth = None;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if lower.starts_with("authorization:") {
                    auth = Some(line.trim().to_string());
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["_auth"] = json!(auth);
            let dialect = v["response_format"]["type"]
                .as_str()
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push(v.clone());
            let (status, content) = match &mode {
                Mode::Action(id) => (
                    200,
                    format!(r#"{{"bottleneck":"infer","action":"{id}","rationale":"test"}}"#),
                ),
                Mode::Garbage => (200, "I think you should scale up!".to_string()),
                Mode::Slow => {
                    std::thread::sleep(Duration::from_secs(3));
                    (200, String::new())
                }
                Mode::OnlyJsonObject(id) => {
                    if dialect == "json_schema" {
                        (400, String::new())
                    } else {
                        (
                            200,
                            format!(r#"{{"bottleneck":"pre","action":"{id}","rationale":"ok"}}"#),
                        )
                    }
                }
                Mode::Error => (500, String::new()),
                Mode::NotOffered => {
                    // The smallest candidate id the schema does not offer (an unsafe one).
                    let offered = v
                        .pointer("/response_format/json_schema/schema/properties/action/enum")
                        .or_else(|| v.pointer("/response_format/schema/properties/action/enum"))
                        .cloned()
                        .unwrap_or(json!([]));
                    let id = (0..100)
                        .map(|k| format!("c{k}"))
                        .find(|id| !offered.as_array().unwrap().iter().any(|o| o == id))
                        .unwrap();
                    (
                        200,
                        format!(r#"{{"bottleneck":"pre","action":"{id}","rationale":"unsafe"}}"#),
                    )
                }
            };
            let payload = if status == 200 {
                json!({"choices":[{"message":{"role":"assistant","content":content}}],"usage":{"prompt_tokens":123}}).to_string()
            } else {
                r#"{"error":{"message":"Input should be 'text' or 'json_object' (response_format)"}}"#.to_string()
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    Fake { url, bodies }
}

#[derive(Debug)]
struct Env;
impl EnvSource for Env {
    fn get(&self, key: &str) -> Option<String> {
        (key == "TEST_KEY").then(|| "sekrit".to_string())
    }
}

fn policy(url: &str, timeout_ms: u64) -> Sair {
    let mut l = LlmConfig::new(url, "fake", Some("TEST_KEY"), &Env);
    l.timeout = Duration::from_millis(timeout_ms);
    l.retries = 1;
    Sair::new(SairConfig {
        llm: Some(l),
        explore_rate0: 0.0,
        ..SairConfig::default()
    })
    .unwrap()
}

#[test]
fn valid_answer_is_used_with_source_llm() {
    let f = fake(Mode::Action("c0"));
    let mut p = policy(&f.url, 5000);
    let d = p.decide(&pipeline(100.0, 0.0));
    let log = &p.decisions()[0];
    assert_eq!(log.source, Source::Llm, "{log:?}");
    assert_eq!(d.bottleneck, Some(1));
    assert_eq!(d.rationale, "test");
    let bodies = f.bodies.lock().unwrap();
    assert_eq!(bodies[0]["_auth"], json!("authorization: Bearer sekrit"));
    assert_eq!(bodies[0]["response_format"]["type"], "json_schema");
    let schema = &bodies[0]["response_format"]["json_schema"]["schema"];
    assert_eq!(
        schema["properties"]["bottleneck"]["enum"],
        json!(["pre", "infer", "post"])
    );
    assert_eq!(p.llm_calls()[0].server_prompt_tokens, Some(123));
    // The live coordinator's token counter: the server's count where it reports usage.
    assert_eq!(p.llm_prompt_tokens(), 123);
}

#[test]
fn json_object_dialect_is_learned() {
    let f = fake(Mode::OnlyJsonObject("c0"));
    let mut p = policy(&f.url, 5000);
    p.decide(&pipeline(100.0, 0.0));
    p.decide(&pipeline(100.0, 30.0));
    assert!(
        p.decisions().iter().all(|l| l.source == Source::Llm),
        "{:?}",
        p.decisions()
    );
    let kinds: Vec<String> = f
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["response_format"]["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["json_schema", "json_object", "json_object"]);
}

#[test]
fn garbage_timeout_error_and_unknown_ids_fall_back_to_the_model() {
    for mode in [Mode::Garbage, Mode::Slow, Mode::Error, Mode::Action("c999")] {
        let f = fake(mode.clone());
        let mut p = policy(&f.url, 400);
        let started = Instant::now();
        let d = p.decide(&pipeline(100.0, 0.0));
        assert!(started.elapsed() < Duration::from_secs(10));
        let log = &p.decisions()[0];
        assert_eq!(log.source, Source::Fallback, "{mode:?}: {log:?}");
        assert!(
            d.rationale.starts_with("llm failed"),
            "{mode:?}: {}",
            d.rationale
        );
        assert_eq!(d.bottleneck, Some(1), "the model names the bottleneck");
    }
    // Nothing listening at all.
    let mut p = policy("http://127.0.0.1:9/v1", 400);
    p.decide(&pipeline(100.0, 0.0));
    assert_eq!(p.decisions()[0].source, Source::Fallback);
}

#[test]
fn unsafe_valid_id_is_rejected_by_the_validator() {
    // `pre` was just scaled up, so its scale-downs are oscillations the validator rejects:
    // they are not offered, and when the LLM names one anyway the model decides.
    let f = fake(Mode::NotOffered);
    let mut p = policy(&f.url, 5000);
    let mut s = pipeline(100.0, 30.0);
    s.stages[0].replicas_desired = 3;
    p.validator.record(
        &pipeline(100.0, 0.0),
        &Action {
            replicas: vec![3, 2, 1],
            rho: vec![1.0; 3],
            shares: Vec::new(),
        },
        0.0,
    );
    let d = p.decide(&s);
    let log = p.decisions().last().unwrap();
    assert_eq!(log.source, Source::Fallback, "{log:?}");
    assert!(d.rationale.contains("validator rejects"), "{}", d.rationale);
    assert!(d.action.replicas[0] >= 3);
    let asked = f.bodies.lock().unwrap()[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !asked.contains(": pre -1 replica"),
        "unsafe moves are not offered: {asked}"
    );
    assert!(asked.contains("Queueing model: bottleneck"), "{asked}");
}

#[test]
fn prompt_respects_the_token_budget() {
    let s = pipeline(100.0, 0.0);
    let planning = crate::sair::features::Planning::new(&s, &Default::default(), 30.0);
    let m = crate::sair::candidates::Model {
        state: &s,
        planning: &planning,
        prices: Default::default(),
        calibration: Default::default(),
    };
    let cands = crate::sair::candidates::generate(&m, 1, &Default::default(), &Default::default());
    let rewards = vec![1.0; cands.len()];
    let safe = vec![true; cands.len()];
    let ep = crate::sair::store::Episode {
        t_s: 0.0,
        features: vec![0.5; 14],
        kind: crate::sair::candidates::MoveKind::Hold,
        stage: None,
        label: "keep the current allocation for a long while".into(),
        source: Source::Model,
        bottleneck: None,
        candidates: vec![],
        action: Action::hold(&s),
        before: Default::default(),
        predicted: Default::default(),
        predicted_reward: 1.0,
        realised: Default::default(),
        reward: 1.0,
        surprisal: 1.0,
    };
    let eps: Vec<&crate::sair::store::Episode> = std::iter::repeat_n(&ep, 15).collect();
    let f = vec![0.5; 14];
    let input = SelectionInput {
        state: &s,
        features: &f,
        utilisation: &[0.5, 0.5, 0.5],
        candidates: &cands,
        predicted_reward: &rewards,
        safe: &safe,
        bottleneck: 1,
        episodes: &eps,
        bandwidth: 0.15,
    };
    let full = build_prompt(&input, 100_000, None);
    assert_eq!(full.episodes, 15);
    for budget in [200, 400, 700, 2000] {
        let p = build_prompt(&input, budget, None);
        assert!(
            p.estimated_tokens <= budget || p.candidates == 1,
            "{budget}: {p:?}"
        );
        assert!(p.user.contains("c0:"), "hold is always offered");
    }
}

#[test]
fn prompt_shows_the_utilisation_it_is_given_not_the_feature_encoding() {
    let s = pipeline(100.0, 0.0);
    let planning = crate::sair::features::Planning::new(&s, &Default::default(), 30.0);
    let m = crate::sair::candidates::Model {
        state: &s,
        planning: &planning,
        prices: Default::default(),
        calibration: Default::default(),
    };
    let cands = crate::sair::candidates::generate(&m, 1, &Default::default(), &Default::default());
    let rewards = vec![1.0; cands.len()];
    let safe = vec![true; cands.len()];
    // Features say 1.0 everywhere (what utilisation 2.0 would encode to); the utilisation
    // itself says otherwise, and above the feature vector's clamp.
    let f = vec![0.5; 14];
    let input = SelectionInput {
        state: &s,
        features: &f,
        utilisation: &[0.12, 3.45, 0.5],
        candidates: &cands,
        predicted_reward: &rewards,
        safe: &safe,
        bottleneck: 1,
        episodes: &[],
        bandwidth: 0.15,
    };
    let hint = Hint {
        bottleneck: "infer",
        utilisation: input.utilisation[1],
        best: "c0",
    };
    let p = build_prompt(&input, 100_000, Some(hint));
    assert!(p.user.contains("util 0.12"), "{}", p.user);
    assert!(p.user.contains("util 3.45"), "{}", p.user);
    assert!(p.user.contains("(utilisation 3.45)"), "{}", p.user);
}

/// The real-LLM test: several decisions through a real OpenAI-compatible server (CI starts
/// llama-cpp-python with SmolLM2-135M-Instruct through `scripts/llm-local.sh start` and
/// exports `SAIR_LLM_URL`). Each answer must be schema-valid, pass the validator and be
/// logged with source `llm`; prompt tokens and latency are printed for docs/benchmarks.md.
#[test]
fn real_llm_server_decisions() {
    let Ok(url) = std::env::var("SAIR_LLM_URL") else {
        panic!(
            "SAIR_LLM_URL is not set: start a local server with `scripts/llm-local.sh start` and \
             export SAIR_LLM_URL=<the URL it prints> (scripts/test.sh does this)"
        );
    };
    let mut l = LlmConfig::new(&url, "smollm2", None, &Env);
    // Generous: a shared 2-core machine may be busy compiling.
    l.timeout = Duration::from_secs(120);
    let mut p = Sair::new(SairConfig {
        llm: Some(l),
        explore_rate0: 0.0,
        // Anti-oscillation off so that every offered candidate is safe: the test is about the
        // LLM path, not about the validator (tested above with unsafe ids).
        limits: crate::sair::validator::Limits {
            cooldown_s: 0.0,
            ..Default::default()
        },
        ..SairConfig::default()
    })
    .unwrap();
    let mut s = pipeline(100.0, 0.0);
    for k in 0..4u32 {
        let t = f64::from(k) * 30.0;
        s.t_s = t;
        s.arrival_rate = 100.0 + 20.0 * f64::from(k);
        let d = p.decide(&s);
        let log = p.decisions().last().unwrap().clone();
        let call = p.llm_calls().last().unwrap().clone();
        eprintln!(
            "real LLM decision {k}: source={} action={:?} bottleneck={:?} est_prompt_tokens={} \
             server_prompt_tokens={:?} latency_ms={:.0} attempts={} rationale={:?}",
            log.source.as_str(),
            log.label,
            log.bottleneck,
            call.estimated_prompt_tokens,
            call.server_prompt_tokens,
            call.latency.as_secs_f64() * 1e3,
            call.attempts,
            log.rationale
        );
        assert_eq!(log.source, Source::Llm, "{log:?} {call:?}");
        assert!(call.error.is_none());
        let server_tokens = call.server_prompt_tokens.expect("the server reports usage");
        assert!(
            server_tokens <= 2000,
            "prompt of {server_tokens} tokens is over the budget"
        );
        assert!(
            call.estimated_prompt_tokens as u64 >= server_tokens * 9 / 10,
            "the estimate ({}) should not undercount the server's {server_tokens}",
            call.estimated_prompt_tokens
        );
        assert!(
            p.validator.check(&s, &d.action, t, true).is_ok(),
            "applied action passes the validator"
        );
        // Apply the decision to the next observation.
        for (i, st) in s.stages.iter_mut().enumerate() {
            st.replicas = d.action.replicas[i];
            st.replicas_desired = d.action.replicas[i];
            st.rho = d.action.rho[i];
        }
    }
}
