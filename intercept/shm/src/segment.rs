//! Segment files: crash-safe create, validated open, and the agent's accessors.
//!
//! A segment is the file `<dir>/<name>.seg` (default dir [`DEFAULT_SHM_DIR`]), exactly
//! [`SEGMENT_SIZE`] bytes, mapped `MAP_SHARED` by the agent and by every intercepted process.
//! [`Segment::create`] writes a complete image to a temporary file in the same directory and
//! renames it over the final name, so a reader sees either the old file or the whole new one,
//! never a partial one; the replaced file (if any) is marked retired so that processes still
//! mapping it re-open the path. Files are never truncated in place (a mapping of a file truncated
//! under it would fault).

use crate::bucket::Bucket;
use crate::clock::monotonic_ns;
use crate::layout::{
    Counters, MAGIC, Mode, Params, SEGMENT_SIZE, SegmentLayout, VERSION_MAJOR, initial_bytes,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Relaxed, Release};

/// Default directory of segment files (a hostPath in Kubernetes).
pub const DEFAULT_SHM_DIR: &str = "/var/run/sair/shm";
/// Extension of segment files.
pub const SEGMENT_EXT: &str = "seg";

/// Why a segment could not be created or opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A filesystem call failed.
    #[error("segment {path}: {op} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is shorter than a segment.
    #[error("segment {path} is truncated: {len} bytes, a segment is {expected}; recreate it")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// [`SEGMENT_SIZE`].
        expected: u64,
    },
    /// The magic number is wrong: not a segment, or corrupt.
    #[error(
        "segment {path} has bad magic {found:#018x} (expected {expected:#018x}); not a SAIR segment or corrupt"
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What the file holds.
        found: u64,
        /// [`MAGIC`].
        expected: u64,
    },
    /// The layout major version differs from this build's.
    #[error(
        "segment {path} has layout version {found_major}.{found_minor}, this build reads {expected_major}.x; upgrade the older side"
    )]
    VersionMismatch {
        /// The file.
        path: PathBuf,
        /// Major version in the file.
        found_major: u16,
        /// Minor version in the file.
        found_minor: u16,
        /// [`VERSION_MAJOR`].
        expected_major: u16,
    },
    /// The header's total size is not [`SEGMENT_SIZE`].
    #[error("segment {path} declares {found} bytes, expected {expected}; corrupt")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// `total_size` in the header.
        found: u64,
        /// [`SEGMENT_SIZE`].
        expected: u64,
    },
    /// A segment name that cannot be a file name.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Parameters that make no sense.
    #[error("invalid segment parameters: {reason}")]
    InvalidParams {
        /// What is wrong.
        reason: String,
    },
}

/// Who may open a segment file besides root (docs/gpu.md, "Threat model"). Opening is all
/// or nothing: a process that can attach (it must write the bucket) can also write the control
/// block, so the boundary between tenants is who can open the file at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Mode 0666: processes of any user on the node can attach, and so change the segment.
    #[default]
    AnyUser,
    /// Mode 0600, owned by `uid`: only that user's processes (and root, the agent) can open it.
    Owner {
        /// The tenant's uid (its model server's `runAsUser`).
        uid: u32,
    },
}

impl Access {
    /// The file mode.
    pub fn mode(self) -> u32 {
        match self {
            Access::AnyUser => 0o666,
            Access::Owner { .. } => 0o600,
        }
    }

    /// The access a file has: no permission for group or others means owner-only.
    pub fn of(meta: &std::fs::Metadata) -> Access {
        use std::os::unix::fs::MetadataExt;
        if meta.mode() & 0o077 == 0 {
            Access::Owner { uid: meta.uid() }
        } else {
            Access::AnyUser
        }
    }
}

/// A mapped segment file.
#[derive(Debug)]
pub struct Segment {
    ptr: NonNull<SegmentLayout>,
    path: PathBuf,
}

// SAFETY: the mapping is only accessed through `&SegmentLayout`, whose fields are all atomics or
// plain bytes that are never written after creation; sharing or moving it across threads is as
// safe as sharing a `&SegmentLayout`.
#[allow(unsafe_code)]
unsafe impl Send for Segment {}
// SAFETY: see `Send`: all shared access is through atomics.
#[allow(unsafe_code)]
unsafe impl Sync for Segment {}

/// `<dir>/<name>.seg`, after checking the name.
pub fn segment_path(dir: &Path, name: &str) -> Result<PathBuf, ShmError> {
    validate_segment_name(name)?;
    Ok(dir.join(format!("{name}.{SEGMENT_EXT}")))
}

/// A segment name is 1–128 characters of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn validate_segment_name(name: &str) -> Result<(), ShmError> {
    let bad = |reason| {
        Err(ShmError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return bad("must be 1 to 128 characters");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The segments in `dir`, as `(name, path)`, sorted by name. Temporary files are skipped.
pub fn list_segments(dir: &Path) -> Result<Vec<(String, PathBuf)>, ShmError> {
    let io = |source| ShmError::Io {
        path: dir.to_owned(),
        op: "read_dir",
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let Some(stem) = stem.to_str() else { continue };
        if ext == SEGMENT_EXT && validate_segment_name(stem).is_ok() {
            out.push((stem.to_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}

fn check_params(p: &Params) -> Result<(), ShmError> {
    if !(p.cost_scale.is_finite() && p.cost_scale > 0.0) {
        return Err(ShmError::InvalidParams {
            reason: format!("cost scale {} must be finite and positive", p.cost_scale),
        });
    }
    if p.mode != Mode::Off && p.refill_per_s == 0 {
        return Err(ShmError::InvalidParams {
            reason: "refill rate must be positive unless mode is off".into(),
        });
    }
    if !(p.target_share.is_finite() && p.target_share > 0.0 && p.target_share <= 1.0) {
        return Err(ShmError::InvalidParams {
            reason: format!("target share {} is outside (0, 1]", p.target_share),
        });
    }
    Ok(())
}

impl Segment {
    /// Creates (or replaces) the segment file at `path` for `gpu` with `params`, crash-safely:
    /// the image is written to a temporary file in the same directory, then renamed. A missing
    /// directory is created (the agent's `set-rate` checks its `--shm-dir` before it gets here). The bucket
    /// starts full. A valid file it replaces is marked retired. The file is made mode 0666 so
    /// that processes of any user on the node can attach.
    pub fn create(path: &Path, gpu: u32, params: &Params) -> Result<Segment, ShmError> {
        Segment::create_with(path, gpu, params, Access::AnyUser)
    }

    /// [`Segment::create`] with the file's [`Access`]: the temporary file gets its owner and
    /// mode before it is renamed into place, so the segment is never reachable with wider
    /// permissions (an fd opened in such a window would keep them).
    pub fn create_with(
        path: &Path,
        gpu: u32,
        params: &Params,
        access: Access,
    ) -> Result<Segment, ShmError> {
        check_params(params)?;
        let io = |op, source| ShmError::Io {
            path: path.to_owned(),
            op,
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("create_dir_all", e))?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io("file_name", std::io::ErrorKind::InvalidInput.into()))?;
        let tmp = dir.join(format!(
            ".{file_name}.tmp.{}.{}",
            std::process::id(),
            monotonic_ns()
        ));
        let image = initial_bytes(gpu, params, monotonic_ns());
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(access.mode() & 0o600)
                .open(&tmp)?;
            if let Access::Owner { uid } = access {
                std::os::unix::fs::fchown(&f, Some(uid), None)?;
            }
            f.set_permissions(std::fs::Permissions::from_mode(access.mode()))?;
            f.write_all(&image)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ignored = std::fs::remove_file(&tmp);
            return Err(io("write temporary file", e));
        }
        let old = Segment::open(path).ok();
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ignored = std::fs::remove_file(&tmp);
            return Err(io("rename", e));
        }
        if let Some(old) = old {
            old.layout().control.retired.store(1, Release);
        }
        Segment::open(path)
    }

    /// Opens and maps an existing segment, checking size, magic, major version and declared size.
    #[allow(unsafe_code)]
    pub fn open(path: &Path) -> Result<Segment, ShmError> {
        let io = |op, source| ShmError::Io {
            path: path.to_owned(),
            op,
            source,
        };
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io("open", e))?;
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        if len < SEGMENT_SIZE as u64 {
            return Err(ShmError::Truncated {
                path: path.to_owned(),
                len,
                expected: SEGMENT_SIZE as u64,
            });
        }
        // SAFETY: mapping SEGMENT_SIZE bytes of a file we just checked is at least that long;
        // fd is valid for the call; a null hint lets the kernel choose the address.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SEGMENT_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io("mmap", std::io::Error::last_os_error()));
        }
        let Some(ptr) = NonNull::new(raw.cast::<SegmentLayout>()) else {
            return Err(io("mmap", std::io::ErrorKind::AddrNotAvailable.into()));
        };
        // The mapping is page-aligned (so 64-aligned for SegmentLayout) and outlives `seg`.
        let seg = Segment {
            ptr,
            path: path.to_owned(),
        };
        let h = &seg.layout().header;
        let magic = h.magic.load(Relaxed);
        if magic != MAGIC {
            return Err(ShmError::BadMagic {
                path: path.to_owned(),
                found: magic,
                expected: MAGIC,
            });
        }
        let (major, minor) = (h.version_major.load(Relaxed), h.version_minor.load(Relaxed));
        if major != VERSION_MAJOR {
            return Err(ShmError::VersionMismatch {
                path: path.to_owned(),
                found_major: major,
                found_minor: minor,
                expected_major: VERSION_MAJOR,
            });
        }
        let total = h.total_size.load(Relaxed);
        if total != SEGMENT_SIZE as u64 {
            return Err(ShmError::SizeMismatch {
                path: path.to_owned(),
                found: total,
                expected: SEGMENT_SIZE as u64,
            });
        }
        Ok(seg)
    }

    /// The mapped layout.
    #[allow(unsafe_code)]
    pub fn layout(&self) -> &SegmentLayout {
        // SAFETY: `ptr` is a live MAP_SHARED mapping of SEGMENT_SIZE (= size_of SegmentLayout)
        // bytes, page-aligned, valid until `drop`; every field of SegmentLayout is valid for
        // any bit pattern (atomics and bytes), so any file content is a valid value.
        unsafe { self.ptr.as_ref() }
    }

    /// Keeps the mapping for the rest of the process (the interceptor's use).
    pub fn leak(self) -> &'static SegmentLayout {
        let seg: &'static Segment = Box::leak(Box::new(self));
        seg.layout()
    }

    /// The file this segment was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current parameters.
    pub fn params(&self) -> Params {
        self.layout().params()
    }

    /// Writes new parameters (after validating them); they take effect on the next launch.
    pub fn set_params(&self, params: &Params) -> Result<(), ShmError> {
        check_params(params)?;
        self.layout().set_params(params);
        Ok(())
    }

    /// GPU index of the segment.
    pub fn gpu(&self) -> u32 {
        self.layout().control.gpu_index.load(Relaxed)
    }

    /// Changes the GPU index.
    pub fn set_gpu(&self, gpu: u32) {
        let c = &self.layout().control;
        c.gpu_index.store(gpu, Relaxed);
        c.generation.fetch_add(1, Release);
    }

    /// Generation counter (bumped by every parameter change).
    pub fn generation(&self) -> u64 {
        self.layout().control.generation.load(Relaxed)
    }

    /// Whether the file was replaced by a newer one.
    pub fn is_retired(&self) -> bool {
        self.layout().control.retired.load(Relaxed) != 0
    }

    /// The control block as stored, undecoded.
    pub fn control_snapshot(&self) -> crate::layout::ControlSnapshot {
        self.layout().control_snapshot()
    }

    /// Counters snapshot.
    pub fn counters(&self) -> Counters {
        self.layout().counters()
    }

    /// Tokens available now (negative when launches are waiting).
    pub fn tokens_available(&self) -> i64 {
        Bucket::new(self.layout()).available()
    }

    /// Pids of attached processes.
    pub fn attached_pids(&self) -> Vec<u32> {
        self.layout().attached_pids()
    }
}

impl Drop for Segment {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: `ptr` came from a successful mmap of SEGMENT_SIZE bytes and no reference into
        // it outlives `self` (`layout` borrows `self`; `leak` never drops).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), SEGMENT_SIZE) };
    }
}

#[cfg(test)]
mod tests;
