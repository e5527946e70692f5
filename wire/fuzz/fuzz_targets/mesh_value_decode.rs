//! Feeds arbitrary bytes to the decoders of mesh values: a `report/` value (a `StageReport`
//! with its three histograms) and a lone histogram must decode to an error or a value, never
//! panic, and a decoded histogram's buckets must be sorted and in range (only its sum is left
//! for `validate` to refuse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sair_wire::{LatencyHistogram, StageReport, keys};

fuzz_target!(|data: &[u8]| {
    if let Some(report) = keys::decode::<StageReport>(data) {
        let _ = report.validate();
    }
    if let Some(h) = keys::decode::<LatencyHistogram>(data) {
        let sum_ok = h.sum_seconds().is_finite() && h.sum_seconds() >= 0.0;
        assert_eq!(h.validate().is_ok(), sum_ok, "{h:?}");
        let _ = h.quantile(0.99);
    }
});
