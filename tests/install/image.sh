#!/usr/bin/env bash
# deploy/Dockerfile stays in step with `make deps` and `make install`. No
# container engine runs here, so the image is not built; instead:
#  - its build stage installs exactly the "# build" packages of tests/lib/deps.sh;
#  - the files it COPYs are enough to build: they are copied alone into an
#    empty directory, where `make all` and `make install PREFIX=/usr DESTDIR=/out`
#    run as in the Dockerfile;
#  - its runtime stage installs exactly the Debian packages that provide the
#    shared libraries those binaries need (NEEDED entries, dpkg -S), and only
#    tools that deps.sh installs too;
#  - the agent path, version and image name match the chart.
set -u
cd "$(dirname "$0")/../.." || exit 1
export EP_ROOT=${EP_ROOT:-$PWD}
source tests/lib/tap.sh
source tests/lib/netns.sh

DF=deploy/Dockerfile
CHART=deploy/helm/edgeplane
AGENT=${EP_BUILD:-$EP_ROOT/build}/edgeplane-agent
VERSION=$("$AGENT" --version | awk '{print $2}')
TMP=$(netns_tmpdir)

# stage N: the Dockerfile's Nth stage (1-based), continuation lines joined
stage() { sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$DF" | awk -v n="$1" '/^FROM /{s++} s==n'; }
# apt_pkgs: package names of the apt-get install lines on stdin
apt_pkgs() {
  grep -E 'apt-get install' | sed 's/.*apt-get install//; s/&&.*//' | tr ' ' '\n' |
    grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u
}
# deps_group START END: the packages of tests/lib/deps.sh between two comments
deps_group() {
  sed -n "/^  # $1/,/^  # $2/p" tests/lib/deps.sh | grep -v '^ *#' | tr -s ' ' '\n' | grep -E '^[a-z0-9]' | sort -u
}

# --- build stage = make deps' build packages ---------------------------------
stage 1 | apt_pkgs >"$TMP/df-build"
deps_group build "runtime and lab" >"$TMP/deps-build"
d=$(diff "$TMP/deps-build" "$TMP/df-build" | grep '^[<>]' | paste -sd' ' -)
check "build stage installs exactly deps.sh's build packages ($(wc -l <"$TMP/df-build"))${d:+ (differ: $d; < deps.sh, > Dockerfile)}" [ -z "$d" ]
check "build stage is Debian 12 (bookworm), the runtime stage its slim variant" \
  bash -c "grep -qx 'ARG DEBIAN_RELEASE=bookworm' '$DF' && [ \"\$(grep -c '^FROM debian:\${DEBIAN_RELEASE}' '$DF')\" = 2 ] && grep -q '^FROM debian:\${DEBIAN_RELEASE}-slim' '$DF'"
build_cmds_ok() { stage 1 | grep -qF 'make -j"$(nproc)" all' && stage 1 | grep -qF 'make install PREFIX=/usr DESTDIR=/out'; }
check "build stage runs make all and make install PREFIX=/usr DESTDIR=/out" build_cmds_ok

# --- the COPYed files alone build and install ------------------------------------
SRC=$TMP/src
mkdir -p "$SRC"
copies=$(stage 1 | awk '$1 == "COPY" && $2 !~ /^--from/ {for (i = 2; i < NF; i++) print $i}')
for c in $copies; do
  mkdir -p "$SRC/$(dirname "${c%/}")" && cp -a "${c%/}" "$SRC/${c%/}"
done
diag "COPY: $(echo $copies)"
if (cd "$SRC" && make -j"$(nproc)" all >"$TMP/build.log" 2>&1 && make install PREFIX=/usr DESTDIR="$TMP/out" >>"$TMP/build.log" 2>&1); then
  ok "the Dockerfile's COPY set builds and installs on its own (make all; make install PREFIX=/usr DESTDIR=/out)"
else
  not_ok "the Dockerfile's COPY set builds and installs on its own"; tail -20 "$TMP/build.log" | sed 's/^/# /'
fi
OUT=$TMP/out
check "the image gets /usr/sbin/edgeplane-agent and /usr/bin/edgeplane" test -x "$OUT/usr/sbin/edgeplane-agent" -a -x "$OUT/usr/bin/edgeplane"
check "... and /etc/edgeplane/config.yaml (the CMD's default config)" \
  bash -c "grep -q '\"--config\", \"/etc/edgeplane/config.yaml\"' '$DF' && cmp -s '$OUT/etc/edgeplane/config.yaml' deploy/etc/config.yaml"
check "ENTRYPOINT and the chart run the same path, /usr/sbin/edgeplane-agent" \
  bash -c "grep -q '^ENTRYPOINT \[\"/usr/sbin/edgeplane-agent\"\]' '$DF' && grep -q 'define \"edgeplane.agentPath\" -}}/usr/sbin/edgeplane-agent' '$CHART/templates/_helpers.tpl'"

# --- runtime stage = the packages of the binaries' shared libraries ---------------
stage 2 | apt_pkgs >"$TMP/df-run"
lib_pkg() { # the Debian package that ships a shared library soname
  local p
  p=$(ldconfig -p | awk -v l="$1" '$1 == l {print $NF; exit}')
  [ -n "$p" ] || return 1
  # usr-merged hosts: dpkg may know the library under /lib or under /usr/lib
  { dpkg -S "$p" || dpkg -S "$(readlink -f "$p")"; } 2>/dev/null | head -1 | cut -d: -f1
}
: >"$TMP/needed"
for b in "$OUT/usr/sbin/edgeplane-agent" "$OUT/usr/bin/edgeplane"; do
  [ -f "$b" ] || continue
  readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
done | sort -u | while read -r so; do
  pkg=$(lib_pkg "$so") || pkg=""
  case $pkg in libc6|"") ;; *) echo "$pkg";; esac     # libc6 is in every image
done | sort -u >"$TMP/needed"
grep '^lib' "$TMP/df-run" >"$TMP/df-libs"
d=$(diff "$TMP/needed" "$TMP/df-libs" | grep '^[<>]' | paste -sd' ' -)
check "runtime stage installs exactly the libraries' packages ($(paste -sd' ' "$TMP/needed"))${d:+ (differ: $d; < needed, > Dockerfile)}" \
  [ -s "$TMP/needed" ] && [ -z "$d" ]
deps_group "runtime and lab" "tests and benchmarks" >"$TMP/deps-run"
extra=$(grep -v '^lib' "$TMP/df-run" | grep -vxF -f "$TMP/deps-run" | paste -sd' ' -)
check "its tools ($(grep -v '^lib' "$TMP/df-run" | paste -sd' ' -)) are runtime packages of deps.sh too${extra:+ (not: $extra)}" [ -z "$extra" ]
check "dnsmasq (supervised by the agent in its container) is in the image" grep -qx dnsmasq-base "$TMP/df-run"

# --- image name and version ----------------------------------------------------------
check "image version label is the agent's version ($VERSION)" grep -q "org.opencontainers.image.version=\"$VERSION\"" "$DF"
check "the chart's default image is the one the Dockerfile's build command tags (edgeplane/edgeplane:$VERSION)" \
  bash -c "grep -qx '  repository: edgeplane/edgeplane' '$CHART/values.yaml' && grep -q 'docker build -f deploy/Dockerfile -t edgeplane/edgeplane:$VERSION \.' '$DF'"
check "docs/install.md says the image is not built in CI" grep -qi "not built in CI" docs/install.md

tap_done
