#!/bin/sh
# runtime-packages.sh BINARY...
# Prints, one a line and sorted, the Debian packages that ship every shared
# library the binaries load (ldd: their NEEDED entries and those of the
# libraries, as the dynamic loader resolves them). deploy/Dockerfile runs it in
# its build stage and installs the list in the runtime stage, so a library the
# binaries start linking (libsystemd, ...) cannot be left out of the image.
# Fails, naming it, on a library that is not found or that no package ships.
set -eu
out=$(for b in "$@"; do ldd "$b" || { echo "runtime-packages: ldd $b failed" >&2; exit 1; }; done)
if echo "$out" | grep -q 'not found'; then
  echo "runtime-packages: unresolved libraries:" >&2
  echo "$out" | grep 'not found' >&2
  exit 1
fi
# the package of a path; usr-merged roots: dpkg may know it under /lib or /usr/lib
pkg_of() {
  for p in "$1" "/usr$1" "${1#/usr}" "$(readlink -f "$1")"; do
    dpkg -S "$p" 2>/dev/null | grep -v '^diversion' | head -1 | cut -d: -f1 | grep . && return 0
  done
  return 1
}
echo "$out" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
  while read -r lib; do
    pkg_of "$lib" || { echo "runtime-packages: no Debian package ships $lib" >&2; exit 1; }
  done | sort -u
