//! The admission queue: FIFO waiting for one of `max_concurrency` slots. "Admission" in the
//! sidecar means this request queue and nothing else.
//!
//! tokio's `Semaphore` is fair (FIFO), so waiting on it *is* the queue. The queue length is
//! bounded by a counter checked before waiting. Both the waiting count and the slot are held
//! in guards whose `Drop` undoes them, so a request dropped at any point (client gone, timeout,
//! panic-free early return) can never leak a slot or a queue place.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::StageMetrics;
use crate::timing::Dispatch;
use crate::window::{WindowEvent, WindowFeed};

/// Why admission refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("admission queue is full ({capacity} waiting)")]
    QueueFull { capacity: u64 },
    #[error("waited {waited:?} in the admission queue, longer than the queue timeout")]
    QueueTimeout { waited: Duration },
}

/// Shared admission state of one sidecar.
#[derive(Debug)]
pub struct Admission {
    slots: Option<Arc<Semaphore>>,
    capacity: u64,
    timeout: Duration,
    waiting: AtomicU64,
    inflight: AtomicU64,
    metrics: StageMetrics,
    window: Arc<WindowFeed>,
}

/// A held concurrency slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    admission: Arc<Admission>,
    dispatch: Dispatch,
}

impl Slot {
    /// When the slot was granted and how long the request waited for it.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch
    }
}

struct Waiting<'a>(&'a Admission);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.queue_depth.decrement(1.0);
    }
}

impl Admission {
    /// `max_concurrency` 0 means unlimited (no queue ever forms).
    pub fn new(
        max_concurrency: u32,
        capacity: u32,
        timeout: Duration,
        metrics: StageMetrics,
        window: Arc<WindowFeed>,
    ) -> Arc<Self> {
        Arc::new(Admission {
            slots: (max_concurrency > 0)
                .then(|| Arc::new(Semaphore::new(max_concurrency as usize))),
            capacity: u64::from(capacity),
            timeout,
            waiting: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            metrics,
            window,
        })
    }

    /// Requests waiting for a slot now.
    pub fn queue_depth(&self) -> u64 {
        self.waiting.load(Ordering::Acquire)
    }

    /// Requests holding a slot now.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }

    /// Waits (FIFO) for a slot. `head` is when the request head arrived; the queue timeout
    /// counts from there. The granted slot carries the request's [`Dispatch`] (its queue
    /// wait), already recorded in the queue-wait histogram and the report window.
    pub async fn acquire(self: &Arc<Self>, head: Instant) -> Result<Slot, Refusal> {
        let permit = match &self.slots {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => Some(self.wait(sem.clone(), head).await?),
            },
        };
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.metrics.inflight.increment(1.0);
        let dispatch = Dispatch::granted(head);
        self.metrics
            .queue_wait
            .record(dispatch.queue_wait.as_secs_f64());
        // The window's busy-slot integral starts here and ends in `Slot::drop`.
        self.window.record(WindowEvent::Dispatched {
            at: dispatch.at,
            queue_wait: dispatch.queue_wait,
        });
        Ok(Slot {
            _permit: permit,
            admission: self.clone(),
            dispatch,
        })
    }

    async fn wait(
        &self,
        sem: Arc<Semaphore>,
        head: Instant,
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        self.metrics.queue_depth.increment(1.0);
        let _guard = Waiting(self);
        if before >= self.capacity {
            return Err(Refusal::QueueFull {
                capacity: self.capacity,
            });
        }
        let deadline = head + self.timeout;
        match tokio::time::timeout_at(deadline.into(), sem.acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            // The semaphore is never closed; treat it like a timeout rather than panic.
            Ok(Err(_)) | Err(_) => Err(Refusal::QueueTimeout {
                waited: head.elapsed(),
            }),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        a.inflight.fetch_sub(1, Ordering::AcqRel);
        a.metrics.inflight.decrement(1.0);
        a.window
            .record(WindowEvent::SlotReleased { at: Instant::now() });
    }
}
