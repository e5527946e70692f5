//! The cross-process token bucket, as atomics on a [`SegmentLayout`].
//!
//! Two monotonic counters make it a ticket queue, so no lock is needed and a killed process can
//! never leave anything held:
//! - `consumed`: every launch adds its cost with one `fetch_add`; the value after the add is the
//!   launch's *ticket*;
//! - `credited`: grows with time at `refill_per_s` (whoever needs credit refills it, with a CAS on
//!   `last_refill_ns` so that one time slice is credited once), and is capped at
//!   `consumed + burst` so an idle segment saves at most `burst` tokens.
//!
//! A launch may go once `credited >= ticket`. Tickets are served in order, a launch costing more
//! than the burst still goes (it waits for its credit), and a rate change acts on the very next
//! refill, including for launches already waiting. A process killed while waiting has paid for
//! a ticket it never uses: the others lose those tokens, never their progress.
//!
//! Everything here is plain arithmetic on atomics: no syscall, no allocation. Time comes in as
//! `now_ns` ([`crate::clock::monotonic_ns`] in production).

use crate::layout::SegmentLayout;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

const NS_PER_S: u128 = 1_000_000_000;

/// `a - b` on the wrapping token counters, as a signed distance. The counters wrap after 2^64
/// tokens (weeks at 1e13 tokens/s); every comparison goes through this, which is exact while the
/// two are less than 2^63 apart.
#[inline]
pub fn ahead(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

/// What the bucket grants a charged launch: go now, or a ticket to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Enough credit: launch now.
    Now,
    /// Wait until [`Bucket::poll`] says this ticket is covered.
    Wait {
        /// Value of `consumed` after this launch's add.
        ticket: u64,
    },
}

/// Result of polling a waiting ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The ticket is covered: launch.
    Ready,
    /// Not yet; at the current rate credit reaches the ticket in about this many ns.
    Pending {
        /// Estimated remaining wait.
        wait_ns: u64,
    },
}

/// The bucket of one segment.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    seg: &'a SegmentLayout,
}

impl<'a> Bucket<'a> {
    /// The bucket stored in `seg`.
    pub fn new(seg: &'a SegmentLayout) -> Self {
        Bucket { seg }
    }

    /// Counts a launch and takes `cost` tokens. `now_ns` is read only when the credit already
    /// granted does not cover the ticket.
    #[inline]
    pub fn charge(
        &self,
        cost: u64,
        rate_per_s: u64,
        burst: u64,
        now_ns: impl FnOnce() -> u64,
    ) -> Grant {
        let b = &self.seg.bucket;
        self.seg.counters.launches.fetch_add(1, Relaxed);
        let ticket = b.consumed.fetch_add(cost, AcqRel).wrapping_add(cost);
        if ahead(b.credited.load(Acquire), ticket) >= 0 {
            return Grant::Now;
        }
        self.refill(now_ns(), rate_per_s, burst);
        if ahead(b.credited.load(Acquire), ticket) >= 0 {
            Grant::Now
        } else {
            Grant::Wait { ticket }
        }
    }

    /// Refills at `now_ns` and says whether `ticket` is covered.
    #[inline]
    pub fn poll(&self, ticket: u64, now_ns: u64, rate_per_s: u64, burst: u64) -> Poll {
        self.refill(now_ns, rate_per_s, burst);
        let missing = ahead(ticket, self.seg.bucket.credited.load(Acquire));
        if missing <= 0 {
            return Poll::Ready;
        }
        let missing = u128::from(missing.unsigned_abs());
        let wait = missing * NS_PER_S / u128::from(rate_per_s.max(1));
        Poll::Pending {
            wait_ns: u64::try_from(wait).unwrap_or(u64::MAX),
        }
    }

    /// Records that a launch waited `waited_ns`.
    #[inline]
    pub fn record_throttle(&self, waited_ns: u64) {
        let c = &self.seg.counters;
        c.throttled_launches.fetch_add(1, Relaxed);
        c.throttled_ns.fetch_add(waited_ns, Relaxed);
    }

    /// Tokens available now (negative: owed by waiting launches), without refilling.
    pub fn available(&self) -> i64 {
        let b = &self.seg.bucket;
        let credited = b.credited.load(Acquire);
        let consumed = b.consumed.load(Acquire);
        credited.wrapping_sub(consumed) as i64
    }

    /// Credits the time elapsed since `last_refill_ns` at `rate_per_s`, capped at
    /// `consumed + burst`. One CAS on `last_refill_ns` decides who credits a time slice.
    #[inline]
    pub fn refill(&self, now_ns: u64, rate_per_s: u64, burst: u64) {
        let b = &self.seg.bucket;
        let last = b.last_refill_ns.load(Acquire);
        if now_ns <= last || rate_per_s == 0 {
            return;
        }
        let elapsed = now_ns - last;
        let rate = u128::from(rate_per_s);
        let earned = u128::from(elapsed) * rate / NS_PER_S;
        if earned == 0 {
            return;
        }
        let consumed = b.consumed.load(Acquire);
        let credited = b.credited.load(Acquire);
        let cap = consumed.wrapping_add(burst);
        let room = u128::from(ahead(cap, credited).max(0).unsigned_abs());
        let (add, new_last) = if earned >= room {
            // Full bucket: the rest of the elapsed time is lost, as for an idle bucket.
            (room, now_ns)
        } else {
            // Advance by exactly the time that earned `earned` tokens; keep the remainder.
            let used = u64::try_from(earned * NS_PER_S / rate).unwrap_or(elapsed);
            (earned, last + used.min(elapsed))
        };
        if b.last_refill_ns
            .compare_exchange(last, new_last, AcqRel, Relaxed)
            .is_err()
        {
            return; // someone else credited this slice
        }
        if add > 0 {
            b.credited
                .fetch_add(u64::try_from(add).unwrap_or(u64::MAX), AcqRel);
            // A concurrent refill may have used a stale `credited`: clamp. Never below an issued
            // ticket, since every ticket is <= consumed.
            loop {
                let cur = b.credited.load(Acquire);
                let cap = b.consumed.load(Acquire).wrapping_add(burst);
                if ahead(cur, cap) <= 0
                    || b.credited
                        .compare_exchange(cur, cap, AcqRel, Relaxed)
                        .is_ok()
                {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
