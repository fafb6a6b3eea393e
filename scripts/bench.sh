#!/usr/bin/env bash
# Time-to-ready benchmark (BENCHMARKS.md, "Time to ready on a shaped network").
#   scripts/bench.sh --quick          # S image, 100mbit-20ms, 3 runs (< 10 min on 2 cores)
#   scripts/bench.sh --size m --runs 5 --profiles 100mbit-20ms,1gbit-2ms --nydus
# Other flags: see `soci-bench run --help`. Needs root (network namespace, tc,
# containerd, FUSE). Results go to bench-results/ (JSON per run, summary.md,
# time-to-ready.png); add `--update BENCHMARKS.md` to refresh the section there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p soci -p soci-snapshotter-grpc
cargo build --release --locked -p soci-bench
# The workload program runs inside the image, which has no libc: link it statically.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked -p soci-bench-reader --target x86_64-unknown-linux-gnu
T=${CARGO_TARGET_DIR:-$PWD/target}
# --nydus also measures Nydus's zran mode: install its tools (nydus-rs from
# crates.io, built once into $T/nydus) unless they are already there.
NYDUS=()
for a in "$@"; do
  if [ "$a" = "--nydus" ]; then
    if [ ! -x "$T/nydus/bin/nydusd" ] || [ ! -x "$T/nydus/bin/nydus-image" ]; then
      CARGO_TARGET_DIR="$T/nydus-build" cargo install nydus-rs --version 2.2.0 --locked --root "$T/nydus"
    fi
    NYDUS=(--nydus-bin "$T/nydus/bin")
  fi
done
exec "$T/release/soci-bench" run "${NYDUS[@]}" \
  --reader "$T/x86_64-unknown-linux-gnu/release/soci-bench-reader" \
  --command "scripts/bench.sh $*" "$@"
