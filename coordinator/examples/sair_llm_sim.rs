//! Runs the SAIR policy with the `llm` selector on one scenario in the simulator and prints
//! what it decided, next to the `model` selector on the same scenario and seed.
//!
//! `cargo run --release -p sair-coordinator --example sair_llm_sim -- SCENARIO URL [SEED]`

use std::path::PathBuf;
use std::time::Duration;

use sair_coordinator::sair::selector::llm::LlmConfig;
use sair_coordinator::sair::store::Source;
use sair_coordinator::sair::{Sair, SairConfig};
use sair_coordinator::scenario::Scenario;
use sair_coordinator::sim;
use sair_service::config::ProcessEnv;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(url)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: sair_llm_sim SCENARIO URL [SEED]");
        std::process::exit(64);
    };
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let sc = match Scenario::load(&PathBuf::from(path)) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(64);
        }
    };
    for llm in [false, true] {
        let mut cfg = SairConfig {
            seed,
            interval_s: sc.interval_s,
            ..SairConfig::default()
        };
        if llm {
            let mut l = LlmConfig::new(url, "smollm2", None, &ProcessEnv);
            l.timeout = Duration::from_secs(60);
            cfg.llm = Some(l);
        }
        let mut p = match Sair::new(cfg) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let r = sim::run(&sc, &mut p, seed);
        let count = |s: Source| p.decisions().iter().filter(|d| d.source == s).count();
        let calls = p.llm_calls();
        let lat: Vec<f64> = calls.iter().map(|c| c.latency.as_secs_f64()).collect();
        println!(
            "selector={} p99={:.1}ms slo_violation={:.2}% cost/1k={:.5} bottleneck={:?} \
             decisions: llm={} model={} fallback={} explore={} guard={} | llm calls={} mean latency={:.2}s",
            if llm { "llm" } else { "model" },
            r.p99_s * 1e3,
            r.slo_violation_rate * 100.0,
            r.cost_per_1k(),
            r.bottleneck_accuracy(),
            count(Source::Llm),
            count(Source::Model),
            count(Source::Fallback),
            count(Source::Explore),
            count(Source::Guard),
            calls.len(),
            lat.iter().sum::<f64>() / lat.len().max(1) as f64
        );
        if llm {
            let mut moves = std::collections::BTreeMap::new();
            for d in p.decisions().iter().filter(|d| d.source == Source::Llm) {
                *moves.entry(d.label.clone()).or_insert(0) += 1;
            }
            println!("llm moves: {moves:?}");
        }
    }
}
