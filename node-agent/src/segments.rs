//! Segment files under the shm dir (driver): health checks, the agent's state file, the
//! commitment lock.
//!
//! Besides the `*.seg` files of `sair-shm`, the directory holds two dot-files of the agent
//! (`list_segments` skips names starting with `.`):
//! - [`STATE_FILE`]: written by the daemon every period — per segment the measured share and
//!   the ns-per-token calibration — so that `status` can show the measured share and a
//!   restarted daemon is calibrated from its first period;
//! - [`LOCK_FILE`]: `flock`ed by whoever changes targets (`set-rate`, remote targets, removal)
//!   so that two commitment checks cannot both pass. A kernel `flock` is released when its holder
//!   dies; it is never taken on the launch path.

use crate::AgentError;
use sair_shm::{MAGIC, SEGMENT_SIZE, Segment, ShmError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// The daemon's state file in the shm dir.
pub const STATE_FILE: &str = ".sair-agent-state.json";
/// The commitment lock file in the shm dir.
pub const LOCK_FILE: &str = ".sair-agent.lock";
/// Device ns per token assumed for a segment made before any measurement (the emulator's
/// default kernel, 1000 ns per block of 128 threads, is ≈ 7.8). The loop corrects it.
pub const DEFAULT_NS_PER_TOKEN: f64 = 8.0;

/// What the daemon last knew of a segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentState {
    /// GPU index.
    pub gpu: u32,
    /// Measured share over the last window.
    pub measured: Option<f64>,
    /// Device ns per token.
    pub ns_per_token: Option<f64>,
    /// Launches per second over the last window.
    pub launches_per_s: f64,
    /// Times the agent recreated this segment.
    pub recreated: u64,
}

/// The state file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// When it was written, unix ms.
    pub updated_unix_ms: u64,
    /// Per segment.
    pub segments: BTreeMap<String, SegmentState>,
}

impl AgentState {
    /// The median calibration of segments on `gpu`, a good first guess for a new segment.
    pub fn ns_per_token_guess(&self, gpu: u32) -> Option<f64> {
        let mut v: Vec<f64> = self
            .segments
            .values()
            .filter(|s| s.gpu == gpu)
            .filter_map(|s| s.ns_per_token)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

/// Unix time in ms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads the state file; a missing or unreadable one is an empty state (logged by the caller).
pub fn read_state(dir: &Path) -> Result<AgentState, String> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentState::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the state file atomically: a temp file, its data synced, then a rename over the old
/// one. Syncing first matters for more than a crash: on ext4 a rename over an existing file
/// flushes the new file's unwritten data itself, while it holds the directory's lock, and on a
/// busy disk that took seconds, during which every listing of the shm dir (the control loop's,
/// each period) waited. Synced beforehand, the rename has nothing left to flush; on tmpfs (the
/// usual `/var/run`) the sync costs nothing.
pub fn write_state(dir: &Path, state: &AgentState) -> Result<(), AgentError> {
    use std::io::Write;
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp.{}", std::process::id()));
    let io = |op, source| AgentError::Io {
        op,
        path: path.clone(),
        source,
    };
    let bytes =
        serde_json::to_vec_pretty(state).map_err(|e| io("encode", std::io::Error::other(e)))?;
    let mut file = File::create(&tmp).map_err(|e| io("write", e))?;
    file.write_all(&bytes).map_err(|e| io("write", e))?;
    file.sync_data().map_err(|e| io("sync", e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))
}

/// Holds the commitment lock until dropped.
pub fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<File>, AgentError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AgentError::Io {
            op: "open lock",
            path: path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        AgentError::Io {
            op: "flock",
            path,
            source: std::io::Error::from(e),
        }
    })
}

/// Errors after which the file is replaced by a fresh segment: it is not a segment any more.
/// Another layout version or an I/O error is left alone (another agent version may own it).
pub fn is_recreatable(e: &ShmError) -> bool {
    matches!(
        e,
        ShmError::Truncated { .. } | ShmError::BadMagic { .. } | ShmError::SizeMismatch { .. }
    )
}

/// What became of a mapped segment's file since it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Same file, valid.
    Ok,
    /// The path no longer exists.
    Gone,
    /// Another file is at the path (re-created by someone).
    Replaced,
    /// The file was damaged in place.
    Corrupt(String),
}

/// A mapped segment and the identity of its file.
#[derive(Debug)]
pub struct Mapped {
    /// The mapping.
    pub seg: Segment,
    /// The mapped file itself (its inode stays reachable after the path is replaced).
    file: File,
    ino: u64,
    /// Who may open the file, as it was when mapped (kept when the agent recreates it).
    pub access: sair_shm::Access,
}

impl Mapped {
    /// Opens the segment at `path`.
    pub fn open(path: &Path) -> Result<Mapped, ShmError> {
        let seg = Segment::open(path)?;
        Self::with_file(seg)
    }

    /// Creates (or replaces) the segment at `path`, with that access.
    pub fn create(
        path: &Path,
        gpu: u32,
        params: &sair_shm::Params,
        access: sair_shm::Access,
    ) -> Result<Mapped, ShmError> {
        let seg = Segment::create_with(path, gpu, params, access)?;
        Self::with_file(seg)
    }

    fn with_file(seg: Segment) -> Result<Mapped, ShmError> {
        let path = seg.path().to_owned();
        let file = File::open(&path).map_err(|source| ShmError::Io {
            path: path.clone(),
            op: "open",
            source,
        })?;
        let meta = file.metadata().map_err(|source| ShmError::Io {
            path: path.clone(),
            op: "stat",
            source,
        })?;
        Ok(Mapped {
            seg,
            file,
            ino: meta.ino(),
            access: sair_shm::Access::of(&meta),
        })
    }

    /// Tells the processes still mapping this file to re-open the path (they then attach to
    /// whatever is there now), unless the file is shorter than a segment, in which case the
    /// mapping must not be touched at all.
    pub fn retire(&self) -> bool {
        let whole = self
            .file
            .metadata()
            .is_ok_and(|m| m.len() >= SEGMENT_SIZE as u64);
        if whole {
            self.seg.layout().control.retired.store(1, Relaxed);
        }
        whole
    }

    /// Checks the file before the mapping is read: a file truncated under a mapping must not
    /// be touched (reading past its end would fault), so length and inode are checked first.
    pub fn health(&self) -> Health {
        let path = self.seg.path();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Health::Gone,
            Err(e) => return Health::Corrupt(format!("stat failed: {e}")),
        };
        if meta.ino() != self.ino {
            return Health::Replaced;
        }
        if meta.len() < SEGMENT_SIZE as u64 {
            return Health::Corrupt(format!(
                "truncated to {} bytes under its mapping",
                meta.len()
            ));
        }
        let magic = self.seg.layout().header.magic.load(Relaxed);
        if magic != MAGIC {
            return Health::Corrupt(format!("magic overwritten with {magic:#018x}"));
        }
        // `retired` set in the file that is still at the path is not a replacement (whoever
        // replaces or removes a file changes the path first): the integrity check repairs it.
        Health::Ok
    }
}

/// `<dir>/<name>.seg` for a validated name.
pub fn path_of(dir: &Path, name: &str) -> Result<PathBuf, AgentError> {
    Ok(sair_shm::segment_path(dir, name)?)
}
