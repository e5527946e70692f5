//! `--target file:PATH`: the run's requests spread round-robin over the `host:port` entries of
//! a file that may change during the run — the endpoints file the SAIR local actuator keeps
//! for a pipeline's entry stage (the same format the sidecar's `--next file:` reads: one
//! `host:port` per line, `#` comments and blank lines ignored).
//!
//! The file is re-read every [`POLL`] and the list replaced when its text changed (comparing
//! text, not mtime and size: a rewrite within one file-time tick is still seen). An unreadable
//! file, or one whose every line is bad, keeps the last list; a file that lists nothing
//! empties it, and requests then fail at once as `connect` errors (nothing waits for an entry
//! to come back, so the schedule is kept). Before the run, the generator waits up to
//! [`WAIT_FOR_ENTRIES`] for the file to list at least one entry, then gives up with a clear
//! error (exit 69): a pipeline whose entry replicas are still loading gets that long to come
//! up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// How often the file is re-read during the run.
pub const POLL: Duration = Duration::from_millis(250);
/// Longest wait before the run for the file to list an entry.
pub const WAIT_FOR_ENTRIES: Duration = Duration::from_secs(10);

/// The current entries of an endpoints file.
#[derive(Debug)]
pub struct EndpointList {
    path: PathBuf,
    state: Mutex<State>,
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    addrs: Arc<Vec<SocketAddr>>,
    text: Option<String>,
}

/// Parses the file's text: the addresses, and the lines that are not `host:port` (with their
/// line numbers). Host names are not resolved: the lists SAIR writes hold IP addresses.
pub fn parse(text: &str) -> (Vec<SocketAddr>, Vec<(usize, String)>) {
    let mut addrs = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match entry.parse::<SocketAddr>() {
            Ok(a) => addrs.push(a),
            Err(_) => bad.push((i + 1, entry.to_owned())),
        }
    }
    (addrs, bad)
}

impl EndpointList {
    /// A list for `path`, empty until [`refresh`](Self::refresh) reads it.
    pub fn new(path: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            path: path.into(),
            state: Mutex::new(State::default()),
            next: AtomicUsize::new(0),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Replacing the list is one assignment: a poisoned lock still holds a whole list.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current entries.
    pub fn addrs(&self) -> Arc<Vec<SocketAddr>> {
        self.lock().addrs.clone()
    }

    /// The next entry, round-robin; `None` while the list is empty.
    pub fn pick(&self) -> Option<SocketAddr> {
        let addrs = self.addrs();
        if addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        addrs.get(i % addrs.len()).copied()
    }

    /// Re-reads the file; replaces the list when the text changed. Returns the read error, if
    /// any (the list is then kept).
    pub async fn refresh(&self) -> std::io::Result<()> {
        let text = tokio::fs::read_to_string(&self.path).await?;
        let mut st = self.lock();
        if st.text.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let (addrs, bad) = parse(&text);
        for (line, entry) in &bad {
            tracing::warn!(path = %self.path.display(), line, entry, "ignoring a line that is not host:port");
        }
        if addrs.is_empty() && !bad.is_empty() {
            // A file of only bad lines is more likely half-edited by hand than meant to be
            // empty: keep the last list.
            st.text = Some(text);
            return Ok(());
        }
        tracing::info!(path = %self.path.display(), entries = addrs.len(), "target list changed");
        st.addrs = Arc::new(addrs);
        st.text = Some(text);
        Ok(())
    }

    /// Reads the file until it lists an entry, up to `wait`. The error says what was last seen.
    pub async fn wait_for_entries(&self, wait: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let last = match self.refresh().await {
                Ok(()) if !self.addrs().is_empty() => return Ok(()),
                Ok(()) => "it lists no host:port entry".to_owned(),
                Err(e) => format!("cannot read it: {e}"),
            };
            if tokio::time::Instant::now() + POLL > deadline {
                return Err(format!("{last} (waited {wait:?})"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Re-reads the file every [`POLL`] until the task is aborted.
    pub fn watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut logged = false;
            loop {
                tokio::time::sleep(POLL).await;
                match self.refresh().await {
                    Ok(()) => logged = false,
                    Err(e) if !logged => {
                        logged = true;
                        tracing::warn!(path = %self.path.display(), error = %e,
                            "target list unreadable; keeping the last entries");
                    }
                    Err(_) => {}
                }
            }
        })
    }
}
