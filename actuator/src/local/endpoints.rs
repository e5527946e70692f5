//! The `file:` endpoint list of one stage: the sidecar addresses of its serving replicas, which
//! the upstream stage's sidecars (`--next file:PATH`) and `sair-loadgen --target file:PATH`
//! read.
//!
//! Written whole to a temporary file in the same directory and renamed over the list, so a
//! reader sees the old list or the new one, never half of one. Sidecars re-read the file when
//! its mtime or size changes, and Linux file times advance at kernel-tick granularity (a few
//! ms): two lists of the same length written within one tick would look unchanged. The header
//! line therefore alternates between two lengths (generation parity), so consecutive lists
//! never have the same size.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::metrics::ACTUATOR_SERVING_REPLICAS;
use crate::{ActuatorError, StageRef};

/// The serving replicas of one stage and their list file. Every change rewrites the file
/// before the call returns, under the lock, so the file always matches the set.
#[derive(Debug)]
pub(crate) struct ServingSet {
    stage: StageRef,
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    serving: BTreeMap<u32, SocketAddr>,
    generation: u64,
}

impl ServingSet {
    /// Creates the set and writes the (empty) file, so readers can be pointed at it at once.
    pub(crate) fn create(stage: StageRef, path: PathBuf) -> Result<Self, ActuatorError> {
        let set = Self {
            stage,
            path,
            state: Mutex::new(State::default()),
        };
        {
            let mut st = set.lock();
            set.write(&mut st)?;
        }
        Ok(set)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the map half-updated (each change is one
        // insert or remove), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn count(&self) -> u32 {
        u32::try_from(self.lock().serving.len()).unwrap_or(u32::MAX)
    }

    /// Lists replica `replica` at `addr`.
    pub(crate) fn insert(&self, replica: u32, addr: SocketAddr) -> Result<(), ActuatorError> {
        let mut st = self.lock();
        st.serving.insert(replica, addr);
        self.write(&mut st)
    }

    /// Takes replica `replica` out of the list; a no-op (no write) when it is not listed.
    pub(crate) fn remove(&self, replica: u32) -> Result<(), ActuatorError> {
        let mut st = self.lock();
        if st.serving.remove(&replica).is_none() {
            return Ok(());
        }
        self.write(&mut st)
    }

    /// Empties the list (shutdown).
    pub(crate) fn clear(&self) -> Result<(), ActuatorError> {
        let mut st = self.lock();
        st.serving.clear();
        self.write(&mut st)
    }

    fn write(&self, st: &mut State) -> Result<(), ActuatorError> {
        st.generation += 1;
        metrics::gauge!(ACTUATOR_SERVING_REPLICAS,
            "pipeline" => self.stage.pipeline.clone(), "stage" => self.stage.stage.clone())
        .set(st.serving.len() as f64);
        let text = render(st.generation, st.serving.values());
        write_atomically(&self.path, text.as_bytes()).map_err(|source| ActuatorError::File {
            stage: self.stage.clone(),
            path: self.path.clone(),
            source,
        })?;
        tracing::debug!(stage = %self.stage, serving = st.serving.len(), path = %self.path.display(),
            "endpoints file written");
        Ok(())
    }
}

/// The file's text: a header whose length alternates with the generation, then one
/// `host:port` per line.
pub(crate) fn render<'a>(generation: u64, addrs: impl Iterator<Item = &'a SocketAddr>) -> String {
    let pad = if generation.is_multiple_of(2) {
        ""
    } else {
        " "
    };
    let mut text = format!("# sair-actuator endpoints, generation {generation:020}{pad}\n");
    for a in addrs {
        text.push_str(&a.to_string());
        text.push('\n');
    }
    text
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
