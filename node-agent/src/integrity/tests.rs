use super::*;

fn valid() -> ControlSnapshot {
    ControlSnapshot {
        generation: 7,
        mode_raw: Mode::Cap as u32,
        gpu_index: 0,
        refill_per_s: 37_500_000, // ρ 0.3 at 8 ns per token
        burst: 625_000,           // 5 ms
        cost_scale: 1.0,
        target_share: 0.3,
        retired: 0,
        header_flags: 0,
    }
}

fn written(s: &ControlSnapshot) -> Written {
    Written {
        generation: s.generation,
        gpu: s.gpu_index,
        params: s.params().unwrap(),
    }
}

#[test]
fn a_valid_block_passes() {
    let s = valid();
    assert!(check(&s, None).is_empty());
    assert!(check(&s, Some(&written(&s))).is_empty());
}

#[test]
fn retired_flag_in_place_is_a_fault() {
    let s = ControlSnapshot {
        retired: 1,
        ..valid()
    };
    assert_eq!(check(&s, None), vec![RepairReason::Retired]);
}

#[test]
fn nan_share_is_a_fault() {
    let s = ControlSnapshot {
        target_share: f64::NAN,
        ..valid()
    };
    assert_eq!(check(&s, None), vec![RepairReason::TargetShare]);
}

#[test]
fn a_randomised_block_is_caught_field_by_field() {
    // The reproduction: GPU 3532202184, refill 1.4e19, the rest random bits.
    let s = ControlSnapshot {
        generation: 0x9e37_79b9_7f4a_7c15,
        mode_raw: 0xdead_beef,
        gpu_index: 3_532_202_184,
        refill_per_s: 14_000_000_000_000_000_000,
        burst: 0,
        cost_scale: f64::from_bits(0x7ff8_dead_0000_0001),
        target_share: f64::from_bits(0x4a3b_2c1d_0e0f_1011),
        retired: 0x55aa_55aa,
        header_flags: 3,
    };
    let faults = check(&s, Some(&written(&valid())));
    for r in [
        RepairReason::Retired,
        RepairReason::UnknownMode,
        RepairReason::TargetShare,
        RepairReason::RefillRate,
        RepairReason::Burst,
        RepairReason::CostScale,
        RepairReason::Gpu,
        RepairReason::HeaderFlags,
    ] {
        assert!(faults.contains(&r), "{r} missing from {faults:?}");
    }
}

#[test]
fn a_burst_worth_more_than_100ms_is_a_fault() {
    // 5e9 tokens at 1 token/s for ρ 1e-3: the issue's `--rate 1e-12` block, at the minimum share.
    let s = ControlSnapshot {
        refill_per_s: 1,
        burst: 5_000_000_000,
        target_share: 0.001,
        ..valid()
    };
    assert_eq!(check(&s, None), vec![RepairReason::Burst]);
}

#[test]
fn a_change_without_a_new_generation_is_unannounced_and_with_one_is_accepted() {
    let w = written(&valid());
    let s = ControlSnapshot {
        refill_per_s: 75_000_000,
        burst: 1_250_000,
        target_share: 0.6,
        ..valid()
    };
    assert_eq!(check(&s, Some(&w)), vec![RepairReason::Unannounced]);
    let moved = ControlSnapshot { generation: 8, ..s };
    assert!(
        check(&moved, Some(&w)).is_empty(),
        "a set-rate bumps the generation"
    );
    let gpu = ControlSnapshot {
        gpu_index: 3,
        ..valid()
    };
    assert_eq!(check(&gpu, Some(&w)), vec![RepairReason::Unannounced]);
}

#[test]
fn reasons_have_distinct_labels() {
    let labels: std::collections::HashSet<&str> =
        RepairReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), RepairReason::ALL.len());
}
