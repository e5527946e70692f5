//! Measuring GPU time per process (driver): NVML through `nvml-wrapper`.
//!
//! A segment's measured share is the sum of the NVML per-process SM utilisation of the pids
//! attached to it (the interceptor records its pid in the segment when it attaches), over the
//! window since the previous query. This is device time as the driver accounts it, independent
//! of the token arithmetic the bucket enforces — measuring through the segment's own token
//! counter would make the loop check itself. The emulator's `libnvidia-ml.so.1` answers the same
//! calls from its time line.

use crate::AgentError;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;

/// Per-process GPU time, as shares of a device's time.
pub trait Utilization: Send + std::fmt::Debug {
    /// Share of `gpu`'s time each process used since `since_unix_us` (0: the source's default
    /// window), keyed by pid.
    fn per_process(
        &mut self,
        gpu: u32,
        since_unix_us: u64,
    ) -> Result<HashMap<u32, f64>, AgentError>;
    /// Share of `gpu`'s time any process used recently.
    fn device(&mut self, gpu: u32) -> Result<f64, AgentError>;
}

/// NVML-backed [`Utilization`].
pub struct NvmlMeter {
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlMeter").finish_non_exhaustive()
    }
}

impl NvmlMeter {
    /// Loads NVML from `lib` (default: the system's `libnvidia-ml.so.1`).
    pub fn load(lib: Option<&PathBuf>) -> Result<Self, AgentError> {
        let mut b = Nvml::builder();
        if let Some(p) = lib {
            b.lib_path(OsStr::new(p.as_os_str()));
        }
        let nvml = b.init().map_err(|source| AgentError::Nvml {
            what: "init",
            source,
        })?;
        Ok(NvmlMeter { nvml })
    }

    /// GPUs on the node.
    pub fn device_count(&self) -> Result<u32, AgentError> {
        self.nvml.device_count().map_err(|source| AgentError::Nvml {
            what: "device_count",
            source,
        })
    }
}

impl Utilization for NvmlMeter {
    fn per_process(
        &mut self,
        gpu: u32,
        since_unix_us: u64,
    ) -> Result<HashMap<u32, f64>, AgentError> {
        let dev = self
            .nvml
            .device_by_index(gpu)
            .map_err(|source| AgentError::Nvml {
                what: "device_by_index",
                source,
            })?;
        let samples = match dev.process_utilization_stats(since_unix_us) {
            Ok(s) => s,
            // No process ran in the window.
            Err(NvmlError::NotFound) => Vec::new(),
            Err(source) => {
                return Err(AgentError::Nvml {
                    what: "process_utilization_stats",
                    source,
                });
            }
        };
        // A real driver may return several samples per pid in the window: average them.
        let mut acc: HashMap<u32, (f64, u32)> = HashMap::new();
        for s in samples {
            let e = acc.entry(s.pid).or_insert((0.0, 0));
            e.0 += f64::from(s.sm_util) / 100.0;
            e.1 += 1;
        }
        Ok(acc
            .into_iter()
            .map(|(pid, (sum, n))| (pid, sum / f64::from(n.max(1))))
            .collect())
    }

    fn device(&mut self, gpu: u32) -> Result<f64, AgentError> {
        let dev = self
            .nvml
            .device_by_index(gpu)
            .map_err(|source| AgentError::Nvml {
                what: "device_by_index",
                source,
            })?;
        let u = dev.utilization_rates().map_err(|source| AgentError::Nvml {
            what: "utilization_rates",
            source,
        })?;
        Ok(f64::from(u.gpu) / 100.0)
    }
}

/// True while `pid` exists (a process of another user counts as alive).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}
