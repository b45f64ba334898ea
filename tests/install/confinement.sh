#!/usr/bin/env bash
# The confinement profiles, checked against the agent's own allow-list so they
# cannot drift (docs/install.md, "Confinement"):
#   - every name in deploy/seccomp/*.syscalls is a system call libseccomp
#     knows (a typo would be skipped silently by the agent);
#   - the Helm chart's seccomp profile and AppArmor copy are what
#     deploy/gen-confinement.sh makes from deploy/ (no hand edits, no drift),
#     and the profile allows every call of both lists and denies the rest;
#   - the systemd unit's SystemCallFilter= allows every call of both lists
#     (groups expanded with systemd-analyze, where installed);
#   - the AppArmor profile parses (apparmor_parser -Q: parse only; these
#     machines have no AppArmor in the kernel, so it is not enforced here).
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh

names() { sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$@" | LC_ALL=C sort -u; }
AGENT_LIST=deploy/seccomp/edgeplane-agent.syscalls
ALL=$(names "$AGENT_LIST" deploy/seccomp/container.syscalls)
JSON=deploy/helm/edgeplane/files/seccomp/edgeplane-agent.json
UNIT=deploy/systemd/edgeplane-agent.service.in
diag "allow-list: $(names "$AGENT_LIST" | wc -l) calls for the agent after start-up, $(wc -l <<<"$ALL") for the whole container/service"

# --- the names are system calls ---------------------------------------------------
unknown=$(/usr/bin/python3 - $ALL <<'PY'
import ctypes, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
# __NR_SCMP_ERROR is -1; the native arch's table (x86_64 here) has them all.
print(" ".join(n for n in sys.argv[1:] if lib.seccomp_syscall_resolve_name(n.encode()) == -1))
PY
)
check "every listed name is a system call libseccomp knows${unknown:+ (unknown: $unknown)}" [ -z "$unknown" ]

# --- the chart's copies ------------------------------------------------------------
if out=$(./deploy/gen-confinement.sh --check 2>&1); then
  ok "chart's seccomp profile and AppArmor profile are deploy/gen-confinement.sh's output"
else
  not_ok "chart's profiles are deploy/gen-confinement.sh's output (run it)"; echo "$out" | head -20 | sed 's/^/# /'
fi
check "seccomp profile: deny by default (EPERM), x86_64/arm64 only, allows exactly both lists, clone3 -> ENOSYS" \
  /usr/bin/python3 - "$JSON" $ALL <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); want = set(sys.argv[2:])
allow = {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
enosys = [r for r in p["syscalls"] if r["names"] == ["clone3"]]
ok = (p["defaultAction"] == "SCMP_ACT_ERRNO" and p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
      and allow == want - {"clone3"} and enosys and enosys[0]["errnoRet"] == 38)
if not ok:
    print("missing:", sorted(want - allow - {"clone3"}), "extra:", sorted(allow - want))
sys.exit(0 if ok else 1)
PY

# --- the systemd unit ---------------------------------------------------------------
FILTER=$(sed -n 's/^SystemCallFilter=//p' "$UNIT")
check "unit: SystemCallFilter= set ($FILTER), native architecture only" \
  bash -c "[ -n '$FILTER' ] && grep -qx 'SystemCallArchitectures=native' '$UNIT'"
if command -v systemd-analyze >/dev/null 2>&1; then
  expand() {  # the calls a SystemCallFilter= item allows, groups expanded
    case $1 in
      @*) systemd-analyze syscall-filter "$1" 2>/dev/null | sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e '/^$/d' |
            tail -n +2 | while read -r n; do expand "$n"; done;;
      *) echo "$1";;
    esac
  }
  allowed=$(for f in $FILTER; do expand "$f"; done | sort -u)
  missing=$(comm -23 <(echo "$ALL") <(echo "$allowed") | paste -sd' ')
  check "unit: SystemCallFilter= allows every call of both lists ($(wc -l <<<"$allowed") calls; systemd $(systemd-analyze --version | awk 'NR==1{print $2}'))${missing:+; missing: $missing}" \
    [ -z "$missing" ]
else
  ok "unit: SystemCallFilter= covers the lists # SKIP systemd-analyze not installed"
fi

# --- AppArmor: parsed, not enforced ---------------------------------------------------
if command -v apparmor_parser >/dev/null 2>&1; then
  if out=$(apparmor_parser -Q -K -T deploy/apparmor/edgeplane-agent 2>&1 | grep -v "Cache read/write disabled"); [ -z "$out" ] &&
     apparmor_parser -Q -K -T deploy/apparmor/edgeplane-agent >/dev/null 2>&1; then
    ok "AppArmor profile parses (apparmor_parser -Q; not enforced: $( [ -d /sys/kernel/security/apparmor ] && echo 'AppArmor is in this kernel' || echo 'no AppArmor in this kernel'))"
  else
    not_ok "AppArmor profile parses (apparmor_parser -Q)"; echo "$out" | sed 's/^/# /' | head
  fi
  prof=$(apparmor_parser -Q -K -T -N deploy/apparmor/edgeplane-agent 2>/dev/null | paste -sd' ')
  check "AppArmor profiles: edgeplane-agent and its dnsmasq child ($prof)" \
    [ "$prof" = "edgeplane-agent edgeplane-agent//dnsmasq" ]
else
  not_ok "apparmor_parser installed (make deps: Debian package apparmor)"
fi
tap_done
