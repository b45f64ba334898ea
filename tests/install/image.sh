#!/usr/bin/env bash
# The container image, built for real and checked from inside.
#  - `make image` (deploy/image/build.sh) builds deploy/Dockerfile with podman
#    (--isolation chroot, base images from mmdebstrap, no registry); a second
#    `make image` with nothing changed must come entirely from the layer cache.
#  - The image's root (podman image mount) is entered with chroot in a private
#    mount namespace (podman run cannot start containers here: crun needs
#    CAP_SYS_RESOURCE): every shared library of every executable in the image
#    resolves (ldd), the agent and the CLI print their version, the configs
#    the chart renders pass `edgeplane-agent --check-config`, dnsmasq and
#    ip/tc run, the packages the build stage derived are installed.
#  - Its entrypoint, default command, version label and name match the chart.
# Needs root and podman (make deps). Never skipped: where podman cannot build,
# the test fails and says why. A cold build takes minutes (base root, apt,
# compile); a cached one seconds (deploy/image/build.sh).
set -u
cd "$(dirname "$0")/../.." || exit 1
export EP_ROOT=${EP_ROOT:-$PWD}
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/install/lib/render.bash

DF=deploy/Dockerfile
CHART=deploy/helm/edgeplane
LOGDIR=${EP_BUILD:-$EP_ROOT/build}/test-logs
IIDFILE=${EP_BUILD:-$EP_ROOT/build}/image.id    # written by make image
mkdir -p "$LOGDIR"
VERSION=$(sed -n 's/^#define EP_VERSION "\(.*\)".*/\1/p' $(grep -rl --include='*.h' '^#define EP_VERSION ' agent include lib) | head -1)
IMAGE=${EP_IMAGE:-edgeplane/edgeplane:$VERSION}
export EP_IMAGE=$IMAGE
TMP=$(netns_tmpdir)
ROOTFS=""
IID=""   # the image by id: the tag may move if another checkout builds meanwhile
image_cleanup() { [ -n "$ROOTFS" ] && podman image unmount "$IID" >/dev/null 2>&1; ROOTFS=""; }
trap 'image_cleanup; netns_cleanup' EXIT
trap 'image_cleanup; netns_cleanup; exit 130' INT
trap 'image_cleanup; netns_cleanup; exit 143' TERM

# --- static: what the build cannot show -----------------------------------------
check "build stage is Debian 12 (bookworm), the runtime stage its slim variant" \
  bash -c "grep -qx 'ARG DEBIAN_RELEASE=bookworm' '$DF' && grep -q '^FROM debian:\${DEBIAN_RELEASE} AS build' '$DF' && grep -q '^FROM debian:\${DEBIAN_RELEASE}-slim' '$DF'"
check "the chart's default image is the one make image tags (edgeplane/edgeplane:<appVersion> = $VERSION)" \
  bash -c "grep -qx '  repository: edgeplane/edgeplane' '$CHART/values.yaml' && grep -qx 'appVersion: \"$VERSION\"' '$CHART/Chart.yaml'"

# --- build -----------------------------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null; then
  not_ok "podman and mmdebstrap are installed (make deps installs them)"; tap_done; exit 1
fi
# build N: make image, its output in $LOGDIR/image-build-N.log; the build
# script's own lines ("image: ...") shown as diagnostics
build() {
  local log=$LOGDIR/image-build-$1.log
  make --no-print-directory image >"$log" 2>&1 &
  local pid=$!
  tail -n +1 -f --pid=$pid "$log" 2>/dev/null | grep --line-buffered '^image: ' | sed -u 's/^/# /'
  wait $pid
}
diag "building image $IMAGE (make image; log: $LOGDIR/image-build-1.log) ..."
start=$(date +%s)
if build 1; then
  t1=$(( $(date +%s) - start ))
  cached=$(grep -c -- '--> Using cache' "$LOGDIR/image-build-1.log")
  steps=$(grep -cE 'STEP [0-9]+/[0-9]+: ' "$LOGDIR/image-build-1.log")
  ok "make image builds $DF with podman ($t1 s; $cached of $steps steps from the cache)"
else
  not_ok "make image builds $DF with podman (status $?)"
  grep -v '^ *$' "$LOGDIR/image-build-1.log" | tail -30 | sed 's/^/#   /'
  tap_done; exit 1
fi
diag "rebuilding with nothing changed ..."
start=$(date +%s)
if build 2; then
  t2=$(( $(date +%s) - start ))
  cached=$(grep -c -- '--> Using cache' "$LOGDIR/image-build-2.log")
  steps=$(grep -cE 'STEP [0-9]+/[0-9]+: ' "$LOGDIR/image-build-2.log")
  # every step but the FROMs comes from the cache
  froms=$(grep -cE 'STEP [0-9]+/[0-9]+: FROM ' "$LOGDIR/image-build-2.log")
  check "a second make image with nothing changed comes from the cache ($t2 s; $cached of $steps steps)" \
    [ "$cached" -eq $((steps - froms)) ]
else
  not_ok "a second make image with nothing changed succeeds"
  tail -30 "$LOGDIR/image-build-2.log" | sed 's/^/#   /'
fi
IID=$(cat "$IIDFILE" 2>/dev/null)
if [ -z "$IID" ] || ! size=$(podman image inspect --format '{{.Size}}' "$IID"); then
  not_ok "make image wrote the id of the image it built to $IIDFILE"; tap_done; exit 1
fi
diag "image $IMAGE: ${IID:7:12}, $((size / 1000000)) MB"

# --- metadata ---------------------------------------------------------------------------
inspect() { podman image inspect --format "$1" "$IID"; }
check "ENTRYPOINT is /usr/sbin/edgeplane-agent, the path the chart runs" \
  bash -c "[ '$(inspect '{{json .Config.Entrypoint}}')' = '[\"/usr/sbin/edgeplane-agent\"]' ] && grep -q 'define \"edgeplane.agentPath\" -}}/usr/sbin/edgeplane-agent' '$CHART/templates/_helpers.tpl'"
check "CMD is --config /etc/edgeplane/config.yaml" \
  [ "$(inspect '{{json .Config.Cmd}}')" = '["--config","/etc/edgeplane/config.yaml"]' ]
check "version label is the agent's version ($VERSION)" \
  [ "$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$VERSION" ]

# --- inside the image ------------------------------------------------------------------
if ! ROOTFS=$(podman image mount "$IID" 2>"$TMP/mount.err") || [ ! -d "$ROOTFS/usr" ]; then
  not_ok "podman image mount $IMAGE: $(cat "$TMP/mount.err")"; ROOTFS=""; tap_done; exit 1
fi
diag "image root: $ROOTFS"
mkdir -p "$TMP/in"
# inside CMD...: runs CMD chrooted into the image (read-only), with /proc, /dev
# and $TMP/in at /mnt, in a private mount namespace that ends with it
inside() {
  unshare --mount --propagation=private bash -c '
    r=$1 in=$2; shift 2
    mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && mount --bind "$in" "$r/mnt" || exit 125
    exec chroot "$r" "$@"' inside "$ROOTFS" "$TMP/in" "$@"
}

# Every shared library of every executable resolves: first the binaries the
# image exists for, then every ELF file in the image's bin and sbin folders.
for b in /usr/sbin/edgeplane-agent /usr/bin/edgeplane /usr/sbin/dnsmasq /usr/bin/ip /usr/sbin/tc; do
  p=$b; [ -e "$ROOTFS$p" ] || p=${b/\/usr/}
  out=$(inside ldd "$p" 2>&1); rc=$?
  n=$(grep -c '=>' <<<"$out")
  if [ $rc -eq 0 ] && ! grep -q 'not found' <<<"$out"; then
    ok "ldd $p in the image: all $n shared libraries resolve"
  else
    not_ok "ldd $p in the image: every shared library resolves (status $rc)"
    grep -E 'not found|ldd|such' <<<"$out" | sed 's/^/#   /' | head
  fi
done
find "$ROOTFS/usr/bin" "$ROOTFS/usr/sbin" -type f -perm /111 2>/dev/null | while read -r f; do
  [ "$(head -c4 "$f" | tr -d '\0')" = $'\x7fELF' ] && echo "${f#"$ROOTFS"}"
done >"$TMP/in/elves"
inside sh -c 'while read -r f; do ldd "$f" 2>&1 | grep "not found" | sed "s|^|$f: |"; done </mnt/elves' >"$TMP/unresolved" 2>&1
check "every ELF executable of the image's /usr/bin and /usr/sbin ($(wc -l <"$TMP/in/elves")) finds all its libraries$( [ -s "$TMP/unresolved" ] && echo ": $(head -5 "$TMP/unresolved" | paste -sd';' -)")" \
  bash -c "[ -s '$TMP/in/elves' ] && [ ! -s '$TMP/unresolved' ]"

# The packages the build stage derived from the binaries' libraries are installed.
if [ -s "$ROOTFS/usr/share/edgeplane/runtime-packages" ]; then
  diag "runtime packages (derived in the build stage): $(paste -sd' ' "$ROOTFS/usr/share/edgeplane/runtime-packages")"
  cp "$ROOTFS/usr/share/edgeplane/runtime-packages" "$TMP/in/pkgs"
  missing=$(inside sh -c 'while read -r p; do dpkg-query -W -f="\${Status}\n" "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done </mnt/pkgs' | paste -sd' ' -)
  check "the $(wc -l <"$TMP/in/pkgs") packages of /usr/share/edgeplane/runtime-packages are installed${missing:+ (missing: $missing)}" [ -z "$missing" ]
else
  not_ok "the image has /usr/share/edgeplane/runtime-packages (written by the build stage)"
fi

# The binaries run.
out=$(inside /usr/sbin/edgeplane-agent --version 2>&1); rc=$?
check "edgeplane-agent --version in the image: '$out'" bash -c "[ $rc -eq 0 ] && [ '$(awk '{print $2; exit}' <<<"$out")' = '$VERSION' ]"
out=$(inside /usr/bin/edgeplane --version 2>&1); rc=$?
check "edgeplane --version in the image: '$out'" bash -c "[ $rc -eq 0 ] && grep -qF '$VERSION' <<<'$out'"
out=$(inside dnsmasq --version 2>&1 | head -1); rc=$?
check "dnsmasq runs in the image: '$out'" bash -c "[ $rc -eq 0 ] && grep -q '^Dnsmasq version' <<<'$out'"
out=$(inside sh -c 'ip -V && tc -V' 2>&1 | paste -sd';' -)
check "ip and tc run in the image: '$out'" bash -c "grep -q '^ip utility' <<<'$out' && grep -q 'tc utility' <<<'$out'"
nbpf=$(ls xdp/*.bpf.c tc/*.bpf.c | wc -l)
check "the $nbpf BPF objects are in /usr/lib/edgeplane/bpf" \
  [ "$(ls "$ROOTFS"/usr/lib/edgeplane/bpf/*.bpf.o 2>/dev/null | wc -l)" -eq "$nbpf" ]

# The configs the chart renders, and the image's default one, pass --check-config.
render_init
if [ ! -x "$HELM" ]; then
  not_ok "helm at $HELM (make deps unpacks it)"
else
  declare -A COUNTS=([default]="0 services, 0 backends, 0 interfaces" [full]="4 services, 7 backends, 3 interfaces"
    [minimal]="1 services, 1 backends, 2 interfaces")
  for s in default full minimal; do
    f=""; [ "$s" = default ] || f=$CHART/ci/$s-values.yaml
    if ! render "$s" ${f:+-f "$f"}; then
      not_ok "helm template ($s)"; sed 's/^/# /' "$RENDER_DIR/$s.err" | head; continue
    fi
    config_of "$s" "$TMP/in/$s.yaml"
    out=$(inside /usr/sbin/edgeplane-agent --check-config --config "/mnt/$s.yaml" 2>&1); rc=$?
    if [ $rc -eq 0 ] && grep -q "OK (${COUNTS[$s]})" <<<"$out"; then
      ok "$s: the chart's rendered config passes --check-config in the image (${COUNTS[$s]})"
    else
      not_ok "$s: the chart's rendered config passes --check-config in the image (status $rc)"
      echo "$out" | sed 's/^/#   /' | head -20
    fi
  done
fi
out=$(inside /usr/sbin/edgeplane-agent --check-config --config /etc/edgeplane/config.yaml 2>&1); rc=$?
check "the image's default config (/etc/edgeplane/config.yaml, the CMD's) passes --check-config" [ $rc -eq 0 ]
[ $rc -eq 0 ] || echo "$out" | sed 's/^/#   /' | head

image_cleanup
tap_done
