//! The durable experience store: every closed episode, append-only on disk under the state
//! directory, so a restarted coordinator keeps learning where it left off.
//!
//! File `experience.log`: an 8-byte magic `SAIRXP01`, then records of
//! `[u32 LE payload length][u32 LE CRC-32 of payload][payload: one JSON-encoded Episode]`.
//! JSON keeps records readable with standard tools and tolerant of added fields; the length
//! prefix and CRC make torn or corrupt records detectable. The policy appends each interval's
//! episode and fsyncs (`sync`). On open the file is scanned; the first record that is
//! truncated, oversized, fails its CRC or does not decode ends the valid prefix. The prefix is
//! kept, the rest is copied to `experience.log.corrupt` for inspection, reported, and cut off.
//!
//! Bounded: when more than `capacity` episodes are held, compaction keeps the newest
//! `capacity/2` plus the `capacity/4` most surprising of the older ones (surprising episodes
//! are what retrieval values most), rewrites them to a temporary file, fsyncs it and renames
//! it over the log (atomic on POSIX), then fsyncs the directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::Action;

use super::candidates::MoveKind;
use super::reward::Point;

const MAGIC: &[u8; 8] = b"SAIRXP01";
/// Largest record accepted on read; a longer length prefix is corruption.
const MAX_RECORD: u32 = 1 << 20;
const FILE: &str = "experience.log";

/// Who chose an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Llm,
    Model,
    Fallback,
    Explore,
    Guard,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Model => "model",
            Source::Fallback => "fallback",
            Source::Explore => "explore",
            Source::Guard => "guard",
        }
    }
}

impl From<Source> for crate::policy::DecisionSource {
    fn from(s: Source) -> Self {
        use crate::policy::DecisionSource as D;
        match s {
            Source::Llm => D::Llm,
            Source::Model => D::Model,
            Source::Fallback => D::Fallback,
            Source::Explore => D::Explore,
            Source::Guard => D::Guard,
        }
    }
}

/// A candidate as remembered in an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateBrief {
    pub label: String,
    pub p99_s: f64,
    pub cost_per_hour: f64,
}

/// One (state, candidates, action, outcome, reward, surprisal) episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub t_s: f64,
    pub features: Vec<f64>,
    pub kind: MoveKind,
    pub stage: Option<usize>,
    pub label: String,
    pub source: Source,
    pub bottleneck: Option<usize>,
    pub candidates: Vec<CandidateBrief>,
    pub action: Action,
    /// Observed before the action.
    pub before: Point,
    pub predicted: Point,
    pub predicted_reward: f64,
    /// Observed over the interval after the action.
    pub realised: Point,
    pub reward: f64,
    pub surprisal: f64,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("experience store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("experience store: cannot encode episode: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What recovery found on open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    pub kept: usize,
    pub dropped_bytes: u64,
    /// Why the valid prefix ended, when it did not end at the end of the file.
    pub reason: Option<String>,
}

/// The open store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    file: File,
    episodes: Vec<Episode>,
    capacity: usize,
    dirty: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes one record (length, CRC, payload).
pub fn encode_record(e: &Episode) -> Result<Vec<u8>, StoreError> {
    let payload = serde_json::to_vec(e)?;
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Scans `bytes` (after the magic) and returns the decoded valid prefix, its length in bytes,
/// and why it ended early, if it did.
pub fn scan(bytes: &[u8]) -> (Vec<Episode>, usize, Option<String>) {
    let mut eps = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            return (eps, at, Some(format!("torn record header at byte {at}")));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD {
            return (
                eps,
                at,
                Some(format!("record length {len} at byte {at} is too large")),
            );
        }
        let end = 8 + len as usize;
        if rest.len() < end {
            return (eps, at, Some(format!("torn record at byte {at}")));
        }
        let payload = &rest[8..end];
        if crc32fast::hash(payload) != crc {
            return (eps, at, Some(format!("checksum mismatch at byte {at}")));
        }
        match serde_json::from_slice::<Episode>(payload) {
            Ok(e) => eps.push(e),
            Err(err) => {
                return (
                    eps,
                    at,
                    Some(format!("undecodable record at byte {at}: {err}")),
                );
            }
        }
        at += end;
    }
    (eps, at, None)
}

impl Store {
    /// Opens (or creates) the store in `dir`, recovering the valid prefix.
    pub fn open(dir: &Path, capacity: usize) -> Result<(Self, Recovery), StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io(&path))?;
        }
        let mut rec = Recovery::default();
        let (episodes, keep_len) = if bytes.is_empty() {
            (Vec::new(), 0)
        } else if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            rec.reason = Some("missing or wrong magic".into());
            (Vec::new(), 0)
        } else {
            let (eps, valid, reason) = scan(&bytes[MAGIC.len()..]);
            rec.reason = reason;
            (eps, MAGIC.len() + valid)
        };
        rec.kept = episodes.len();
        if keep_len < bytes.len() {
            rec.dropped_bytes = (bytes.len() - keep_len) as u64;
            let side = dir.join(format!("{FILE}.corrupt"));
            std::fs::write(&side, &bytes[keep_len..]).map_err(io(&side))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        if keep_len == 0 {
            file.set_len(0).map_err(io(&path))?;
            file.write_all(MAGIC).map_err(io(&path))?;
        } else if keep_len < bytes.len() {
            file.set_len(keep_len as u64).map_err(io(&path))?;
        }
        file.sync_all().map_err(io(&path))?;
        drop(file);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                file,
                episodes,
                capacity: capacity.max(8),
                dirty: false,
            },
            rec,
        ))
    }

    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Appends an episode (written now, durable after [`Store::sync`]); compacts when over
    /// capacity.
    pub fn append(&mut self, e: Episode) -> Result<(), StoreError> {
        let rec = encode_record(&e)?;
        let path = self.path();
        self.file.write_all(&rec).map_err(io(&path))?;
        self.dirty = true;
        self.episodes.push(e);
        if self.episodes.len() > self.capacity {
            self.compact()?;
        }
        Ok(())
    }

    /// Makes every appended episode durable (fdatasync).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            let path = self.path();
            self.file.sync_data().map_err(io(&path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Applies the eviction rule and rewrites the log atomically.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let n = self.episodes.len();
        let keep_new = self.capacity / 2;
        let keep_old = self.capacity / 4;
        if n > keep_new {
            let split = n - keep_new;
            let mut old: Vec<(usize, f64)> = self.episodes[..split]
                .iter()
                .enumerate()
                .map(|(i, e)| (i, e.surprisal))
                .collect();
            old.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut keep: Vec<usize> = old.iter().take(keep_old).map(|(i, _)| *i).collect();
            keep.sort_unstable();
            let mut kept: Vec<Episode> = keep.iter().map(|&i| self.episodes[i].clone()).collect();
            kept.extend(self.episodes.drain(split..));
            self.episodes = kept;
        }
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            let mut buf = MAGIC.to_vec();
            for e in &self.episodes {
                buf.extend(encode_record(e)?);
            }
            f.write_all(&buf).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
