//! `decisions.jsonl`, the live coordinator's decision journal, bounded on disk: once the file
//! would pass its size limit it is renamed to `decisions.jsonl.1` (replacing the older one)
//! and a new file is started, as Docker's `json-file` logs rotate with `max-size` and
//! `max-file`. A coordinator that runs for months therefore keeps at most twice the limit,
//! the newest decisions always among them. A limit of 0 writes nothing.
//!
//! It owns the file and its one rotated copy; it must not hold decisions in memory (the
//! status API's ring does that).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest `--decisions-log-max-mib`: 10 GiB, beyond any disk a coordinator Pod is given.
pub const MAX_MIB: u64 = 10 * 1024;

/// The journal: where it is written and its size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    path: PathBuf,
    max_bytes: u64,
}

impl Journal {
    /// A journal at `path` rotated at `max_mib` MiB; `None` for 0 (off). `max_mib` is
    /// range-checked by the caller against [`MAX_MIB`].
    pub fn new(path: PathBuf, max_mib: u64) -> Option<Journal> {
        (max_mib > 0).then(|| Journal {
            path,
            max_bytes: max_mib.min(MAX_MIB) * 1024 * 1024,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rotated copy, `<path>.1`.
    pub fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }

    /// Appends `line` and a newline, rotating first when the file would pass the limit (a
    /// line longer than the limit is still written whole, alone in its file).
    pub fn append(&self, line: &str) -> std::io::Result<()> {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if len > 0 && len + line.len() as u64 + 1 > self.max_bytes {
            std::fs::rename(&self.path, self.rotated())?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        // One write for the line and its newline, so a reader never sees half a record
        // followed by another's start.
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        f.write_all(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        sair_tests::scratch(&format!("journal-{name}"))
    }

    #[test]
    fn zero_turns_it_off() {
        assert!(Journal::new("x".into(), 0).is_none());
    }

    #[test]
    fn it_rotates_at_the_limit_and_keeps_one_older_file() {
        let d = dir("rotate");
        let j = Journal::new(d.join("decisions.jsonl"), 1).unwrap();
        let line = "x".repeat(100 * 1024 - 1); // 100 KiB with its newline
        for _ in 0..25 {
            j.append(&line).unwrap();
        }
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        // 10 lines fill 1 MiB minus 24 KiB; 25 lines: 10 rotated twice, 5 now.
        assert_eq!(size(j.path()), 5 * 100 * 1024);
        assert_eq!(size(&j.rotated()), 10 * 100 * 1024);
        assert!(!d.join("decisions.jsonl.2").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_line_over_the_limit_is_written_whole() {
        let d = dir("long");
        let j = Journal::new(d.join("decisions.jsonl"), 1).unwrap();
        j.append("first").unwrap();
        let long = "y".repeat(2 * 1024 * 1024);
        j.append(&long).unwrap();
        let text = std::fs::read_to_string(j.path()).unwrap();
        assert_eq!(text.len(), long.len() + 1);
        assert_eq!(std::fs::read_to_string(j.rotated()).unwrap(), "first\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unwritable_place_is_an_error_not_a_panic() {
        let j = Journal::new("/proc/sair-no-such-dir/decisions.jsonl".into(), 1).unwrap();
        assert!(j.append("x").is_err());
    }
}
