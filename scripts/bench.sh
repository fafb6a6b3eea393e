#!/usr/bin/env bash
# Time-to-ready benchmark (BENCHMARKS.md, "Time to ready on a shaped network").
#   scripts/bench.sh --quick          # S image, 100mbit-20ms, 3 runs (< 10 min on 2 cores)
#   scripts/bench.sh --size m --runs 5 --profiles 100mbit-20ms,1gbit-2ms
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
exec "$T/release/soci-bench" run \
  --reader "$T/x86_64-unknown-linux-gnu/release/soci-bench-reader" \
  --command "scripts/bench.sh $*" "$@"
