#!/usr/bin/env bash
# Fuzz the parsers with cargo-fuzz (libFuzzer, nightly toolchain).
#   scripts/fuzz.sh smoke            each target for ${FUZZ_SECONDS:-20}s (run by scripts/test.sh)
#   scripts/fuzz.sh run TARGET [S]   one target for S seconds (default 600)
# Corpora are committed under fuzz/corpus/<target>; crashes land in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(ztoc_decode checkpoints span_extract index_json tar_walk config_toml)
if ! rustup toolchain list | grep -q nightly; then
  echo "fuzz: no nightly toolchain on this machine; skipping fuzzing (cargo-fuzz needs nightly)" >&2
  exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  if ! cargo install cargo-fuzz --locked >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz could not be installed; skipping fuzzing" >&2
    exit 0
  fi
fi
run() {
  local t=$1 secs=$2
  mkdir -p "fuzz/corpus/$t"
  # Work on a copy so that a smoke run does not grow the committed corpus.
  local work; work=$(mktemp -d)
  cp -r "fuzz/corpus/$t/." "$work/"
  cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=200000 2>&1 | tail -n 3
  rm -rf "$work"
}
case "${1:-smoke}" in
  smoke)
    cargo +nightly fuzz build
    for t in "${TARGETS[@]}"; do run "$t" "${FUZZ_SECONDS:-20}"; done ;;
  run) run "$2" "${3:-600}" ;;
  *) echo "usage: $0 smoke | run TARGET [SECONDS]" >&2; exit 2 ;;
esac
