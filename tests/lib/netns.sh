# Network namespace helpers for tests, the lab, drills and benchmarks.
# Source it; everything created through these functions is removed by
# netns_cleanup, which is installed as an EXIT/INT/TERM trap on first use.
#
# Names carry a per-run prefix ($NS_PREFIX, default "ep<pid>") so parallel or
# leftover runs never collide. Addresses only ever live inside namespaces the
# caller made.

NS_PREFIX=${NS_PREFIX:-ep$$}
# Everything created is recorded in a state file keyed by the top-level
# shell's pid ($$ is the same in subshells), so helpers work when called as
# $(netns_add x) and cleanup still sees what subshells created.
_NS_STATE=${_NS_STATE:-/tmp/.netns-state.$$}
: >>"$_NS_STATE"
_ns_record() { echo "$1 $2" >>"$_NS_STATE"; }

# The trap is installed once, by the top-level shell, when the library is
# sourced; subshells never run cleanup.
if [ "${BASHPID:-$$}" = "$$" ] && [ -z "${_NS_TRAPPED:-}" ]; then
  _NS_TRAPPED=1
  trap 'netns_cleanup' EXIT
  trap 'netns_cleanup; exit 130' INT
  trap 'netns_cleanup; exit 143' TERM
fi

# netns_add SHORT -> creates namespace "$NS_PREFIX-SHORT", prints its name
netns_add() {
  local ns="$NS_PREFIX-$1"
  ip netns add "$ns" || return 1
  _ns_record ns "$ns"
  ip -n "$ns" link set lo up
  echo "$ns"
}

# netns_name SHORT -> full namespace name
netns_name() { echo "$NS_PREFIX-$1"; }

# netns_veth NS_A IF_A NS_B IF_B : a veth pair between two namespaces, both up
netns_veth() {
  local a=$1 ia=$2 b=$3 ib=$4
  ip link add "$ia" netns "$a" type veth peer name "$ib" netns "$b" || return 1
  ip -n "$a" link set "$ia" up
  ip -n "$b" link set "$ib" up
}

# netns_exec NS cmd... (no new /sys: bpffs pins must live outside /sys)
netns_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# netns_bg NS cmd... : starts a background process in NS, remembers its pid
# for cleanup and prints it. Redirect its output yourself if it is chatty:
#   pid=$(netns_bg NS cmd >log 2>&1)   would hang: use netns_bg_log instead.
netns_bg() {
  local ns=$1; shift
  ip netns exec "$ns" "$@" &
  local pid=$!
  _ns_record pid "$pid"
  echo "$pid"
}

# netns_bg_log LOG NS cmd... : like netns_bg, output to LOG, pid printed
netns_bg_log() {
  local log=$1 ns=$2; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  _ns_record pid "$pid"
  echo "$pid"
}

# netns_track_pid PID : kill PID at cleanup
netns_track_pid() { _ns_record pid "$1"; }

# netns_tmpdir : a scratch directory removed at cleanup, printed
netns_tmpdir() {
  local d
  d=$(mktemp -d "/tmp/$NS_PREFIX.XXXXXX")
  _ns_record dir "$d"
  echo "$d"
}

# netns_bpffs DIR : mounts a bpffs at DIR (outside /sys so pins survive
# `ip netns exec`), unmounted at cleanup
netns_bpffs() {
  mkdir -p "$1"
  mount -t bpf bpf "$1" || return 1
  _ns_record mount "$1"
}

# netns_on_cleanup "shell code" : run at cleanup (before namespaces go)
netns_on_cleanup() { _ns_record hook "$1"; }

netns_cleanup() {
  [ -f "$_NS_STATE" ] || return 0
  local kind arg p
  local -a hooks=() pids=() nss=() mounts=() dirs=()
  while read -r kind arg; do
    case $kind in
      hook) hooks+=("$arg");; pid) pids+=("$arg");; ns) nss+=("$arg");;
      mount) mounts+=("$arg");; dir) dirs+=("$arg");;
    esac
  done <"$_NS_STATE"
  rm -f "$_NS_STATE"
  for arg in "${hooks[@]}"; do eval "$arg" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  for arg in "${nss[@]}"; do
    # Processes started some other way inside the namespace go too.
    for p in $(ip netns pids "$arg" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$arg" 2>/dev/null || true
  done
  for arg in "${mounts[@]}"; do umount -l "$arg" 2>/dev/null || true; rmdir "$arg" 2>/dev/null || true; done
  for arg in "${dirs[@]}"; do rm -rf "$arg"; done
}

# wait_for SECONDS cmd... : polls cmd every 0.1 s until it succeeds (bounded)
wait_for() {
  local secs=$1; shift
  local i n=$((secs * 10))
  for ((i = 0; i < n; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# Debian's python3 with scapy/pytest (the first python3 on PATH may lack them)
PY3=/usr/bin/python3
