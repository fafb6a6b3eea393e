#!/usr/bin/env bash
# Install the system packages the build, the tests and the demo need (Debian 12, as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential pkg-config protobuf-compiler libprotobuf-dev
  fuse3 containerd runc docker-registry skopeo umoci busybox-static
  apache2-utils pigz curl ca-certificates iproute2 jq golang-go tar
  fonts-dejavu-core openssl debootstrap strace cmake
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
