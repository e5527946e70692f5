//! The GPU emulator as a program finds a driver: a folder holding `libcuda.so.1` and
//! `libnvidia-ml.so.1` links to the emulator cdylibs, to put on `LD_LIBRARY_PATH` (or to hand
//! to `--nvml-lib`).

use std::path::{Path, PathBuf};

use crate::binary;

/// Creates `dir` (and its parents) with the two driver links and returns it.
pub fn driver_dir(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::symlink(binary("libsair_emu_cuda.so"), dir.join("libcuda.so.1"))?;
    std::os::unix::fs::symlink(binary("libsair_emu_nvml.so"), dir.join("libnvidia-ml.so.1"))?;
    Ok(dir.to_path_buf())
}
