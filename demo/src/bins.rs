//! The binaries and libraries the demo starts, found beside its own executable: `cargo build`
//! puts every workspace binary and cdylib in one `target/<profile>` folder, and a packaged
//! install keeps them together the same way.

use std::path::{Path, PathBuf};

use crate::DemoError;

/// Every file the demo needs beside `sair`.
pub const NEEDED: [&str; 7] = [
    "sair-coordinator",
    "sair-node-agent",
    "sair-sidecar",
    "sair-stage",
    "sair-loadgen",
    "libsair_intercept.so",
    "libsair_emu_cuda.so",
];

/// The GPU emulator's NVML half (the node agent's `--nvml-lib`).
pub const EMU_NVML: &str = "libsair_emu_nvml.so";

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// The folder of the running executable, checked for every needed file.
    pub fn beside_current_exe() -> Result<Self, DemoError> {
        let exe = std::env::current_exe().map_err(|e| DemoError::MissingBinary {
            name: "the sair executable itself".into(),
            beside: PathBuf::from("."),
            path: PathBuf::from(format!("({e})")),
        })?;
        // A symlinked `sair` (e.g. in ~/.local/bin) still finds its build folder.
        let exe = exe.canonicalize().unwrap_or(exe);
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::in_dir(dir)
    }

    /// `dir`, checked for every needed file.
    pub fn in_dir(dir: PathBuf) -> Result<Self, DemoError> {
        let bins = Bins { dir };
        for name in NEEDED.iter().chain(std::iter::once(&EMU_NVML)) {
            let path = bins.path(name);
            if !path.is_file() {
                return Err(DemoError::MissingBinary {
                    name: (*name).to_string(),
                    beside: bins.dir.clone(),
                    path,
                });
            }
        }
        Ok(bins)
    }

    /// The path of `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
