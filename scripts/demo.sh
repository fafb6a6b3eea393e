#!/usr/bin/env bash
# The main job, end to end on one machine (Debian 12, as root):
#  1. build soci and soci-snapshotter-grpc;
#  2. start a private registry on 127.0.0.1, a private containerd with the soci
#     proxy plugin, and the snapshotter;
#  3. make an image with a ~${SOCI_DEMO_MB:-300} MB application layer, convert it
#     with `soci convert --standalone` (no containerd needed) and push it;
#  4. pull it lazily with `soci image rpull` and run it with `ctr run`, next to a
#     normal overlayfs pull and run of the unconverted image;
#  5. print what was fetched and how long it took. Everything is cleaned up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p soci -p soci-snapshotter-grpc
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
W=$(mktemp -d /tmp/soci-demo.XXXXXX)
PIDS=()
cleanup() {
  set +e
  if [ -S "$W/ctd/containerd.sock" ]; then
    for t in $(ctr -a "$W/ctd/containerd.sock" -n soci-demo tasks ls -q 2>/dev/null); do
      ctr -a "$W/ctd/containerd.sock" -n soci-demo tasks kill -s SIGKILL "$t"; done
  fi
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  grep " $W" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
PORT=${SOCI_DEMO_PORT:-5055}
REG=127.0.0.1:$PORT

echo "== starting a private registry on $REG"
cat > "$W/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $W/registry}, delete: {enabled: true}}
http: {addr: $REG}
YML
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 & PIDS+=($!); disown
for _ in $(seq 1 100); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

echo "== building an image: busybox + a ~${SOCI_DEMO_MB:-300} MB application layer"
cd "$W"
umoci init --layout img >/dev/null
umoci new --image img:latest >/dev/null
umoci unpack --image img:latest bundle >/dev/null
mkdir -p bundle/rootfs/bin bundle/rootfs/app
cp /bin/busybox bundle/rootfs/bin/
for a in sh ls cat echo head wc; do ln -sf busybox "bundle/rootfs/bin/$a"; done
umoci repack --refresh-bundle --image img:latest bundle >/dev/null
python3 - "$W/bundle/rootfs/app" "${SOCI_DEMO_MB:-300}" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"span ", b"lazy "]
total, i = 0, 0
while total < mb << 20:
    size = rnd.choice([4096, 65536, 1 << 20, 8 << 20])
    d = os.path.join(root, f"pkg{i // 50}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.dat"), "wb") as f:
        if i % 3 != 0:
            f.write(os.urandom(size))
        else:
            f.write(b"".join(rnd.choice(words) for _ in range(size // 5))[:size])
    total += size; i += 1
with open(os.path.join(root, "hello.txt"), "w") as f:
    f.write("hello from a lazily loaded layer\n")
PY
umoci repack --refresh-bundle --image img:latest bundle >/dev/null
umoci config --image img:latest --config.cmd /bin/cat --config.cmd /app/hello.txt --os linux --architecture amd64 >/dev/null
(cd img && tar cf ../img.tar .)
IMG_BYTES=$(python3 -c "
import json,os
idx=json.load(open('img/index.json'));m=json.load(open('img/blobs/sha256/'+idx['manifests'][0]['digest'][7:]))
print(sum(l['size'] for l in m['layers']))")

echo "== soci convert --standalone img.tar img-soci.tar"
"$BIN/soci" convert --standalone img.tar img-soci.tar
echo "== pushing both images with skopeo"
skopeo copy --quiet --dest-tls-verify=false oci-archive:img.tar "docker://$REG/demo:plain"
skopeo copy --quiet --all --dest-tls-verify=false oci-archive:img-soci.tar "docker://$REG/demo:soci"

echo "== starting soci-snapshotter-grpc and containerd"
mkdir -p "$W/soci" "$W/ctd"
printf '[background_fetch]\ndisable = true\n' > "$W/soci/config.toml"
"$BIN/soci-snapshotter-grpc" --root "$W/soci/root" --address "$W/soci/soci.sock" --config "$W/soci/config.toml" \
  >"$W/soci/daemon.log" 2>&1 & PIDS+=($!); disown
cat > "$W/ctd/config.toml" <<TOML
version = 2
root = "$W/ctd/root"
state = "$W/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/ctd/containerd.sock"
[proxy_plugins]
  [proxy_plugins.soci]
    type = "snapshot"
    address = "$W/soci/soci.sock"
TOML
containerd --config "$W/ctd/config.toml" >"$W/ctd/containerd.log" 2>&1 & PIDS+=($!); disown
for _ in $(seq 1 200); do [ -S "$W/ctd/containerd.sock" ] && [ -S "$W/soci/soci.sock" ] && break; sleep 0.1; done
CTR=(ctr -a "$W/ctd/containerd.sock" -n soci-demo)
now() { date +%s.%N; }

echo "== lazy: soci image rpull + ctr run --snapshotter soci"
t0=$(now)
"$BIN/soci" --address "$W/ctd/containerd.sock" --namespace soci-demo image rpull --plain-http "$REG/demo:soci"
t1=$(now)
LAZY_OUT=$("${CTR[@]}" run --rm --snapshotter soci "$REG/demo:soci" lazy1)
t2=$(now)
LAZY_FETCHED=$(cat "$W"/soci/root/snapshotter/snapshots/*/fs/.soci-snapshotter/*.json 2>/dev/null \
  | python3 -c "import json,sys; print(sum(json.loads(l)['fetchedSize'] for l in sys.stdin if l.strip()))")
SMALL_LAYERS=$(python3 -c "
import json
idx=json.load(open('img/index.json'));m=json.load(open('img/blobs/sha256/'+idx['manifests'][0]['digest'][7:]))
print(sum(l['size'] for l in m['layers'] if l['size'] < 10<<20))")

echo "== normal: ctr images pull + ctr run (overlayfs)"
t3=$(now)
"${CTR[@]}" images pull --plain-http "$REG/demo:plain" >/dev/null
t4=$(now)
PLAIN_OUT=$("${CTR[@]}" run --rm "$REG/demo:plain" plain1)
t5=$(now)

echo
echo "lazy container printed:   $LAZY_OUT"
echo "normal container printed: $PLAIN_OUT"
python3 - "$IMG_BYTES" "$LAZY_FETCHED" "$SMALL_LAYERS" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" <<'PY'
import sys
img, lazy, small = (int(x) for x in sys.argv[1:4])
t0, t1, t2, t3, t4, t5 = (float(x) for x in sys.argv[4:])
mb = lambda b: f"{b / 1048576:8.1f} MB"
print()
print(f"| {'':32} | {'lazy (soci)':>14} | {'normal (overlayfs)':>18} |")
print(f"|{'-'*34}|{'-'*16}|{'-'*20}|")
print(f"| {'image size (compressed layers)':32} | {mb(img):>14} | {mb(img):>18} |")
print(f"| {'bytes fetched':32} | {mb(lazy + small):>14} | {mb(img):>18} |")
print(f"| {'time to pull':32} | {t1 - t0:12.2f} s | {t4 - t3:16.2f} s |")
print(f"| {'time to first output (pull+run)':32} | {t2 - t0:12.2f} s | {t5 - t3:16.2f} s |")
print()
print("bytes fetched (lazy) = spans read through FUSE + layers below --min-layer-size, pulled whole")
PY
