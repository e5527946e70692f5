#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: checks formatting, unused and banned
# dependencies, licenses and sources, builds every binary and cdylib the integration tests
# start, starts the local LLM server the policy's real-LLM test needs, runs all tests, then
# holds the code to clippy and rustdoc with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Pinned check tools, built from crates.io only when missing or at another version (the first
# run on a fresh machine compiles them: several minutes, cached in ~/.cargo/bin afterwards).
# cargo-deny's own release profile asks for fat LTO with one codegen unit, which makes its
# build much slower for a tool that runs for a second: build it without.
CARGO_DENY_VERSION=0.20.2
CARGO_MACHETE_VERSION=0.9.2
install_tool() { # tool version
    local have
    have=$(cargo "${1#cargo-}" --version 2>/dev/null || true)
    case "$have" in
    *"$2") ;;
    *)
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
            cargo install --locked "$1@$2"
        ;;
    esac
}
install_tool cargo-deny "$CARGO_DENY_VERSION"
install_tool cargo-machete "$CARGO_MACHETE_VERSION"

cargo fmt --all -- --check
# Unused dependencies (a false positive goes in [package.metadata.cargo-machete] ignored,
# with a comment saying why).
cargo machete
# Bans (one version per crate, listed exceptions), licenses and sources: deny.toml.
# Advisories are not checked here: they need a network copy of the RustSec database
# (run `cargo deny check advisories` by hand where there is network; see deny.toml).
cargo deny check bans licenses sources
scripts/validate-manifests.sh # Kubernetes manifests, sair inject output, images (offline)
# `sair demo`'s report check (demo/tests/report_html.rs) loads report.html in headless Chromium
# and skips with a message where there is none: install Debian's where apt can (best effort).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null ||
        echo "chromium could not be installed: the report.html check will skip" >&2
fi
cargo build --workspace --all-targets
# The SAIR policy's real-LLM test talks to a local OpenAI-compatible server (llama-cpp-python +
# SmolLM2-135M on 127.0.0.1; installs into ~/.cache/sair-llm on first use, ~5 min).
SAIR_LLM_URL=$(scripts/llm-local.sh start)
export SAIR_LLM_URL
trap 'scripts/llm-local.sh stop' EXIT
# Every test's scratch files (logs, state dirs, segments) go under one directory: removed when
# all tests pass, kept with its path printed when one fails.
# Mode 1777 as /tmp: some tests act as other users (the segment owner checks) under it.
test_tmp=$(mktemp -d "${TMPDIR:-/tmp}/sair-test.XXXXXX")
chmod 1777 "$test_tmp"
set +e
TMPDIR=$test_tmp cargo test --workspace --no-fail-fast
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "tests failed (exit $rc); their scratch files are kept in $test_tmp" >&2
    exit "$rc"
fi
rm -rf "$test_tmp"
# Every cargo-fuzz target (mesh/fuzz, wire/fuzz) for 60 s, two at a time; skips with a message
# without nightly. Cold ≈ 16 min on the 2-core machine (the sanitizer build), warm ≈ 4 min.
scripts/fuzz.sh 60
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
