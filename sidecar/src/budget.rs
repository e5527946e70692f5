//! One memory budget for every body byte the sidecar buffers at once (`--max-buffered-bytes`).
//!
//! Admission bounds requests in flight to the model server, but a request's body is read
//! *before* admission (a request waits in the queue with its body), so without a budget
//! `--queue-capacity` × `--max-body-bytes` bytes can be held at once (issue 13 saw 40 held
//! 16 MB bodies take 638 MB). Every buffered body — request bodies while they are read and
//! while they wait, buffered model-server and next-stage answers until they are handed to the
//! client connection — takes its bytes from this budget as they arrive and gives them back
//! when it is dropped. A body that does not fit is refused (503, `buffer_full`); nothing waits
//! for memory, so nothing can deadlock on it. Streamed responses are not buffered and take
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The budget: bytes held by live [`Reservation`]s, at most `max`.
#[derive(Debug)]
pub struct Budget {
    held: AtomicUsize,
    max: usize,
}

/// The budget could not give `wanted` more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub max: usize,
}

impl Budget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Budget {
            held: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// An empty reservation that can [`grow`](Reservation::grow).
    pub fn reserve(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            n: 0,
        }
    }

    fn take(&self, n: usize) -> Result<(), OverBudget> {
        // Optimistic add, undone on failure: one atomic operation on the common path. Two
        // racing requests may both be refused near the limit (never both admitted over it).
        let before = self.held.fetch_add(n, Ordering::AcqRel);
        if before.checked_add(n).is_none_or(|after| after > self.max) {
            self.held.fetch_sub(n, Ordering::AcqRel);
            return Err(OverBudget { max: self.max });
        }
        Ok(())
    }
}

/// Bytes taken from a [`Budget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    n: usize,
}

impl Reservation {
    /// Takes `n` more bytes, or refuses (holding what it held).
    pub fn grow(&mut self, n: usize) -> Result<(), OverBudget> {
        self.budget.take(n)?;
        self.n += n;
        Ok(())
    }

    /// Bytes held by this reservation.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.n > 0 {
            self.budget.held.fetch_sub(self.n, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_hold_and_give_back() {
        let b = Budget::new(10);
        let mut r1 = b.reserve();
        r1.grow(6).unwrap();
        let mut r2 = b.reserve();
        assert_eq!(r2.grow(5), Err(OverBudget { max: 10 }));
        assert_eq!(b.held(), 6, "a refused grow takes nothing");
        r2.grow(4).unwrap();
        assert_eq!(b.held(), 10);
        drop(r1);
        assert_eq!(b.held(), 4);
        drop(r2);
        assert_eq!(b.held(), 0);
        let mut r3 = b.reserve();
        assert!(
            r3.grow(usize::MAX).is_err(),
            "overflow is refused, not wrapped"
        );
        assert_eq!(b.held(), 0);
    }
}
