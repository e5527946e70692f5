#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: builds every binary and cdylib the integration
# tests start, then runs all tests. Installs nothing it does not need.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
