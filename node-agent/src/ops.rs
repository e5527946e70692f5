//! One-shot operations on the shm dir: `set-rate`, `status`, `remove` (drivers over
//! [`crate::commit`] and `sair-shm`). They work with or without a running daemon: targets
//! live in each segment's control block (`target_share`, `mode`), which the daemon re-reads
//! every control period.

use crate::AgentError;
use crate::commit::{Claim, check_commitment, check_rate};
use crate::controller::burst_for;
use crate::segments::{self, DEFAULT_NS_PER_TOKEN, Mapped, read_state};
use crate::{bounds, integrity};
use sair_shm::{Access, Mode, Params, Segment, list_segments};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Device time an idle segment may save up, by default.
pub const DEFAULT_BURST_NS: u64 = 5_000_000;

/// What `set-rate` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetOutcome {
    /// Segment name.
    pub segment: String,
    /// GPU index.
    pub gpu: u32,
    /// True when the segment file was created.
    pub created: bool,
    /// The parameters written.
    pub mode: &'static str,
    /// Target share.
    pub rate: f64,
    /// Refill rate written, tokens/s.
    pub refill_per_s: u64,
    /// Burst written, tokens.
    pub burst: u64,
}

/// The claims of every segment in `dir`. Fail safe: a segment that cannot be read counts as
/// all of `unknown_gpu` (its GPU is unknown: the one being asked about), and one whose control
/// block is invalid ([`integrity::check`]: a NaN share, an unknown mode, …) as all of its GPU,
/// so garbage never makes room for a target. The daemon repairs or recreates such segments
/// within a control period.
pub fn claims(dir: &Path, unknown_gpu: u32) -> Result<Vec<Claim>, AgentError> {
    let mut out = Vec::new();
    for (name, path) in list_segments(dir)? {
        match Segment::open(&path) {
            Ok(seg) => {
                let snap = seg.control_snapshot();
                match snap
                    .params()
                    .filter(|_| integrity::check(&snap, None).is_empty())
                {
                    Some(p) => out.push(Claim {
                        segment: name,
                        gpu: snap.gpu_index,
                        rate: p.target_share,
                        mode: p.mode,
                        invalid: false,
                    }),
                    None => {
                        let gpu = if snap.gpu_index < crate::bounds::MAX_GPUS {
                            snap.gpu_index
                        } else {
                            unknown_gpu
                        };
                        out.push(Claim::fully_committed(name, gpu));
                    }
                }
            }
            Err(_) => out.push(Claim::fully_committed(name, unknown_gpu)),
        }
    }
    Ok(out)
}

/// Creates the shm dir itself when it is missing, never a missing tree above it (a typo in
/// `--shm-dir` must not silently build a directory nobody reads): its parent must exist.
pub fn ensure_dir(dir: &Path) -> Result<(), AgentError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(AgentError::Config(format!(
            "--shm-dir {}: its parent directory does not exist; create it, or pass --create-parents",
            dir.display()
        ))),
        Err(source) => Err(AgentError::Io {
            op: "create shm dir",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Sets the target of `segment` (creating it if missing) after the commitment check; on refusal nothing
/// is written. The refill rate of an existing segment is `rate × 1e9 / ns_per_token` with the
/// daemon's calibration from its state file, or else the old rate rescaled by
/// `rate / old target` (the calibration the segment itself implies); a new segment starts from
/// the daemon's median calibration on that GPU, or [`DEFAULT_NS_PER_TOKEN`].
pub fn set_rate(
    dir: &Path,
    segment: &str,
    rate: f64,
    gpu: Option<u32>,
    mode: Mode,
    burst_ns: u64,
) -> Result<SetOutcome, AgentError> {
    set_rate_with(dir, segment, rate, gpu, mode, burst_ns, None)
}

/// [`set_rate`], also setting who may open the segment file (`None`: as it is, or
/// [`Access::AnyUser`] for a new one). A change of access replaces the file (a new inode, the
/// old one retired), so a process that could open the old file keeps nothing writable in the
/// new one.
pub fn set_rate_with(
    dir: &Path,
    segment: &str,
    rate: f64,
    gpu: Option<u32>,
    mode: Mode,
    burst_ns: u64,
    access: Option<Access>,
) -> Result<SetOutcome, AgentError> {
    let path = segments::path_of(dir, segment)?;
    check_rate(segment, rate)?;
    bounds::check_burst(Duration::from_nanos(burst_ns)).map_err(AgentError::Config)?;
    if let Some(g) = gpu {
        bounds::check_gpu(g).map_err(AgentError::Config)?;
    }
    ensure_dir(dir)?;
    let _lock = segments::lock_dir(dir)?;
    let existing = match Mapped::open(&path) {
        Ok(m) => Some(m),
        Err(e) if segments::is_recreatable(&e) => None,
        Err(sair_shm::ShmError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => return Err(e.into()),
    };
    let gpu = gpu
        .or_else(|| existing.as_ref().map(|m| m.seg.gpu()))
        .filter(|g| *g < bounds::MAX_GPUS)
        .unwrap_or(0);
    check_commitment(
        &claims(dir, gpu)?,
        &Claim {
            segment: segment.to_owned(),
            gpu,
            rate,
            mode,
            invalid: false,
        },
    )?;
    match existing {
        Some(m) => {
            // An invalid old block implies no calibration: start from the default guess.
            let old_snap = m.seg.control_snapshot();
            let old = old_snap
                .params()
                .filter(|_| integrity::check(&old_snap, None).is_empty())
                .unwrap_or(Params {
                    mode,
                    refill_per_s: (rate * 1e9 / DEFAULT_NS_PER_TOKEN).round().max(1.0) as u64,
                    burst: 1,
                    cost_scale: 1.0,
                    target_share: rate,
                });
            // The daemon's calibration of this segment, if it has one (it also measures `off`
            // segments); otherwise the calibration implied by the segment's own rate.
            let npt = read_state(dir)
                .ok()
                .and_then(|s| s.segments.get(segment).and_then(|s| s.ns_per_token))
                .filter(|v| v.is_finite() && *v > 0.0);
            let refill = match npt {
                Some(npt) => rate * 1e9 / npt,
                None if old.target_share > 0.0 => {
                    old.refill_per_s.max(1) as f64 * rate / old.target_share
                }
                None => old.refill_per_s.max(1) as f64,
            };
            let refill = refill.round().clamp(1.0, (1u64 << 50) as f64) as u64;
            let params = Params {
                mode,
                refill_per_s: refill,
                burst: burst_for(refill, rate, burst_ns),
                cost_scale: old.cost_scale,
                target_share: rate,
            };
            if let Some(access) = access.filter(|a| *a != m.access) {
                Mapped::create(&path, gpu, &params, access)?;
                return Ok(outcome(segment, gpu, false, &params));
            }
            if m.seg.gpu() != gpu {
                m.seg.set_gpu(gpu);
            }
            m.seg.set_params(&params)?;
            // A retired flag in the file at the path is never legitimate (a replaced file is
            // no longer at the path): writing valid parameters clears it too.
            m.seg.layout().control.retired.store(0, Relaxed);
            Ok(outcome(segment, gpu, false, &params))
        }
        None => {
            let npt = read_state(dir)
                .ok()
                .and_then(|s| s.ns_per_token_guess(gpu))
                .unwrap_or(DEFAULT_NS_PER_TOKEN);
            let refill = (rate * 1e9 / npt).round().max(1.0) as u64;
            let params = Params {
                mode,
                refill_per_s: refill,
                burst: burst_for(refill, rate, burst_ns),
                cost_scale: 1.0,
                target_share: rate,
            };
            Mapped::create(&path, gpu, &params, access.unwrap_or_default())?;
            Ok(outcome(segment, gpu, true, &params))
        }
    }
}

fn outcome(segment: &str, gpu: u32, created: bool, p: &Params) -> SetOutcome {
    SetOutcome {
        segment: segment.to_owned(),
        gpu,
        created,
        mode: p.mode.as_str(),
        rate: p.target_share,
        refill_per_s: p.refill_per_s,
        burst: p.burst,
    }
}

/// Removes a segment: its processes are told to re-open (they then find no file and run
/// unthrottled), and the file is deleted.
pub fn remove(dir: &Path, segment: &str) -> Result<(), AgentError> {
    let path = segments::path_of(dir, segment)?;
    let _lock = segments::lock_dir(dir)?;
    match Segment::open(&path) {
        Ok(seg) => seg.layout().control.retired.store(1, Relaxed),
        Err(sair_shm::ShmError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(AgentError::NoSuchSegment {
                name: segment.to_owned(),
                dir: dir.to_owned(),
            });
        }
        Err(_) => {}
    }
    std::fs::remove_file(&path).map_err(|source| AgentError::Io {
        op: "remove",
        path,
        source,
    })
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// Segment name.
    pub segment: String,
    /// GPU index (`None` when unreadable).
    pub gpu: Option<u32>,
    /// Mode.
    pub mode: Option<&'static str>,
    /// Target share.
    pub target: Option<f64>,
    /// Measured share from the daemon's last period (`None` without a daemon or measurement).
    pub measured: Option<f64>,
    /// Refill rate, tokens/s.
    pub refill_per_s: Option<u64>,
    /// Launches per second over the sampling interval.
    pub launches_per_s: Option<f64>,
    /// Fraction of launches throttled over the sampling interval.
    pub throttled_fraction: Option<f64>,
    /// Total time spent throttled, seconds.
    pub throttled_seconds_total: Option<f64>,
    /// Live attached pids.
    pub pids: Vec<u32>,
    /// Why the segment could not be read, if it could not.
    pub error: Option<String>,
}

/// Reads every segment, sampling counters over `sample` (at most
/// [`bounds::MAX_SAMPLE`]) for rates. A segment whose control block is invalid is shown as an
/// error naming what is wrong, not with its garbage.
pub fn status(dir: &Path, sample: Duration) -> Result<Vec<StatusRow>, AgentError> {
    bounds::check_sample(sample).map_err(AgentError::Config)?;
    let state = read_state(dir).unwrap_or_default();
    let fresh = segments::unix_ms().saturating_sub(state.updated_unix_ms) < 10_000;
    let mut opened = Vec::new();
    let mut rows = Vec::new();
    for (name, path) in list_segments(dir)? {
        let opened_seg = Segment::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|seg| {
                let faults = integrity::check(&seg.control_snapshot(), None);
                if faults.is_empty() {
                    Ok(seg)
                } else {
                    let list: Vec<&str> = faults.iter().map(|r| r.as_str()).collect();
                    Err(format!(
                        "invalid control block ({}); a running agent repairs it",
                        list.join(", ")
                    ))
                }
            });
        match opened_seg {
            Ok(seg) => {
                let c0 = seg.counters();
                opened.push((name, seg, c0));
            }
            Err(e) => rows.push(StatusRow {
                segment: name,
                gpu: None,
                mode: None,
                target: None,
                measured: None,
                refill_per_s: None,
                launches_per_s: None,
                throttled_fraction: None,
                throttled_seconds_total: None,
                pids: Vec::new(),
                error: Some(e),
            }),
        }
    }
    let t0 = std::time::Instant::now();
    if !opened.is_empty() && !sample.is_zero() {
        std::thread::sleep(sample);
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    for (name, seg, c0) in opened {
        let c1 = seg.counters();
        let p = seg.params();
        let launches = c1.launches.saturating_sub(c0.launches);
        let throttled = c1.throttled_launches.saturating_sub(c0.throttled_launches);
        let measured = if fresh {
            state.segments.get(&name).and_then(|s| s.measured)
        } else {
            None
        };
        rows.push(StatusRow {
            gpu: Some(seg.gpu()),
            mode: Some(p.mode.as_str()),
            target: Some(p.target_share),
            measured,
            refill_per_s: Some(p.refill_per_s),
            launches_per_s: (!sample.is_zero()).then(|| launches as f64 / secs),
            throttled_fraction: (launches > 0).then(|| throttled as f64 / launches as f64),
            throttled_seconds_total: Some(c1.throttled_ns as f64 / 1e9),
            pids: seg
                .attached_pids()
                .into_iter()
                .filter(|p| crate::measure::pid_alive(*p))
                .collect(),
            error: None,
            segment: name,
        });
    }
    rows.sort_by(|a, b| a.segment.cmp(&b.segment));
    Ok(rows)
}

/// `status` as a table.
pub fn format_table(rows: &[StatusRow]) -> String {
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |v| format!("{v:.prec$}"));
    let mut out = format!(
        "{:<24} {:>3} {:<5} {:>6} {:>8} {:>12} {:>10} {:>9} {:>11}\n",
        "SEGMENT",
        "GPU",
        "MODE",
        "TARGET",
        "MEASURED",
        "REFILL/s",
        "LAUNCH/s",
        "THROTTLED",
        "THROTTLED_s"
    );
    for r in rows {
        if let Some(e) = &r.error {
            out.push_str(&format!("{:<24} error: {e}\n", r.segment));
            continue;
        }
        out.push_str(&format!(
            "{:<24} {:>3} {:<5} {:>6} {:>8} {:>12} {:>10} {:>9} {:>11}\n",
            r.segment,
            r.gpu.map_or("-".into(), |g| g.to_string()),
            r.mode.unwrap_or("-"),
            opt(r.target, 3),
            opt(r.measured, 3),
            r.refill_per_s.map_or("-".into(), |v| v.to_string()),
            opt(r.launches_per_s, 1),
            r.throttled_fraction
                .map_or("-".into(), |f| format!("{:.0}%", f * 100.0)),
            opt(r.throttled_seconds_total, 3),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
