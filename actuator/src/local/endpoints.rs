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
//!
//! Beside it, the stage's replica records (`<pipeline>.<stage>.replicas.json`, written the
//! same way): each replica's processes (pid and start time) and addresses, from the moment a
//! process is spawned until it has exited, so that a restarted supervisor can adopt the
//! replicas that outlived it and stop the half-started ones (docs/actuator.md, "Restarts of
//! the supervisor").

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::process::ProcId;
use crate::metrics::ACTUATOR_SERVING_REPLICAS;
use crate::{ActuatorError, StageRef};

/// The serving replicas of one stage and their list file. Every change rewrites the file
/// before the call returns, under the lock, so the file always matches the set.
#[derive(Debug)]
pub(crate) struct ServingSet {
    stage: StageRef,
    path: PathBuf,
    records_path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    serving: BTreeMap<u32, SocketAddr>,
    generation: u64,
    records: BTreeMap<u32, ReplicaRecord>,
}

/// What a restarted supervisor needs to find a replica again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReplicaRecord {
    pub replica: u32,
    pub server: Option<ProcId>,
    pub server_port: u16,
    pub sidecar: Option<ProcId>,
    /// The sidecar's request and admin addresses, once it is serving.
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordsFile {
    version: u32,
    replicas: Vec<ReplicaRecord>,
}

const RECORDS_VERSION: u32 = 1;

/// Reads a stage's replica records; a missing file is none, an unreadable or foreign one is
/// logged and treated as none (its processes, if any, are then the operator's).
pub(crate) fn load_records(stage: &StageRef, path: &Path) -> Vec<ReplicaRecord> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(%stage, path = %path.display(), error = %e, "cannot read replica records; adopting nothing");
            return Vec::new();
        }
    };
    match serde_json::from_str::<RecordsFile>(&text) {
        Ok(f) if f.version == RECORDS_VERSION => f.replicas,
        Ok(f) => {
            tracing::warn!(%stage, version = f.version, "replica records of another version; adopting nothing");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(%stage, path = %path.display(), error = %e, "replica records unreadable; adopting nothing");
            Vec::new()
        }
    }
}

impl ServingSet {
    /// Creates the set with the replicas adopted from an earlier supervisor (`serving`, their
    /// `records`) and writes both files at once, so readers can be pointed at the list from
    /// the start and a restart never empties a list whose replicas still serve.
    pub(crate) fn create(
        stage: StageRef,
        path: PathBuf,
        records_path: PathBuf,
        serving: BTreeMap<u32, SocketAddr>,
        records: Vec<ReplicaRecord>,
    ) -> Result<Self, ActuatorError> {
        let set = Self {
            stage,
            path,
            records_path,
            state: Mutex::new(State {
                serving,
                generation: 0,
                records: records.into_iter().map(|r| (r.replica, r)).collect(),
            }),
        };
        {
            let mut st = set.lock();
            set.write(&mut st)?;
            set.write_records(&st)?;
        }
        Ok(set)
    }

    /// Records (or updates) a replica's processes and addresses.
    pub(crate) fn record(&self, rec: ReplicaRecord) -> Result<(), ActuatorError> {
        let mut st = self.lock();
        st.records.insert(rec.replica, rec);
        self.write_records(&st)
    }

    /// Forgets a replica whose processes have all exited.
    pub(crate) fn forget(&self, replica: u32) -> Result<(), ActuatorError> {
        let mut st = self.lock();
        if st.records.remove(&replica).is_none() {
            return Ok(());
        }
        self.write_records(&st)
    }

    fn write_records(&self, st: &State) -> Result<(), ActuatorError> {
        let file = RecordsFile {
            version: RECORDS_VERSION,
            replicas: st.records.values().cloned().collect(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| ActuatorError::File {
            stage: self.stage.clone(),
            path: self.records_path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(&self.records_path, &text).map_err(|source| ActuatorError::File {
            stage: self.stage.clone(),
            path: self.records_path.clone(),
            source,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn records_path(&self) -> &Path {
        &self.records_path
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
