#!/usr/bin/env bash
# Run every test of the project: unit, property, golden, end-to-end (real skopeo,
# docker-registry, containerd and FUSE where a test needs them) and short fuzz runs.
# Must run as root on Debian 12; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export CARGO_TERM_COLOR=never
# Differential tests against GNU tar and Go's archive/tar must run, not skip.
export SOCI_REQUIRE_GNU_TAR=1 SOCI_REQUIRE_GO_ORACLE=1
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
scripts/fuzz.sh smoke
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo "tests: ${passed} passed, ${failed} failed"
