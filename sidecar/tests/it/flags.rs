//! Every numeric flag is range-checked at start: the real binary exits 64 naming the flag,
//! promptly, and never panics (101) or starts serving with a value it cannot honour.

use std::process::Command;

use crate::support::*;

/// Runs the binary with `args` on ephemeral ports, bounded by the harness's patience.
fn start(args: &[&str]) -> sair_tests::Finished {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair-sidecar"));
    cmd.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(args);
    sair_tests::run_bounded(cmd, patience())
}

#[test]
fn every_numeric_flag_out_of_range_exits_64_naming_the_flag() {
    let cases: &[(&str, &str)] = &[
        // The values seen in the attack report (issue 13).
        ("--upstream-timeout-seconds", "1e20"),
        ("--drain-timeout-seconds", "1e20"),
        ("--upstream-timeout", "1e20"),
        ("--drain-timeout", "1e20"),
        ("--worker-threads", "1000000"),
        ("--max-header-bytes", "100"),
        // Every other numeric flag, just past its bound.
        ("--upstream-timeout-seconds", "2592001"),
        ("--drain-timeout", "31d"),
        ("--queue-timeout", "31d"),
        ("--queue-timeout-seconds", "inf"),
        ("--header-read-timeout", "0s"),
        ("--header-read-timeout-seconds", "NaN"),
        ("--report-interval", "0s"),
        ("--report-interval-seconds", "1e300"),
        ("--discovery-interval", "31d"),
        ("--discovery-interval-seconds", "0"),
        ("--max-concurrency", "1000001"),
        ("--max-concurrency", "99999999999"),
        ("--queue-capacity", "1000001"),
        ("--retry-after-seconds", "86401"),
        ("--max-body-bytes", "0"),
        ("--max-body-bytes", "18446744073709551615"),
        ("--max-header-bytes", "8191"),
        ("--max-header-bytes", "16777217"),
        ("--max-headers", "0"),
        ("--max-headers", "1025"),
        ("--upstream-max-headers", "0"),
        ("--upstream-max-headers", "1025"),
        ("--report-buffer", "0"),
        ("--report-buffer", "1000000000000"),
        ("--worker-threads", "1025"),
        ("--histogram-buckets-seconds", "0"),
        ("--histogram-buckets-seconds", "inf"),
        ("--max-buffered-bytes", "0"),
        ("--max-buffered-bytes", "1099511627777"),
        // Below the largest body (16 MiB by default): no body of that size could ever fit.
        ("--max-buffered-bytes", "1000"),
        ("--max-connections", "1000001"),
        ("--body-read-timeout", "0s"),
        ("--body-read-timeout", "31d"),
        ("--connect-retry-for", "11m"),
        // Not numeric, but new with the per-core runtime: a name it does not know.
        ("--runtime", "fibers"),
    ];
    for (flag, value) in cases {
        let out = start(&[flag, value]);
        tracing::info!(flag, value, code = ?out.code, wall = ?out.wall, "refused");
        assert_eq!(
            out.code,
            Some(64),
            "{flag} {value}: exit {:?} after {:?}; stderr:\n{}",
            out.code,
            out.wall,
            out.stderr
        );
        assert!(
            out.stderr.contains(flag),
            "{flag} {value}: the error does not name the flag:\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

/// The same bounds hold for the environment: a variable out of range exits 64 naming the
/// flag (the variable's value is checked by the same `validate`).
#[test]
fn an_out_of_range_variable_exits_64() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sair-sidecar"));
    cmd.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .env("SAIR_WORKER_THREADS", "1000000");
    let out = sair_tests::run_bounded(cmd, patience());
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(out.stderr.contains("worker-threads"), "{}", out.stderr);
}
