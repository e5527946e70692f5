#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: checks formatting, builds every binary and cdylib
# the integration tests start, starts the local LLM server the policy's real-LLM test needs,
# runs all tests, then holds the code to clippy with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo fmt --all -- --check
cargo build --workspace --all-targets
# The SAIR policy's real-LLM test talks to a local OpenAI-compatible server (llama-cpp-python +
# SmolLM2-135M on 127.0.0.1; installs into ~/.cache/sair-llm on first use, ~5 min).
SAIR_LLM_URL=$(scripts/llm-local.sh start)
export SAIR_LLM_URL
trap 'scripts/llm-local.sh stop' EXIT
cargo test --workspace --no-fail-fast
cargo clippy --workspace --all-targets -- -D warnings
