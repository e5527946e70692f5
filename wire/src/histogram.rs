//! A mergeable latency histogram: sparse log-spaced buckets whose counts add.
//!
//! # Why buckets and not percentiles
//!
//! A stage runs as several replicas, each reporting one window at a time, and the coordinator
//! needs the p99 of the stage (all replicas) and of the pipeline (several windows). Percentiles
//! cannot be combined: the p99 of a union of samples is not any average of the parts' p99s.
//! Say replica A serves 1,000 requests in 10 ms and replica B, on a throttled GPU, 100 requests
//! in 500 ms. The stage's true p99 (rank 1,089 of 1,100) is 500 ms: the slowest 100 requests
//! are all B's. The mean of the two p99s says 255 ms, and a mean weighted by requests says
//! 55 ms, both far below. A p99 says where the 99 % point of one set lies. It does not say how
//! many samples lie near it, which is what a merge would need.
//!
//! Bucket counts carry exactly that. Merging adds the counts bucket by bucket, and the merged
//! histogram is the histogram of the union of the samples, so its quantiles are as exact as
//! those of one histogram: the bucket holding the rank-r sample of the union is the bucket
//! where the merged cumulative count reaches r. This holds across replicas and across windows,
//! in any order (merging is associative and commutative). `merge_is_the_union` and
//! `averaging_percentiles_is_not_honest` in the tests show both.
//!
//! # The buckets
//!
//! Bucket `i` (0 ≤ i < [`BUCKETS`]) holds values in `[γ^i, γ^(i+1))` microseconds with
//! γ = [`GROWTH`] = 1.05. Values below 1 µs go to bucket 0, values from
//! [`overflow_seconds`] (γ^425 µs, about 17 minutes) up go to the overflow bucket,
//! index [`BUCKETS`]. A quantile is reported as `2·lo·hi / (lo + hi)` of its bucket, the point
//! whose worst relative distance to both edges is equal, so a quantile within the range is
//! within [`MAX_RELATIVE_ERROR`] = (γ−1)/(γ+1) ≈ 2.44 % of the exact sample quantile (nearest
//! rank). In the overflow bucket the quantile is its lower edge, a lower bound. The sum is
//! exact (seconds, `f64`), so the mean is too.
//!
//! Only buckets with a count are held (sparse, sorted by index), so a window that saw latencies
//! within one decade holds about 48 buckets.
//!
//! # On the wire
//!
//! The bincode encoding is written by hand, as the sum, the index of the first bucket held,
//! and the counts of every bucket from there to the last one held (zeros included, one byte
//! each): a dense run costs less than index–count pairs when latencies cluster, and its worst
//! case is bounded, [`MAX_ENCODED_BYTES`] (≤ 4 KiB) even with every bucket at a count of
//! 2^33, so a `StageReport` with three histograms fits a 16 KiB mesh value. The total count is
//! not sent: the decoder sums the buckets (an overflowing sum is a decode error). Decoding
//! refuses a run longer than the buckets left after its start before reading any count, so a
//! hostile length cannot make it allocate or loop. Serde (JSON) carries the sparse form with
//! the count; [`LatencyHistogram::validate`] checks either against the rules above.

use std::sync::LazyLock;
use std::time::Duration;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Ratio of a bucket's upper edge to its lower edge.
pub const GROWTH: f64 = 1.05;

/// Number of regular buckets; the overflow bucket has this index.
pub const BUCKETS: u16 = 425;

/// Largest relative error of a quantile below [`overflow_seconds`]: (γ−1)/(γ+1).
pub const MAX_RELATIVE_ERROR: f64 = (GROWTH - 1.0) / (GROWTH + 1.0);

/// Upper bound of the bincode (standard configuration) encoding of any valid histogram: the
/// sum (8 bytes), the first index (≤ 3), the run length (≤ 3) and 426 counts of ≤ 9 bytes.
pub const MAX_ENCODED_BYTES: usize = 8 + 3 + 3 + (BUCKETS as usize + 1) * 9;

// The contract: growth ≤ 1.05, a quantile within 2.5 %, a full histogram within 4 KiB.
const _: () = assert!(GROWTH <= 1.05 && MAX_RELATIVE_ERROR <= 0.025);
const _: () = assert!(MAX_ENCODED_BYTES <= 4096);

/// Lower edges of the buckets in microseconds, `EDGES[i] = γ^i`, the overflow bucket's last.
/// One table for bucketing and for the quantile reported, so the two always agree.
static EDGES: LazyLock<[f64; BUCKETS as usize + 1]> =
    LazyLock::new(|| std::array::from_fn(|i| GROWTH.powi(i as i32)));

/// Lower edge of bucket `index`, in microseconds.
fn lower_micros(index: u16) -> f64 {
    EDGES
        .get(usize::from(index))
        .copied()
        .unwrap_or_else(|| GROWTH.powi(i32::from(index)))
}

/// Lower edge of the overflow bucket, in seconds (about 1013 s).
pub fn overflow_seconds() -> f64 {
    lower_micros(BUCKETS) / 1e6
}

/// The bucket of a latency in microseconds (finite, non-negative).
fn index_of(micros: f64) -> u16 {
    // A binary search of the edges: the first edge above the value, minus one. Values below
    // the first edge go to bucket 0, at or above the last to the overflow bucket.
    let above = EDGES.partition_point(|edge| *edge <= micros);
    u16::try_from(above.saturating_sub(1)).unwrap_or(BUCKETS)
}

/// A mergeable latency histogram (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Samples recorded.
    count: u64,
    /// Sum of the samples, seconds.
    sum_seconds: f64,
    /// `(bucket index, count)`, strictly increasing indices, no zero count.
    buckets: Vec<(u16, u64)>,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency, in seconds. Non-finite and negative values are not latencies and are
    /// dropped (a NaN in the sum would poison every merge after it).
    pub fn record(&mut self, seconds: f64) {
        self.record_n(seconds, 1);
    }

    /// Records one latency given as a duration.
    pub fn record_duration(&mut self, d: Duration) {
        self.record_n(d.as_secs_f64(), 1);
    }

    /// Records `n` samples of the same latency (dropped as in [`Self::record`]). Counts
    /// saturate at `u64::MAX` rather than wrap.
    pub fn record_n(&mut self, seconds: f64, n: u64) {
        if n == 0 || !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let index = index_of(seconds * 1e6);
        self.add(index, n);
        self.sum_seconds += seconds * n as f64;
    }

    fn add(&mut self, index: u16, n: u64) {
        match self.buckets.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => {
                if let Some((_, c)) = self.buckets.get_mut(at) {
                    *c = c.saturating_add(n);
                }
            }
            Err(at) => self.buckets.insert(at, (index, n)),
        }
        self.count = self.count.saturating_add(n);
    }

    /// Adds `other`'s samples to this histogram: the result is the histogram of the union.
    pub fn merge(&mut self, other: &Self) {
        if other.buckets.is_empty() {
            self.sum_seconds += other.sum_seconds;
            return;
        }
        let mut out = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        a.next();
                        b.next();
                        (ia, ca.saturating_add(cb))
                    } else if ia < ib {
                        a.next();
                        (ia, ca)
                    } else {
                        b.next();
                        (ib, cb)
                    }
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&x)) => {
                    b.next();
                    x
                }
                (None, None) => break,
            };
            out.push(next);
        }
        self.buckets = out;
        self.count = self.count.saturating_add(other.count);
        self.sum_seconds += other.sum_seconds;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the samples, seconds (exact up to `f64` rounding).
    pub fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }

    /// Mean latency, seconds; 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_seconds / self.count as f64
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q`-quantile (nearest rank, `q` clamped to [0, 1]) in seconds, within
    /// [`MAX_RELATIVE_ERROR`] of the exact one below [`overflow_seconds`]; 0 when empty or
    /// when `q` is NaN.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 || q.is_nan() {
            return 0.0;
        }
        // Nearest rank: the smallest sample with at least q·n samples at or below it.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for &(index, c) in &self.buckets {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return representative_seconds(index);
            }
        }
        // Unreachable while the count is the sum of the buckets (validate); the largest bucket
        // is the honest answer otherwise.
        self.buckets
            .last()
            .map_or(0.0, |&(index, _)| representative_seconds(index))
    }

    /// The buckets held, `(index, count)`, by increasing index.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.buckets.iter().copied()
    }

    /// Edges of bucket `index` in seconds, `[lower, upper)`; the overflow bucket's upper edge
    /// is infinite and bucket 0 also holds values below its lower edge.
    pub fn bucket_bounds(index: u16) -> (f64, f64) {
        if index >= BUCKETS {
            (overflow_seconds(), f64::INFINITY)
        } else {
            (lower_micros(index) / 1e6, lower_micros(index + 1) / 1e6)
        }
    }

    /// Rejects what no [`LatencyHistogram`] built by recording and merging holds: more buckets
    /// than exist, indices out of range or not strictly increasing, empty buckets, a count
    /// that is not the sum of the buckets, a sum that is negative or not finite.
    pub fn validate(&self) -> Result<(), String> {
        if self.buckets.len() > usize::from(BUCKETS) + 1 {
            return Err(format!(
                "{} buckets, more than the {} that exist",
                self.buckets.len(),
                BUCKETS + 1
            ));
        }
        let mut total = 0u64;
        let mut previous: Option<u16> = None;
        for &(index, c) in &self.buckets {
            if index > BUCKETS {
                return Err(format!("bucket index {index} is over the last, {BUCKETS}"));
            }
            if previous.is_some_and(|p| p >= index) {
                return Err(format!(
                    "bucket index {index} is not after the one before it"
                ));
            }
            if c == 0 {
                return Err(format!("bucket {index} is held with a zero count"));
            }
            total = total
                .checked_add(c)
                .ok_or_else(|| "bucket counts overflow a u64".to_owned())?;
            previous = Some(index);
        }
        if total != self.count {
            return Err(format!(
                "count {} is not the sum of the buckets, {total}",
                self.count
            ));
        }
        if !self.sum_seconds.is_finite() || self.sum_seconds < 0.0 {
            return Err(format!(
                "sum must be a finite non-negative number of seconds, got {}",
                self.sum_seconds
            ));
        }
        Ok(())
    }
}

/// The value reported for a quantile falling in bucket `index`, seconds.
fn representative_seconds(index: u16) -> f64 {
    if index >= BUCKETS {
        return overflow_seconds();
    }
    let (lo, hi) = (lower_micros(index), lower_micros(index + 1));
    2.0 * lo * hi / (lo + hi) / 1e6
}

impl Encode for LatencyHistogram {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.sum_seconds.encode(encoder)?;
        let (first, last) = match (self.buckets.first(), self.buckets.last()) {
            (Some(&(f, _)), Some(&(l, _))) => (f, l),
            _ => {
                0u16.encode(encoder)?;
                return 0u64.encode(encoder);
            }
        };
        first.encode(encoder)?;
        let run = u64::from(last.saturating_sub(first)) + 1;
        run.encode(encoder)?;
        let mut held = self.buckets.iter().peekable();
        for index in first..=last {
            let c = match held.peek() {
                Some(&&(i, c)) if i == index => {
                    held.next();
                    c
                }
                _ => 0,
            };
            c.encode(encoder)?;
        }
        Ok(())
    }
}

impl<Context> Decode<Context> for LatencyHistogram {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let sum_seconds = f64::decode(decoder)?;
        let first = u16::decode(decoder)?;
        let run = u64::decode(decoder)?;
        // Checked before any count is read: a hostile run length cannot make us loop.
        let left = u64::from(BUCKETS.saturating_sub(first)) + 1;
        if first > BUCKETS || run > left {
            return Err(DecodeError::OtherString(format!(
                "histogram run of {run} buckets from index {first} passes the last bucket, {BUCKETS}"
            )));
        }
        let mut h = LatencyHistogram {
            count: 0,
            sum_seconds,
            buckets: Vec::new(),
        };
        for offset in 0..run {
            let c = u64::decode(decoder)?;
            if c == 0 {
                continue;
            }
            // `offset < run ≤ BUCKETS + 1 - first`, so the index fits.
            let index = first.saturating_add(u16::try_from(offset).unwrap_or(u16::MAX));
            h.count = h.count.checked_add(c).ok_or_else(|| {
                DecodeError::OtherString("histogram counts overflow a u64".to_owned())
            })?;
            h.buckets.push((index, c));
        }
        Ok(h)
    }
}

bincode::impl_borrow_decode!(LatencyHistogram);

#[cfg(test)]
mod tests;
