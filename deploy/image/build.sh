#!/usr/bin/env bash
# make image: builds deploy/Dockerfile with podman, as the chart runs it, with
# no image registry:
#   - base images: debian:bookworm and debian:bookworm-slim, the names the
#     Dockerfile uses, made by `mmdebstrap --variant=apt bookworm` (the slim one
#     without docs, man pages and locales) and `podman import`ed; only when
#     podman lacks them. The tarballs are kept in $EP_IMAGE_CACHE (default
#     .cache/image, git-ignored), so a wiped podman store re-imports them
#     without running mmdebstrap again.
#   - podman build --isolation chroot --pull=never, so nothing is pulled and no
#     OCI runtime is needed; apt inside the build uses deb.debian.org, as `make
#     deps` does. podman's layer cache keeps a rebuild quick when nothing the
#     Dockerfile copies has changed.
#   - tags edgeplane/edgeplane:<agent version> (the chart's default image),
#     writes the image id to $EP_BUILD/image.id (default build/image.id) and
#     prints the image's name, id and size.
#
#   EP_IMAGE=NAME:TAG          another tag
#   EP_IMAGE_REFRESH=1         new base images from today's Debian (then a cold build)
#   EP_IMAGE_NO_CACHE=1        podman build --no-cache
#   EP_IMAGE_MIRROR=URL|FILE   the Debian mirror (or a sources file) of the base
#                              roots, and so of apt in the build; default
#                              mmdebstrap's: deb.debian.org with security and
#                              updates, as on a stock Debian 12 host. A change
#                              needs EP_IMAGE_REFRESH=1.
set -euo pipefail
cd "$(dirname "$0")/../.."

RELEASE=bookworm
CACHE=${EP_IMAGE_CACHE:-$PWD/.cache/image}
VERSION=$(sed -n 's/^#define EP_VERSION "\(.*\)".*/\1/p' $(grep -rl --include='*.h' '^#define EP_VERSION ' agent include lib) | head -1)
IMAGE=${EP_IMAGE:-edgeplane/edgeplane:${VERSION:?image: no EP_VERSION in the headers}}
# The id of the image just built, for tests/install/image.sh: the tag may move
# if another checkout builds at the same time.
IIDFILE=${EP_BUILD:-$PWD/build}/image.id
log() { echo "image: $*"; }

for c in podman mmdebstrap; do
  command -v "$c" >/dev/null || { echo "image: $c is not installed (make deps installs it)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || log "warning: not root; rootless podman needs /etc/subuid and /etc/subgid ranges"
if ! err=$(podman info --format '{{.Store.GraphDriverName}}' 2>&1); then
  echo "image: podman cannot start here: $err" >&2; exit 1
fi
log "podman $(podman version --format '{{.Client.Version}}'), storage driver $err"

# The base images: essential + apt (mmdebstrap --variant=apt). The slim one,
# like Debian's official -slim images, keeps no documentation, man pages or
# locales (dpkg path-exclude, which stays in the image for later installs).
SLIM_OPTS=(
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*' --dpkgopt='path-exclude=/usr/share/linda/*'
)
# base NAME TARBALL MMDEBSTRAP-OPTION...: podman image NAME from the cached
# tarball, made first when missing
base() {
  local name=$1 tar=$2; shift 2
  [ "${EP_IMAGE_REFRESH:-0}" = 1 ] && { rm -f "$tar"; podman untag "$name" 2>/dev/null || true; }
  podman image exists "$name" && return 0
  if [ ! -s "$tar" ]; then
    log "making the root of $name: mmdebstrap --variant=apt $RELEASE (about a minute)"
    mkdir -p "$CACHE"
    mmdebstrap --quiet --variant=apt --format=tar "$@" "$RELEASE" "$tar.tmp" ${EP_IMAGE_MIRROR:+"$EP_IMAGE_MIRROR"}
    mv "$tar.tmp" "$tar"
  fi
  log "podman import $tar as $name"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$tar" "$name" >/dev/null
}
base "debian:$RELEASE" "$CACHE/$RELEASE.tar"
base "debian:$RELEASE-slim" "$CACHE/$RELEASE-slim.tar" "${SLIM_OPTS[@]}"

[ -r /sys/kernel/btf/vmlinux ] || { echo "image: /sys/kernel/btf/vmlinux is missing: the build compiles the BPF programs against the kernel's BTF" >&2; exit 1; }

log "podman build -f deploy/Dockerfile -t $IMAGE (cold: several minutes; cached: seconds)"
start=$(date +%s)
mkdir -p "$(dirname "$IIDFILE")"
podman build --isolation chroot --pull=never --layers \
  ${EP_IMAGE_NO_CACHE:+--no-cache} --iidfile "$IIDFILE" \
  -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t "$IMAGE" .
id=$(cat "$IIDFILE")
size=$(podman image inspect --format '{{.Size}}' "$id")
short=${id#sha256:}
log "built $IMAGE ${short:0:12}," \
  "$((size / 1000000)) MB, in $(( $(date +%s) - start ))s"
