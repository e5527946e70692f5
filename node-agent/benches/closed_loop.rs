//! Closed-loop rate accuracy of the node agent on the GPU emulator.
//!
//! For each scenario: a fresh emulated GPU and shm dir, `sair-node-agent set-rate` before the
//! agent starts (so the first rate comes from the uncalibrated default guess), the agent
//! measuring through the emulator's NVML, and `sair-emu-launcher` processes (1 ms kernels,
//! `LD_PRELOAD=libsair_intercept.so`) recording their own device busy time every 100 ms. The
//! achieved share is the emulator's accounting, not the agent's measurement.
//!
//! Prints, per scenario: the share over the 10 s window after a 3 s settling period, the worst
//! 1 s window in it, and the settling time (first moment from which every 500 ms window stays
//! within ±3 points of ρ). The step scenario changes ρ 0.25 → 0.75 with `set-rate` mid-run.
//!
//! Run: `cargo build -p sair-emu-cuda -p sair-emu-nvml -p sair-intercept -p sair-emu-tools
//! -p sair-node-agent && cargo bench -p sair-node-agent --bench closed_loop --profile dev`

#![allow(clippy::unwrap_used)]

use sair_tests::{Proc, binary};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const SETTLE_S: f64 = 3.0;
const WINDOW_S: f64 = 10.0;

struct World {
    root: PathBuf,
    ns_per_block: u64,
}

impl World {
    fn new(tag: &str) -> World {
        let root =
            std::env::temp_dir().join(format!("sair-agent-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["shm", "tls"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        sair_tests::emulator::driver_dir(&root.join("lib")).unwrap();
        World {
            root,
            ns_per_block: 1000,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "SAIR_EMU_STATE",
                self.root.join("emu.state").display().to_string(),
            ),
            ("SAIR_EMU_NS_PER_BLOCK", self.ns_per_block.to_string()),
            (
                "LD_LIBRARY_PATH",
                self.root.join("lib").display().to_string(),
            ),
        ]
    }

    fn shm(&self) -> String {
        self.root.join("shm").display().to_string()
    }

    fn set_rate(&self, seg: &str, rate: f64) {
        self.set_rate_mode(seg, rate, "cap");
    }

    fn set_rate_mode(&self, seg: &str, rate: f64, mode: &str) {
        let out = Command::new(binary("sair-node-agent"))
            .args([
                "set-rate",
                "--shm-dir",
                &self.shm(),
                "--segment",
                seg,
                &format!("--rate={rate}"),
                "--mode",
                mode,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn agent(&self) -> Proc {
        let args: Vec<String> = [
            "run",
            "--shm-dir",
            &self.shm(),
            "--metrics-listen",
            "none",
            "--report-listen",
            "none",
            "--control-period-ms",
            "100",
            "--nvml-lib",
            &self
                .root
                .join("lib/libnvidia-ml.so.1")
                .display()
                .to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn(
            &self.root,
            "agent",
            &binary("sair-node-agent"),
            &args,
            &self.env(),
        )
    }

    fn launcher(&self, seg: &str, ms: u64) -> Proc {
        let args: Vec<String> = [
            "--launches",
            "1000000000",
            "--duration-ms",
            &ms.to_string(),
            "--grid",
            &(1_000_000 / self.ns_per_block).to_string(),
            "--sync-every",
            "2",
            "--sample-ms",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut env = self.env();
        env.push((
            "LD_PRELOAD",
            binary("libsair_intercept.so").display().to_string(),
        ));
        env.push(("SAIR_SHM_DIR", self.shm()));
        env.push(("SAIR_SEGMENT", seg.into()));
        Proc::spawn(
            &self.root,
            &format!("launcher-{seg}"),
            &binary("sair-emu-launcher"),
            &args,
            &env,
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn finish(mut p: Proc) -> Vec<(f64, f64)> {
    let status = p.child.wait().unwrap();
    let out = p.output();
    assert!(status.success(), "{out}");
    let v: Value =
        serde_json::from_str(out.lines().rev().find(|l| l.starts_with('{')).unwrap()).unwrap();
    v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_f64().unwrap() / 1e9, s[1].as_f64().unwrap() / 1e9))
        .collect()
}

/// Share between times a and b (seconds since the launcher started).
fn share(s: &[(f64, f64)], a: f64, b: f64) -> f64 {
    let i = s.iter().position(|(t, _)| *t >= a).unwrap();
    let j = s.iter().rposition(|(t, _)| *t <= b).unwrap();
    (s[j].1 - s[i].1) / (s[j].0 - s[i].0)
}

fn worst_1s(s: &[(f64, f64)], rho: f64, from: f64, to: f64) -> f64 {
    let mut worst: f64 = 0.0;
    let mut t = from;
    while t + 1.0 <= to {
        worst = worst.max((share(s, t, t + 1.0) - rho).abs());
        t += 0.5;
    }
    worst
}

/// First time from `from` after which every 500 ms window is within ±3 points of `rho`.
fn settling(s: &[(f64, f64)], rho: f64, from: f64, to: f64) -> Option<f64> {
    let mut t = from;
    let mut settled_at = None;
    while t + 0.5 <= to {
        if (share(s, t, t + 0.5) - rho).abs() <= 0.03 {
            settled_at.get_or_insert(t);
        } else {
            settled_at = None;
        }
        t += 0.1;
    }
    settled_at.map(|x| x + 0.5 - from)
}

/// Samples a segment's refill rate every 50 ms until stopped: the controller's own stability,
/// independent of how well the launcher kept up on a loaded machine.
struct Watch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl Watch {
    fn start(w: &World, seg: &str) -> Watch {
        let path = sair_shm::segment_path(&w.root.join("shm"), seg).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut out = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(seg) = sair_shm::Segment::open(&path) {
                    out.push((t0.elapsed().as_secs_f64(), seg.params().refill_per_s));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            out
        });
        Watch { stop, handle }
    }

    /// (max / min − 1) of the refill rate from `from` seconds on, in percent.
    fn spread(self, from: f64) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let v: Vec<u64> = self
            .handle
            .join()
            .unwrap()
            .into_iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, r)| r)
            .collect();
        let (min, max) = (v.iter().min().unwrap(), v.iter().max().unwrap());
        (*max as f64 / *min as f64 - 1.0) * 100.0
    }
}

fn main() {
    let total_ms = ((SETTLE_S + WINDOW_S) * 1000.0) as u64 + 300;
    println!(
        "| scenario | ρ | share (10 s) | error (pp) | worst 1 s (pp) | settling (s) | refill spread (%) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for rho in [0.1, 0.25, 0.5, 0.75, 0.9] {
        let w = World::new(&format!("r{rho}"));
        w.set_rate("s", rho);
        let _agent = w.agent();
        let watch = Watch::start(&w, "s");
        let s = finish(w.launcher("s", total_ms));
        let got = share(&s, SETTLE_S, SETTLE_S + WINDOW_S);
        println!(
            "| single | {rho} | {got:.4} | {:+.2} | {:.2} | {} | {:.2} |",
            (got - rho) * 100.0,
            worst_1s(&s, rho, SETTLE_S, SETTLE_S + WINDOW_S) * 100.0,
            settling(&s, rho, 0.0, SETTLE_S + WINDOW_S).map_or("-".into(), |v| format!("{v:.1}")),
            watch.spread(SETTLE_S)
        );
    }
    {
        let w = World::new("pair");
        w.set_rate("a", 0.3);
        w.set_rate("b", 0.7);
        let _agent = w.agent();
        let (wa, wb) = (Watch::start(&w, "a"), Watch::start(&w, "b"));
        let (la, lb) = (w.launcher("a", total_ms), w.launcher("b", total_ms));
        for (rho, s, watch) in [(0.3, finish(la), wa), (0.7, finish(lb), wb)] {
            let got = share(&s, SETTLE_S, SETTLE_S + WINDOW_S);
            println!(
                "| pair 0.3/0.7 | {rho} | {got:.4} | {:+.2} | {:.2} | {} | {:.2} |",
                (got - rho) * 100.0,
                worst_1s(&s, rho, SETTLE_S, SETTLE_S + WINDOW_S) * 100.0,
                settling(&s, rho, 0.0, SETTLE_S + WINDOW_S)
                    .map_or("-".into(), |v| format!("{v:.1}")),
                watch.spread(SETTLE_S)
            );
        }
    }
    for (ns_per_block, what) in [(50, "20x faster"), (20_000, "20x slower")] {
        // Cold start on a GPU far from the agent's first guess (7.8 ns/token is the default
        // emulated GPU): the loop has to find the token cost itself.
        let mut w = World::new(&format!("gpu{ns_per_block}"));
        w.ns_per_block = ns_per_block;
        w.set_rate("s", 0.5);
        let _agent = w.agent();
        let watch = Watch::start(&w, "s");
        let s = finish(w.launcher("s", total_ms));
        let got = share(&s, SETTLE_S, SETTLE_S + WINDOW_S);
        println!(
            "| cold start, GPU {what} than the guess | 0.5 | {got:.4} | {:+.2} | {:.2} | {} | {:.2} |",
            (got - 0.5) * 100.0,
            worst_1s(&s, 0.5, SETTLE_S, SETTLE_S + WINDOW_S) * 100.0,
            settling(&s, 0.5, 0.0, SETTLE_S + WINDOW_S).map_or("-".into(), |v| format!("{v:.1}")),
            watch.spread(SETTLE_S)
        );
    }
    {
        // Step: 0.25 for 5 s, then set-rate 0.75 while running; 8 s after the change.
        let w = World::new("step");
        w.set_rate("s", 0.25);
        let _agent = w.agent();
        let l = w.launcher("s", 13_000);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(5));
        w.set_rate("s", 0.75);
        let change = t0.elapsed().as_secs_f64();
        let s = finish(l);
        let got = share(&s, change + 3.0, 13.0);
        println!(
            "| step 0.25→0.75 at {change:.1} s | 0.75 | {got:.4} (last {:.0} s) | {:+.2} | {:.2} | {} | - |",
            13.0 - change - 3.0,
            (got - 0.75) * 100.0,
            worst_1s(&s, 0.75, change + 3.0, 13.0) * 100.0,
            settling(&s, 0.75, change, 13.0).map_or("-".into(), |v| format!("{v:.1}"))
        );
    }
    {
        // set-rate to effect: a launcher throttled to one 1 ms kernel per 100 ms (ρ = 0.01);
        // time from the end of `set-rate --rate 1 --mode off` (and from its start, which
        // includes starting the CLI process) until 5 more launches were counted (≥ 400 ms at
        // the old rate, ~3 ms unlimited).
        let w = World::new("latency");
        let mut from_write = Vec::new();
        let mut from_cli = Vec::new();
        for i in 0..7 {
            let seg = format!("l{i}");
            w.set_rate(&seg, 0.01);
            let segment = sair_shm::Segment::open(
                &sair_shm::segment_path(&w.root.join("shm"), &seg).unwrap(),
            )
            .unwrap();
            let l = w.launcher(&seg, 20_000);
            while segment.counters().throttled_launches < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let before = segment.counters().launches;
            let t_cli = Instant::now();
            w.set_rate_mode(&seg, 1.0, "off");
            let t_write = Instant::now();
            while segment.counters().launches < before + 5 {
                std::thread::sleep(Duration::from_micros(200));
            }
            from_write.push(t_write.elapsed().as_secs_f64() * 1e3);
            from_cli.push(t_cli.elapsed().as_secs_f64() * 1e3);
            drop(l);
        }
        from_write.sort_by(f64::total_cmp);
        from_cli.sort_by(f64::total_cmp);
        println!();
        println!(
            "set-rate to effect (7 runs): from the write median {:.1} ms, max {:.1} ms; \
             from starting the CLI median {:.1} ms, max {:.1} ms",
            from_write[3], from_write[6], from_cli[3], from_cli[6]
        );
    }
}
