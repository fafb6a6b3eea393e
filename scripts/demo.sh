#!/usr/bin/env bash
# The main job, end to end on one machine (Debian 12, as root):
# build soci, start a private registry on 127.0.0.1, make an image with a large
# layer, convert it into a SOCI-enabled image without containerd, push it with
# skopeo, and show what the registry now holds. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p soci
SOCI=$PWD/target/release/soci
W=$(mktemp -d /tmp/soci-demo.XXXXXX)
REG_PID=""
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
PORT=${SOCI_DEMO_PORT:-5055}
cat > "$W/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $W/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done

echo "== building an image: busybox + a ~${SOCI_DEMO_MB:-200} MB application layer"
cd "$W"
umoci init --layout img >/dev/null
umoci new --image img:latest >/dev/null
umoci unpack --image img:latest bundle >/dev/null
mkdir -p bundle/rootfs/bin bundle/rootfs/app
cp /bin/busybox bundle/rootfs/bin/
for a in sh ls cat echo head wc; do ln -sf busybox "bundle/rootfs/bin/$a"; done
umoci repack --image img:latest bundle >/dev/null
python3 - "$W/bundle/rootfs/app" "${SOCI_DEMO_MB:-200}" <<'PY'
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
        if i % 3 == 0:
            f.write(os.urandom(size))
        else:
            f.write(b"".join(rnd.choice(words) for _ in range(size // 5))[:size])
    total += size; i += 1
with open(os.path.join(root, "hello.txt"), "w") as f:
    f.write("hello from a lazily loaded layer\n")
PY
umoci repack --image img:latest bundle >/dev/null
umoci config --image img:latest --config.cmd /bin/cat --config.cmd /app/hello.txt --os linux --architecture amd64 >/dev/null
(cd img && tar cf ../img.tar .)

echo "== soci convert --standalone"
"$SOCI" convert --standalone img.tar img-soci.tar

echo "== skopeo copy --all to the private registry"
skopeo copy --quiet --all --dest-tls-verify=false oci-archive:img-soci.tar "docker://127.0.0.1:$PORT/demo:soci"
skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$PORT/demo:soci" > index.json
python3 - "$PORT" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
idx = json.load(open("index.json"))
def get(path, accept):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/demo/{path}", headers={"Accept": accept})
    return json.load(urllib.request.urlopen(req))
img = next(d for d in idx["manifests"] if "artifactType" not in d)
soci = next(d for d in idx["manifests"] if d.get("artifactType") == "application/vnd.amazon.soci.index.v2+json")
m = get("manifests/" + img["digest"], img["mediaType"])
s = get("manifests/" + soci["digest"], soci["mediaType"])
ztocs = {z["annotations"]["com.amazon.soci.image-layer-digest"]: z for z in s["layers"]}
print()
print(f"image index   {idx.get('mediaType')}  (pushed as 127.0.0.1:{port}/demo:soci)")
print(f"image manifest {img['digest']}  com.amazon.soci.index-digest={m['annotations'].get('com.amazon.soci.index-digest')}")
print(f"SOCI index    {soci['digest']}  platform={soci['platform']['os']}/{soci['platform']['architecture']}")
print()
print(f"{'layer':<20} {'layer size':>12} {'zTOC size':>10} {'zTOC/layer':>10}")
for l in m["layers"]:
    z = ztocs.get(l["digest"])
    zs = f"{z['size']:>10}" if z else f"{'(none)':>10}"
    ratio = f"{100*z['size']/l['size']:>9.2f}%" if z else f"{'-':>10}"
    print(f"{l['digest'][7:19]+'...':<20} {l['size']:>12} {zs} {ratio}")
PY
echo
echo "lazy pull and run through soci-snapshotter-grpc: not part of this build yet"
