//! Power-of-two-choices over the next stage's replicas, on least requests in flight.
//!
//! The endpoint set is replaced as a whole by discovery (static list, periodic DNS, watched
//! file); an endpoint that survives a refresh keeps its in-flight counter, so a refresh never
//! unbalances. Picking is lock-free apart from a read lock on the set.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::config::{NextTarget, validate_host_port};

/// One next-stage replica.
#[derive(Debug)]
pub struct Endpoint {
    /// `host:port`, used as the URI authority.
    pub authority: http::uri::Authority,
    inflight: AtomicU64,
}

impl Endpoint {
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }
}

/// A request in flight to an endpoint; dropping it decrements the endpoint's counter.
#[derive(Debug)]
pub struct Pick(Arc<Endpoint>);

impl Pick {
    pub fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The current endpoint set with P2C selection.
#[derive(Debug, Default)]
pub struct Balancer {
    set: RwLock<Arc<Vec<Arc<Endpoint>>>>,
}

impl Balancer {
    pub fn new() -> Arc<Self> {
        Arc::new(Balancer::default())
    }

    /// Replaces the endpoint set, keeping the counters of endpoints that stay.
    pub fn update(&self, authorities: &[String]) {
        let current = self.snapshot();
        let old: HashMap<&str, &Arc<Endpoint>> =
            current.iter().map(|e| (e.authority.as_str(), e)).collect();
        let mut next = Vec::with_capacity(authorities.len());
        for a in authorities {
            if let Some(e) = old.get(a.as_str()) {
                next.push(Arc::clone(e));
            } else if let Ok(authority) = a.parse() {
                next.push(Arc::new(Endpoint {
                    authority,
                    inflight: AtomicU64::new(0),
                }));
            } else {
                tracing::warn!(endpoint = %a, "ignoring next-stage endpoint that is not host:port");
            }
        }
        if let Ok(mut set) = self.set.write() {
            *set = Arc::new(next);
        }
    }

    /// The endpoints now.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.set.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// Power of two choices: two distinct random endpoints, the one with fewer requests in
    /// flight wins (ties: the first drawn, which is itself random).
    pub fn pick(&self) -> Option<Pick> {
        let set = self.snapshot();
        let chosen = match set.len() {
            0 => return None,
            1 => &set[0],
            n => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                if set[b].inflight() < set[a].inflight() {
                    &set[b]
                } else {
                    &set[a]
                }
            }
        };
        chosen.inflight.fetch_add(1, Ordering::AcqRel);
        Some(Pick(Arc::clone(chosen)))
    }
}

/// Keeps `balancer` in step with `target` until `stop` fires.
pub async fn discover(
    target: NextTarget,
    balancer: Arc<Balancer>,
    every: Duration,
    stop: CancellationToken,
) {
    match target {
        NextTarget::Static(list) => balancer.update(&list),
        NextTarget::Dns { name, port } => loop {
            match tokio::net::lookup_host((name.as_str(), port)).await {
                Ok(addrs) => {
                    let mut list: Vec<String> = addrs.map(|a| a.to_string()).collect();
                    list.sort();
                    list.dedup();
                    balancer.update(&list);
                }
                Err(e) => {
                    tracing::warn!(%name, error = %e, "next-stage DNS lookup failed; keeping the last set")
                }
            }
            if sleep_or_stop(every, &stop).await {
                return;
            }
        },
        NextTarget::File(path) => {
            let mut seen: Option<(SystemTime, u64)> = None;
            loop {
                reload_file(&path, &balancer, &mut seen).await;
                if sleep_or_stop(every, &stop).await {
                    return;
                }
            }
        }
    }
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}

/// Parses an endpoints file: one `host:port` per line, `#` comments and blank lines ignored.
pub fn parse_endpoints_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter(|l| match validate_host_port(l) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(%why, "ignoring line in next-stage endpoints file");
                false
            }
        })
        .map(str::to_owned)
        .collect()
}

async fn reload_file(path: &PathBuf, balancer: &Balancer, seen: &mut Option<(SystemTime, u64)>) {
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "next-stage endpoints file unreadable; keeping the last set");
            return;
        }
    };
    let stamp = (
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    );
    if seen.as_ref() == Some(&stamp) {
        return;
    }
    match tokio::fs::read_to_string(path).await {
        Ok(text) => {
            balancer.update(&parse_endpoints_file(&text));
            *seen = Some(stamp);
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not read next-stage endpoints file")
        }
    }
}

#[cfg(test)]
mod tests;
