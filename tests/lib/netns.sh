# Network namespace helpers for tests, the lab, drills and benchmarks.
# Source it; everything created through these functions is removed by
# netns_cleanup, which is installed as an EXIT/INT/TERM trap on first use.
#
# Names carry a per-run prefix ($NS_PREFIX, default "ep<pid>") so parallel or
# leftover runs never collide. Addresses only ever live inside namespaces the
# caller made.

NS_PREFIX=${NS_PREFIX:-ep$$}
_NS_LIST=()
_NS_PIDS=()
_NS_MOUNTS=()
_NS_DIRS=()
_NS_CLEANUP_HOOKS=()
_NS_TRAPPED=0

_ns_trap() {
  [ "$_NS_TRAPPED" = 1 ] && return
  _NS_TRAPPED=1
  trap 'netns_cleanup' EXIT
  trap 'netns_cleanup; exit 130' INT
  trap 'netns_cleanup; exit 143' TERM
}

# netns_add SHORT -> creates namespace "$NS_PREFIX-SHORT", prints its name
netns_add() {
  _ns_trap
  local ns="$NS_PREFIX-$1"
  ip netns add "$ns" || return 1
  _NS_LIST+=("$ns")
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
# for cleanup and prints it.
netns_bg() {
  _ns_trap
  local ns=$1; shift
  ip netns exec "$ns" "$@" &
  local pid=$!
  _NS_PIDS+=("$pid")
  echo "$pid"
}

# netns_track_pid PID : kill PID at cleanup
netns_track_pid() { _NS_PIDS+=("$1"); }

# netns_tmpdir : a scratch directory removed at cleanup, printed
netns_tmpdir() {
  _ns_trap
  local d
  d=$(mktemp -d "/tmp/$NS_PREFIX.XXXXXX")
  _NS_DIRS+=("$d")
  echo "$d"
}

# netns_bpffs DIR : mounts a bpffs at DIR (outside /sys so pins survive
# `ip netns exec`), unmounted at cleanup
netns_bpffs() {
  _ns_trap
  mkdir -p "$1"
  mount -t bpf bpf "$1" || return 1
  _NS_MOUNTS+=("$1")
}

# netns_on_cleanup "shell code" : run at cleanup (before namespaces go)
netns_on_cleanup() { _ns_trap; _NS_CLEANUP_HOOKS+=("$1"); }

netns_cleanup() {
  local p ns m d h
  for h in "${_NS_CLEANUP_HOOKS[@]}"; do eval "$h" >/dev/null 2>&1 || true; done
  _NS_CLEANUP_HOOKS=()
  for p in "${_NS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${_NS_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  _NS_PIDS=()
  for ns in "${_NS_LIST[@]}"; do
    # Processes started some other way inside the namespace go too.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  _NS_LIST=()
  for m in "${_NS_MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; rmdir "$m" 2>/dev/null || true; done
  _NS_MOUNTS=()
  for d in "${_NS_DIRS[@]}"; do rm -rf "$d"; done
  _NS_DIRS=()
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
