#!/usr/bin/env bash
# make image: builds deploy/Dockerfile with podman, as the chart runs it, with
# no image registry:
#   - base images: debian:bookworm and debian:bookworm-slim, the names the
#     Dockerfile uses, made by `mmdebstrap --variant=apt bookworm` (one root
#     for both names) and `podman import`ed; only when podman lacks them. The
#     tarball is kept in $EP_IMAGE_CACHE (default .cache/image, git-ignored), so
#     a wiped podman store re-imports it without running mmdebstrap again.
#   - podman build --isolation chroot --pull=never, so nothing is pulled and no
#     OCI runtime is needed; apt inside the build uses deb.debian.org, as `make
#     deps` does. podman's layer cache keeps a rebuild quick when nothing the
#     Dockerfile copies has changed.
#   - tags edgeplane/edgeplane:<agent version> (the chart's default image) and
#     prints the image's name, id and size.
#
#   EP_IMAGE=NAME:TAG          another tag
#   EP_IMAGE_REFRESH=1         new base images from today's Debian (then a cold build)
#   EP_IMAGE_NO_CACHE=1        podman build --no-cache
set -euo pipefail
cd "$(dirname "$0")/../.."

RELEASE=bookworm
CACHE=${EP_IMAGE_CACHE:-$PWD/.cache/image}
VERSION=$(sed -n 's/^#define EP_VERSION "\(.*\)".*/\1/p' $(grep -rl --include='*.h' '^#define EP_VERSION ' agent include lib) | head -1)
IMAGE=${EP_IMAGE:-edgeplane/edgeplane:${VERSION:?image: no EP_VERSION in the headers}}
log() { echo "image: $*"; }

for c in podman mmdebstrap; do
  command -v "$c" >/dev/null || { echo "image: $c is not installed (make deps installs it)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || log "warning: not root; rootless podman needs /etc/subuid and /etc/subgid ranges"
if ! err=$(podman info --format '{{.Store.GraphDriverName}}' 2>&1); then
  echo "image: podman cannot start here: $err" >&2; exit 1
fi
log "podman $(podman version --format '{{.Client.Version}}'), storage driver $err"

# The base images. One apt-variant root (essential + apt) serves both names.
base_tar=$CACHE/$RELEASE-apt.tar
if [ "${EP_IMAGE_REFRESH:-0}" = 1 ]; then
  rm -f "$base_tar"; podman rmi -i "debian:$RELEASE" "debian:$RELEASE-slim" >/dev/null
fi
for name in "debian:$RELEASE" "debian:$RELEASE-slim"; do
  podman image exists "$name" && continue
  if [ ! -s "$base_tar" ]; then
    log "making the base root: mmdebstrap --variant=apt $RELEASE (about a minute)"
    mkdir -p "$CACHE"
    mmdebstrap --quiet --variant=apt "$RELEASE" "$base_tar.tmp"
    mv "$base_tar.tmp" "$base_tar"
  fi
  log "podman import $base_tar as $name"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$base_tar" "$name" >/dev/null
done

[ -r /sys/kernel/btf/vmlinux ] || { echo "image: /sys/kernel/btf/vmlinux is missing: the build compiles the BPF programs against the kernel's BTF" >&2; exit 1; }

log "podman build -f deploy/Dockerfile -t $IMAGE (cold: several minutes; cached: seconds)"
start=$(date +%s)
podman build --isolation chroot --pull=never --layers \
  ${EP_IMAGE_NO_CACHE:+--no-cache} \
  -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t "$IMAGE" .
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE $(podman image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-12)," \
  "$((size / 1000000)) MB, in $(( $(date +%s) - start ))s"
