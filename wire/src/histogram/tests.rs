use proptest::prelude::*;

use super::*;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn encode(h: &LatencyHistogram) -> Vec<u8> {
    bincode::encode_to_vec(h, config()).unwrap()
}

fn decode(bytes: &[u8]) -> Result<LatencyHistogram, DecodeError> {
    bincode::decode_from_slice(bytes, config()).map(|(h, _)| h)
}

/// The exact nearest-rank quantile of `samples`.
fn exact(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn of(samples: &[f64]) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for &s in samples {
        h.record(s);
    }
    h
}

fn relative_error(estimate: f64, exact: f64) -> f64 {
    (estimate - exact).abs() / exact
}

#[test]
fn empty_is_zero_everywhere() {
    let h = LatencyHistogram::new();
    assert!(h.is_empty());
    assert_eq!(h.count(), 0);
    assert_eq!(h.mean(), 0.0);
    assert_eq!(h.quantile(0.99), 0.0);
    assert_eq!(h.validate(), Ok(()));
    assert_eq!(decode(&encode(&h)).unwrap(), h);
}

#[test]
fn counts_sums_and_quantiles_of_known_samples() {
    let mut h = LatencyHistogram::new();
    h.record_n(0.010, 99);
    h.record(0.500);
    assert_eq!(h.count(), 100);
    assert!((h.sum_seconds() - (0.99 + 0.5)).abs() < 1e-12);
    assert!((h.mean() - 0.0149).abs() < 1e-12);
    assert!(relative_error(h.quantile(0.5), 0.010) <= MAX_RELATIVE_ERROR);
    assert!(relative_error(h.quantile(0.99), 0.010) <= MAX_RELATIVE_ERROR);
    assert!(relative_error(h.quantile(1.0), 0.500) <= MAX_RELATIVE_ERROR);
    assert!(relative_error(h.quantile(2.0), 0.500) <= MAX_RELATIVE_ERROR);
    assert_eq!(h.quantile(f64::NAN), 0.0);
    assert_eq!(h.buckets().count(), 2);
}

#[test]
fn non_latencies_are_dropped_and_extremes_are_bucketed() {
    let mut h = LatencyHistogram::new();
    for bad in [f64::NAN, f64::INFINITY, -1.0, f64::NEG_INFINITY] {
        h.record(bad);
    }
    h.record_n(0.1, 0);
    assert!(h.is_empty());
    h.record(0.0);
    h.record(1e-9);
    assert_eq!(h.buckets().collect::<Vec<_>>(), [(0, 2)]);
    h.record(1e6);
    assert_eq!(h.buckets().last(), Some((BUCKETS, 1)));
    assert_eq!(
        h.quantile(1.0),
        overflow_seconds(),
        "overflow: its lower edge"
    );
    assert!(overflow_seconds() > 1000.0);
    assert_eq!(h.validate(), Ok(()));
}

#[test]
fn bucket_edges_hold_their_values() {
    for index in [0u16, 1, 100, BUCKETS - 1] {
        let (lo, hi) = LatencyHistogram::bucket_bounds(index);
        assert!(hi / lo <= GROWTH + 1e-12);
        let (lo, hi) = (lower_micros(index), lower_micros(index + 1));
        for v in [lo, (lo + hi) / 2.0, hi * (1.0 - 1e-12)] {
            assert_eq!(index_of(v), index, "{v} µs in bucket {index}");
        }
        assert_eq!(index_of(hi), index + 1);
    }
}

#[test]
fn validate_rejects_what_recording_never_builds() {
    let good = of(&[0.001, 0.002]);
    let cases = [
        LatencyHistogram {
            count: 2,
            ..good.clone()
        }
        .with_buckets(vec![(5, 1), (5, 1)]),
        good.clone().with_buckets(vec![(6, 1), (5, 1)]),
        good.clone().with_buckets(vec![(BUCKETS + 1, 2)]),
        good.clone().with_buckets(vec![(1, 2), (2, 0)]),
        good.clone().with_buckets(vec![(1, 3)]),
        good.clone().with_buckets(vec![(1, u64::MAX), (2, 3)]),
        LatencyHistogram {
            sum_seconds: f64::NAN,
            ..good.clone()
        },
        LatencyHistogram {
            sum_seconds: -1.0,
            ..good.clone()
        },
        LatencyHistogram {
            count: 900,
            sum_seconds: 1.0,
            buckets: (0..=BUCKETS + 1).map(|i| (i, 1)).take(900).collect(),
        },
    ];
    assert_eq!(good.validate(), Ok(()));
    for bad in cases {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

impl LatencyHistogram {
    fn with_buckets(mut self, buckets: Vec<(u16, u64)>) -> Self {
        self.buckets = buckets;
        self
    }
}

#[test]
fn a_full_histogram_encodes_within_four_kib() {
    let mut h = LatencyHistogram::new();
    for index in 0..=BUCKETS {
        // The middle of the bucket: its edges, scaled to seconds, may round across.
        let (lo, hi) = LatencyHistogram::bucket_bounds(index);
        let mid = if hi.is_finite() {
            (lo * hi).sqrt()
        } else {
            lo * 2.0
        };
        h.record_n(mid, 1 << 33);
    }
    assert_eq!(h.buckets().count(), usize::from(BUCKETS) + 1);
    let bytes = encode(&h);
    assert!(bytes.len() <= MAX_ENCODED_BYTES, "{}", bytes.len());
    assert_eq!(decode(&bytes).unwrap(), h);
}

#[test]
fn hostile_runs_are_refused_before_reading_counts() {
    // sum 0.0, first 0, a run of 2^40 buckets, then nothing.
    let mut bytes = encode(&LatencyHistogram::new());
    bytes.truncate(bytes.len() - 1);
    bytes.push(0xFD);
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(decode(&bytes), Err(DecodeError::OtherString(_))));
    // A run starting past the last bucket.
    let mut bytes = 0.0f64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0xFB, 0xFF, 0x01]); // first = 511 (varint u16)
    bytes.push(1);
    bytes.push(1);
    assert!(decode(&bytes).is_err());
    // Counts that overflow when summed.
    let mut h = LatencyHistogram::new();
    h.record(0.001);
    h.record(0.002);
    h.buckets.iter_mut().for_each(|(_, c)| *c = u64::MAX);
    assert!(matches!(
        decode(&encode(&h)),
        Err(DecodeError::OtherString(_))
    ));
}

/// Why the StageReport carries buckets: see the module documentation's example.
#[test]
fn averaging_percentiles_is_not_honest() {
    let a: Vec<f64> = vec![0.010; 1000];
    let b: Vec<f64> = vec![0.500; 100];
    let (ha, hb) = (of(&a), of(&b));
    let union: Vec<f64> = a.iter().chain(&b).copied().collect();
    let truth = exact(&union, 0.99);
    assert_eq!(truth, 0.5);
    let averaged = (ha.quantile(0.99) + hb.quantile(0.99)) / 2.0;
    let weighted = (ha.quantile(0.99) * 1000.0 + hb.quantile(0.99) * 100.0) / 1100.0;
    assert!(relative_error(averaged, truth) > 0.4, "{averaged}");
    assert!(relative_error(weighted, truth) > 0.8, "{weighted}");
    let mut merged = ha.clone();
    merged.merge(&hb);
    assert!(relative_error(merged.quantile(0.99), truth) <= MAX_RELATIVE_ERROR);
    assert_eq!(merged.count(), 1100);
}

fn samples() -> impl Strategy<Value = Vec<f64>> {
    // Log-uniform over 1 µs .. 1000 s, as latencies spread.
    proptest::collection::vec((-6.0f64..3.0).prop_map(|e| 10f64.powf(e)), 1..300)
}

proptest! {
    #[test]
    fn merge_is_the_union(a in samples(), b in samples(), q in 0.0f64..=1.0) {
        let mut merged = of(&a);
        merged.merge(&of(&b));
        let union: Vec<f64> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(&merged, &{
            // Same buckets and count as recording the union; the sum only up to rounding.
            let mut u = of(&union);
            u.sum_seconds = merged.sum_seconds;
            u
        });
        let truth = exact(&union, q);
        let err = relative_error(merged.quantile(q), truth);
        prop_assert!(err <= 0.025, "q {} truth {} err {}", q, truth, err);
        prop_assert!(err <= MAX_RELATIVE_ERROR + 1e-12);
        let sum: f64 = union.iter().sum();
        prop_assert!((merged.sum_seconds() - sum).abs() <= 1e-9 * sum.max(1.0));
        prop_assert_eq!(merged.validate(), Ok(()));
    }

    #[test]
    fn merging_is_commutative(a in samples(), b in samples()) {
        let (mut ab, mut ba) = (of(&a), of(&b));
        ab.merge(&of(&b));
        ba.merge(&of(&a));
        prop_assert_eq!(ab.buckets().collect::<Vec<_>>(), ba.buckets().collect::<Vec<_>>());
        prop_assert_eq!(ab.count(), ba.count());
    }

    #[test]
    fn round_trips_through_bincode_and_json(a in samples()) {
        let h = of(&a);
        prop_assert_eq!(decode(&encode(&h)).unwrap(), h.clone());
        let json = serde_json::to_string(&h).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.validate(), Ok(()));
        prop_assert_eq!(back.buckets().collect::<Vec<_>>(), h.buckets().collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_bytes_decode_to_an_error_or_a_valid_histogram(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Decoding builds the sparse form itself, so only the sum is left for validate to refuse.
        if let Ok(h) = decode(&bytes) {
            let sum_ok = h.sum_seconds.is_finite() && h.sum_seconds >= 0.0;
            prop_assert_eq!(h.validate().is_ok(), sum_ok, "{:?}", h);
        }
    }
}
