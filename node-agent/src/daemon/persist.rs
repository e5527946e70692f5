//! The state file, written off the control thread.
//!
//! The control loop hands each period's [`AgentState`] to a writer thread and goes on. A write
//! ([`segments::write_state`]) syncs a temp file and renames it over the old one, and on a busy
//! disk that can take seconds: a loop that waited for it held every rate still that long (seen
//! at 0.2–8.6 s on a loaded machine with the shm dir on ext4, where the rename flushed the new
//! file while holding the directory's lock, stalling the loop's own listing of it too). Only
//! the newest state waits to be written; an older one not yet written is replaced, since each
//! state supersedes the last. A failed write is reported by the next period's `submit`.

use crate::segments::{self, AgentState};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

#[derive(Debug, Default)]
struct Slot {
    /// The newest state not yet taken by the writer.
    pending: Option<AgentState>,
    /// A write is in progress.
    writing: bool,
    /// The outcome of the last finished write (`Err`: why it failed).
    last: Option<Result<(), String>>,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // The slot holds plain data; a panic elsewhere leaves it usable.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Slot>) -> MutexGuard<'a, Slot> {
        self.changed.wait(g).unwrap_or_else(|p| p.into_inner())
    }
}

/// Writes the state file of `dir` on its own thread. Dropping it writes what is pending, then
/// stops the thread.
#[derive(Debug)]
pub struct StateWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StateWriter {
    /// Starts the writer thread. Should the thread fail to start, every state is written on the
    /// caller's thread instead (the old behaviour), so nothing is lost.
    pub fn spawn(dir: PathBuf) -> Self {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sair-agent-state".into())
            .spawn(move || write_loop(&dir, &theirs));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "no state writer thread; writing on the control thread");
                None
            }
        };
        StateWriter { shared, thread }
    }

    /// Queues `state` for writing (replacing any older one still waiting) and answers the
    /// outcome of the last write that finished, if any finished since the last call.
    pub fn submit(&self, dir: &std::path::Path, state: AgentState) -> Option<Result<(), String>> {
        if self.thread.is_none() {
            return Some(segments::write_state(dir, &state).map_err(|e| e.to_string()));
        }
        let mut g = self.shared.lock();
        g.pending = Some(state);
        self.shared.changed.notify_all();
        g.last.take()
    }

    /// Waits until every submitted state is written; answers the last write's outcome.
    pub fn flush(&self) -> Option<Result<(), String>> {
        let mut g = self.shared.lock();
        while self.thread.is_some() && (g.pending.is_some() || g.writing) {
            g = self.shared.wait(g);
        }
        g.last.take()
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::warn!("the state writer thread panicked");
        }
    }
}

fn write_loop(dir: &std::path::Path, shared: &Shared) {
    let mut g = shared.lock();
    loop {
        if let Some(state) = g.pending.take() {
            g.writing = true;
            drop(g);
            let outcome = segments::write_state(dir, &state).map_err(|e| e.to_string());
            g = shared.lock();
            g.writing = false;
            g.last = Some(outcome);
            shared.changed.notify_all();
        } else if g.stop {
            return;
        } else {
            g = shared.wait(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_state_is_written_and_a_failed_write_is_reported() {
        let d = std::env::temp_dir().join(format!("sair-persist-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let w = StateWriter::spawn(d.clone());
        for ms in 1..=50 {
            let state = AgentState {
                updated_unix_ms: ms,
                ..AgentState::default()
            };
            assert!(!matches!(w.submit(&d, state), Some(Err(_))));
        }
        assert_eq!(w.flush(), Some(Ok(())));
        assert_eq!(segments::read_state(&d).unwrap().updated_unix_ms, 50);
        // The directory goes: the next write fails, and the one after reports it.
        std::fs::remove_dir_all(&d).unwrap();
        let _ = w.submit(&d, AgentState::default());
        assert!(matches!(w.flush(), Some(Err(e)) if e.contains("write")));
        drop(w);
        assert!(!d.exists(), "nothing written after the directory went");
    }
}
