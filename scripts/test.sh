#!/usr/bin/env bash
# Run every test of the project: unit, property, golden, end-to-end (real skopeo,
# docker-registry, containerd and FUSE where a test needs them) and short fuzz runs.
# Must run as root on Debian 12; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
scripts/fuzz.sh smoke
