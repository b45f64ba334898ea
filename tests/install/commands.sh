#!/usr/bin/env bash
# Every external command that the scripts under tests/ and deploy/ and the
# Makefile call is provided by what `make deps` installs (tests/lib/deps.sh
# PKGS and their dependencies) or by a minimal Debian 12 root (priority
# required + important). One check per command, naming the command, a place
# that calls it and the package that provides it; a command that is not
# installed at all, or whose package is neither, fails.
#
# The scan is static (tests/lib/shell_commands.py): first words of commands,
# after | && || ; $( and the wrappers (ip netns exec NS, netns_exec NS, timeout
# N, ...). Shell builtins and keywords, functions defined in the scanned
# scripts and the project's own binaries are not external commands. ALLOW
# lists the rest of what the scan cannot tell apart, each with its reason.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh

command -v dpkg-query >/dev/null 2>&1 || { tap_skip "commands come from make deps" "not a Debian system (no dpkg-query)"; tap_done; exit 0; }
command -v python3 >/dev/null 2>&1 || { not_ok "python3 for the scan (make deps installs it)"; tap_done; exit 1; }

# Not Debian packages on purpose, or not commands at all.
declare -A ALLOW=(
  [helm]="make deps unpacks it into .tools/bin (from npm), not a Debian package"
  [edgeplane]="the project's CLI (make)"
  [edgeplane-agent]="the project's daemon (make)"
)
# deps.sh installs npm only where Node.js is missing: another Node.js's npm is fine.
declare -A ALSO_OK=([npm]=nodejs)
# A hint for the package of a command that is not installed here.
declare -A HINT=([ping]=iputils-ping [bc]=bc [dig]=bind9-dnsutils [host]=bind9-host
  [man]=man-db [groff]=groff-base [ss]=iproute2 [nc]=netcat-openbsd [jq]=jq [xxd]=xxd)

mapfile -t FILES < <(find tests deploy \( -name '*.sh' -o -name '*.bash' -o -name '*.mk' \) -type f | sort)
FILES+=(Makefile)

# Functions the scripts define, builtins and keywords: not external commands.
declare -A NOT_EXT=()
while read -r f; do NOT_EXT[$f]=1; done < <(
  grep -ohE '^[[:space:]]*(function[[:space:]]+)?[A-Za-z_][A-Za-z0-9_-]*[[:space:]]*\(\)' "${FILES[@]}" |
    sed -E 's/function//; s/[[:space:](){}]//g'
  compgen -b; compgen -k)
# The project's own binaries: tests/tools, tests/bench, the fuzzers.
for f in tests/tools/*.c tests/bench/*.c tests/fuzz/fuzz_*.c; do
  b=${f##*/}; NOT_EXT[${b%.c}]=1
done
for f in tests/bench/*.sh; do b=${f##*/}; NOT_EXT[${b%.sh}]=1; done   # tests/bench/run.sh NAME

# Packages make deps installs, with their dependencies (no recommends: deps.sh
# passes --no-install-recommends), and the minimal base.
mapfile -t PKGS < <(sed -n '/^PKGS=(/,/^)/p' tests/lib/deps.sh | sed 's/#.*//; s/PKGS=(//; s/)//' | tr ' ' '\n' | grep -v '^$')
PKGS+=(npm)   # deps.sh adds it where Node.js is missing
declare -A DEPS=() BASE=()
while read -r p; do DEPS[${p%%:*}]=1; done < <(
  apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${PKGS[@]}" 2>/dev/null | grep -E '^[a-z0-9]')
while read -r p prio; do
  case "$prio" in required|important) BASE[${p%%:*}]=1;; esac
done < <(dpkg-query -W -f '${Package} ${Priority}\n')
diag "${#PKGS[@]} packages in deps.sh (${#DEPS[@]} with dependencies), ${#BASE[@]} installed at priority required/important"

# The package that owns a command's file (merged /usr: /bin/x is /usr/bin/x).
pkg_of() {
  local path=$1 c p
  for c in "$path" "$(readlink -f "$path")" "${path#/usr}" "/usr$path" \
    "$(readlink -f "$path" | sed 's|^/usr||')"; do
    [ -n "$c" ] || continue
    p=$(dpkg -S "$c" 2>/dev/null | grep -v '^diversion' | head -1 | cut -d: -f1)
    [ -n "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

declare -A WHERE=()
while read -r cmd where; do
  [ -n "${WHERE[$cmd]:-}" ] || WHERE[$cmd]=$where
done < <(python3 tests/lib/shell_commands.py "${FILES[@]}")

n=0
for cmd in $(printf '%s\n' "${!WHERE[@]}" | sort); do
  [ -n "${NOT_EXT[$cmd]:-}" ] && continue
  if [ -n "${ALLOW[$cmd]:-}" ]; then diag "$cmd: allowed (${ALLOW[$cmd]})"; continue; fi
  n=$((n + 1))
  w=${WHERE[$cmd]}
  # Debian's own PATH: a pyenv shim or /usr/local copy says nothing about a fresh root.
  path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$cmd" 2>/dev/null)
  if [ -z "$path" ] || [ "${path#/}" = "$path" ]; then
    not_ok "$cmd ($w): not installed; package ${HINT[$cmd]:-unknown} -- add it to PKGS in tests/lib/deps.sh"
    continue
  fi
  if ! pkg=$(pkg_of "$path"); then
    not_ok "$cmd ($w): $path belongs to no Debian package"
    continue
  fi
  if [ -n "${DEPS[$pkg]:-}" ]; then ok "$cmd ($w): $pkg, installed by make deps"
  elif [ -n "${BASE[$pkg]:-}" ]; then ok "$cmd ($w): $pkg, in a minimal Debian (priority required/important)"
  elif [ "${ALSO_OK[$cmd]:-}" = "$pkg" ]; then ok "$cmd ($w): $pkg (deps.sh keeps a Node.js already installed)"
  else not_ok "$cmd ($w): package $pkg is neither installed by make deps nor in a minimal Debian -- add it to PKGS in tests/lib/deps.sh"
  fi
done
[ "$n" -gt 10 ] || not_ok "the scan found $n external commands: it is broken"
tap_done
