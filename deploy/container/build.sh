#!/usr/bin/env bash
# Builds the Sightline container image from the Containerfile at the
# repository root. The Containerfile has no RUN step (it builds offline and
# without running a container), so this script stages its build context
# first, in the git-ignored .build/image/:
#   rootfs/usr/local/bin/sightline   static binary (CGO_ENABLED=0, -trimpath)
#   rootfs/etc/ssl/certs/ca-certificates.crt   the host's CA bundle (CA_BUNDLE)
#   rootfs/etc/passwd, rootfs/etc/group        root and nonroot (65532)
#   data/                            empty; becomes /data, owned by 65532
# then runs `podman build --format docker` (the docker format keeps the
# HEALTHCHECK). CONTAINER_TOOL=docker builds with Docker instead.
#
# Usage: deploy/container/build.sh [TAG]   (default sightline:$VERSION,
# VERSION defaulting to "dev"; VERSION is also the binary's version).
# GOARCH=arm64 builds an arm64 image on an amd64 machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${VERSION:-dev}
tag=${1:-sightline:$version}
tool=${CONTAINER_TOOL:-podman}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
stage=.build/image

rm -rf "$stage"
mkdir -p "$stage/rootfs/usr/local/bin" "$stage/rootfs/etc/ssl/certs" "$stage/data"
CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=$version" \
  -o "$stage/rootfs/usr/local/bin/sightline" ./cmd/sightline
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' >"$stage/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$stage/rootfs/etc/group"
if [ -r "$ca" ]; then
  cp "$ca" "$stage/rootfs/etc/ssl/certs/ca-certificates.crt"
else
  echo "build.sh: no CA bundle at $ca (set CA_BUNDLE): the image cannot verify TLS servers" >&2
fi
chmod -R go-w "$stage"

format=()
[ "$tool" = docker ] || format=(--format docker)
"$tool" build "${format[@]}" -f Containerfile -t "$tag" .
echo "build.sh: built $tag" >&2
