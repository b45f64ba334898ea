# The edgeplane lab: network namespaces joined by veth pairs, used by
# `make demo`, the end-to-end tests, drills and benchmarks. Source it (after
# tests/lib/netns.sh); everything it creates is removed on exit by the
# netns.sh trap.
#
#   client ─ eth0 ══ up0 ─ node ─ pod1 ══ eth0 ─ be1
#                              ├─ pod2 ══ eth0 ─ be2
#                              └─ podN ══ eth0 ─ beN
#
# Addresses (owned by the lab, only inside its namespaces):
#   client  10.77.1.2/24   fd77:1::2/64     (default route via the node)
#   node    10.77.1.1/24   fd77:1::1/64 on up0 (uplink: XDP load balancer)
#   be<i>   10.77.<10+i>.2/24  fd77:<10+i>::2/64 behind pod<i> (pods: TC reverse NAT)
#   VIPs    10.77.100.0/24  fd77:100::/64 (never assigned to an interface)
#
# The client stands for a machine on the wire, so it computes checksums in
# software (tx offload off); backends keep veth defaults like real pods.

LAB_ROOT=${EP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LAB_BUILD=${EP_BUILD:-$LAB_ROOT/build}
LAB_AGENT_BIN=${LAB_AGENT_BIN:-$LAB_BUILD/edgeplane-agent}
LAB_CLI_BIN=${LAB_CLI_BIN:-$LAB_BUILD/edgeplane}
LAB_TOOLS=$LAB_BUILD/tests/tools

LAB_CLIENT4=10.77.1.2
LAB_CLIENT6=fd77:1::2
LAB_NODE4=10.77.1.1
LAB_NODE6=fd77:1::1
LAB_VIP4=10.77.100.1
LAB_VIP6=fd77:100::1

lab_be4() { echo "10.77.$((10 + $1)).2"; }
lab_be6() { echo "fd77:$((10 + $1))::2"; }

# New interfaces in a lab namespace skip IPv6 duplicate address detection:
# nothing else shares these links.
lab_ns_prepare() {
  ip netns exec "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
}

lab_no_tentative() { [ -z "$(ip -n "$1" -6 addr show tentative)" ]; }

# lab_up [N_BACKENDS]
lab_up() {
  local n=${1:-3} i ns
  LAB_N=$n
  LAB_DIR=$(netns_tmpdir)
  chmod 755 "$LAB_DIR" # dnsmasq reads the preload here as an unprivileged user
  LAB_SOCK=$LAB_DIR/agent.sock
  LAB_CONFIG=$LAB_DIR/agent.yaml
  LAB_LOG=$LAB_DIR/agent.log
  # bpffs outside /sys: `ip netns exec` gives each command a fresh /sys, and
  # the pins must outlive agent restarts.
  LAB_BPFFS=/run/edgeplane-lab/$NS_PREFIX
  netns_bpffs "$LAB_BPFFS" || return 1

  LAB_NS_CLIENT=$(netns_add client) || return 1
  LAB_NS_NODE=$(netns_add node) || return 1
  lab_ns_prepare "$LAB_NS_CLIENT"
  lab_ns_prepare "$LAB_NS_NODE"
  netns_veth "$LAB_NS_CLIENT" eth0 "$LAB_NS_NODE" up0 || return 1
  ip -n "$LAB_NS_CLIENT" addr add $LAB_CLIENT4/24 dev eth0
  ip -n "$LAB_NS_CLIENT" addr add $LAB_CLIENT6/64 dev eth0 nodad
  ip -n "$LAB_NS_NODE" addr add $LAB_NODE4/24 dev up0
  ip -n "$LAB_NS_NODE" addr add $LAB_NODE6/64 dev up0 nodad
  ip -n "$LAB_NS_CLIENT" route add default via $LAB_NODE4
  ip -n "$LAB_NS_CLIENT" -6 route add default via $LAB_NODE6
  ip netns exec "$LAB_NS_CLIENT" ethtool -K eth0 tx off >/dev/null 2>&1
  # The client opens tens of thousands of short connections to few
  # destinations: without TIME_WAIT reuse connect() slows to milliseconds
  # hunting for a free port, which would be measured as network latency.
  ip netns exec "$LAB_NS_CLIENT" sysctl -qw net.ipv4.tcp_tw_reuse=1 \
    net.ipv4.ip_local_port_range="1024 65535"
  ip netns exec "$LAB_NS_NODE" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

  LAB_NS_BE=()
  for ((i = 1; i <= n; i++)); do
    local ns
    ns=$(netns_add "be$i") || return 1
    LAB_NS_BE[$i]=$ns
    lab_ns_prepare "$ns"
    netns_veth "$LAB_NS_NODE" "pod$i" "$ns" eth0 || return 1
    ip -n "$LAB_NS_NODE" addr add "10.77.$((10 + i)).1/24" dev "pod$i"
    ip -n "$LAB_NS_NODE" addr add "fd77:$((10 + i))::1/64" dev "pod$i" nodad
    ip -n "$ns" addr add "$(lab_be4 "$i")/24" dev eth0
    ip -n "$ns" addr add "$(lab_be6 "$i")/64" dev eth0 nodad
    ip -n "$ns" route add default via "10.77.$((10 + i)).1"
    ip -n "$ns" -6 route add default via "fd77:$((10 + i))::1"
  done
  # Link-local addresses still run DAD; until it ends neighbour discovery
  # stalls and the first IPv6 flows lose packets.
  for ns in "$LAB_NS_CLIENT" "$LAB_NS_NODE" "${LAB_NS_BE[@]}"; do
    wait_for 5 lab_no_tentative "$ns" || echo "lab: $ns still has tentative IPv6 addresses" >&2
  done
  # Neighbours resolved once up front keep the first measured packets honest.
  ip netns exec "$LAB_NS_CLIENT" ping -c1 -W2 $LAB_NODE4 >/dev/null 2>&1
  ip netns exec "$LAB_NS_CLIENT" ping -6 -c1 -W2 $LAB_NODE6 >/dev/null 2>&1
  for ((i = 1; i <= n; i++)); do
    ip netns exec "$LAB_NS_NODE" ping -c1 -W2 "$(lab_be4 "$i")" >/dev/null 2>&1
    ip netns exec "$LAB_NS_NODE" ping -6 -c1 -W2 "$(lab_be6 "$i")" >/dev/null 2>&1
  done
  netns_on_cleanup "lab_agent_stop"
  return 0
}

# lab_backends_start [PORT...]: an ep_echo server (id be<i>) in every backend,
# TCP and UDP on each port (default 8080).
lab_backends_start() {
  local ports=("${@:-8080}") i args=() p
  for p in "${ports[@]}"; do args+=(--port "$p"); done
  for ((i = 1; i <= LAB_N; i++)); do
    netns_bg_log "$LAB_DIR/be$i.log" "${LAB_NS_BE[$i]}" "$LAB_TOOLS/ep_echo" --id "be$i" "${args[@]}" >/dev/null
  done
  for ((i = 1; i <= LAB_N; i++)); do
    wait_for 5 grep -q ready "$LAB_DIR/be$i.log" || { echo "lab: backend be$i did not start" >&2; return 1; }
  done
}

# lab_config_write [FILE]: the default lab config (two services per family).
# Override pieces with LAB_SERVICES_YAML / LAB_DATAPATH_YAML.
lab_config_write() {
  local f=${1:-$LAB_CONFIG} i
  {
    echo "node:"
    echo "  name: lab-node"
    echo "datapath:"
    echo "  bpffs: $LAB_BPFFS/edgeplane"
    echo "  xdp_mode: ${LAB_XDP_MODE:-native}"
    echo "  forwarding: ${LAB_FORWARDING:-stack}"
    [ -n "${LAB_DATAPATH_YAML:-}" ] && echo "$LAB_DATAPATH_YAML"
    echo "interfaces:"
    echo "  - {name: up0, role: uplink}"
    for ((i = 1; i <= LAB_N; i++)); do echo "  - {name: pod$i, role: pods}"; done
    [ -n "${LAB_EXTRA_IFACES:-}" ] && echo "$LAB_EXTRA_IFACES"
    echo "services:"
    if [ -n "${LAB_SERVICES_YAML:-}" ]; then
      echo "$LAB_SERVICES_YAML"
    else
      local names=(web web6 udp udp6) vips=("$LAB_VIP4" "$LAB_VIP6" "$LAB_VIP4" "$LAB_VIP6")
      local protos=(tcp tcp udp udp) k
      for k in 0 1 2 3; do
        echo "  - name: ${names[$k]}"
        echo "    vip: ${vips[$k]}"
        echo "    port: 80"
        echo "    protocol: ${protos[$k]}"
        echo "    backends:"
        for ((i = 1; i <= LAB_N; i++)); do
          if [[ ${vips[$k]} == *:* ]]; then echo "      - {address: $(lab_be6 "$i"), port: 8080, weight: ${LAB_WEIGHTS[$i]:-1}}"
          else echo "      - {address: $(lab_be4 "$i"), port: 8080, weight: ${LAB_WEIGHTS[$i]:-1}}"; fi
        done
      done
    fi
    [ -n "${LAB_EXTRA_YAML:-}" ] && echo "$LAB_EXTRA_YAML"
    echo "metrics:"
    echo "  listen: 127.0.0.1:9464"
    echo "control:"
    echo "  socket: $LAB_SOCK"
  } >"$f"
}

# lab_agent_start [wrapper...]: starts the agent in the node namespace (e.g.
# `lab_agent_start valgrind --leak-check=full`), waits until it is ready.
#   LAB_AGENT_PIDNS=1       pod-shaped: the agent is pid 1 of a PID (and mount)
#                           namespace of its own, as in the chart's container
#                           (unshare --pid --fork --mount-proc; --kill-child, so
#                           killing LAB_AGENT_PID still ends the agent)
#   LAB_AGENT_CGROUP=DIR    the agent starts in that cgroup (v2 directory)
#   LAB_AGENT_RUNNER=FN     a function that runs the agent another way
#                           (tests/lib/pod.sh pod_runner: the chart's container
#                           from the image); called with start|stop|kill9|pid
lab_agent_start() {
  local pre=() cg=()
  [ -n "${LAB_AGENT_RUNNER:-}" ] && { "$LAB_AGENT_RUNNER" start; return; }
  [ "${LAB_AGENT_PIDNS:-0}" = 1 ] && pre=(unshare --pid --fork --mount-proc --kill-child)
  # The cgroup is joined before `ip netns exec`, which hides /sys.
  [ -n "${LAB_AGENT_CGROUP:-}" ] &&
    cg=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$LAB_AGENT_CGROUP")
  "${cg[@]}" ip netns exec "$LAB_NS_NODE" "${pre[@]}" "$@" "$LAB_AGENT_BIN" --config "$LAB_CONFIG" \
    ${LAB_AGENT_ARGS:-} >>"$LAB_LOG" 2>&1 &
  LAB_AGENT_PID=$!
  if ! wait_for "${LAB_AGENT_WAIT:-20}" lab_cli status; then
    echo "lab: agent did not become ready; log:" >&2
    tail -30 "$LAB_LOG" >&2
    return 1
  fi
}

# The agent process may be a wrapper (valgrind) or ip netns exec; signal the
# agent itself. unshare (LAB_AGENT_PIDNS) has the same command line and
# blocks SIGTERM: skip it.
lab_agent_pid() {
  local p
  [ -n "${LAB_AGENT_RUNNER:-}" ] && { "$LAB_AGENT_RUNNER" pid; return; }
  for p in $(ip netns pids "$LAB_NS_NODE" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = unshare ] && continue
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--config $LAB_CONFIG"; then
      echo "$p"; return 0
    fi
  done
  return 1
}

lab_agent_signal() { local p; p=$(lab_agent_pid) && kill "-$1" "$p"; }

# lab_agent_stop: SIGTERM and wait (bounded) for the agent to exit.
lab_agent_stop() {
  [ -n "${LAB_AGENT_RUNNER:-}" ] && { "$LAB_AGENT_RUNNER" stop; return 0; }
  [ -n "${LAB_AGENT_PID:-}" ] || return 0
  lab_agent_signal TERM 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$LAB_AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$LAB_AGENT_PID" 2>/dev/null
  wait "$LAB_AGENT_PID" 2>/dev/null
  LAB_AGENT_RC=$?
  LAB_AGENT_PID=
  return 0
}

lab_agent_kill9() {
  [ -n "${LAB_AGENT_RUNNER:-}" ] && { "$LAB_AGENT_RUNNER" kill9; return; }
  lab_agent_signal KILL
  wait "$LAB_AGENT_PID" 2>/dev/null
  LAB_AGENT_PID=
}

lab_cli() { ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" --socket "$LAB_SOCK" "$@"; }
lab_client() { ip netns exec "$LAB_NS_CLIENT" "$@"; }
lab_load() { ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" "$@"; }
lab_metrics() { ip netns exec "$LAB_NS_NODE" curl -s --max-time 5 http://127.0.0.1:9464/metrics; }

# json_get JSON EXPR: evaluates a Python expression on the parsed JSON `j`
json_get() { /usr/bin/python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($2)" "$1"; }

# ---- DNS ---------------------------------------------------------------------
# The site's upstream resolver sits on the WAN side, behind the uplink: the
# client namespace doubles as the WAN router, so the node's DNS traffic
# crosses up0 where the datapath observes it.
#
#   node ─ up0 ══ eth0 ─ client(WAN) ─ wdns0 ══ eth0 ─ dns    (nsd, the upstream)
#                                     └ wrog0 ══ eth0 ─ rogue  (a hijacker's resolver)
#   node ─ podapp ══ eth0 ─ app   (a pod whose stub resolver asks the upstream)
LAB_DNS4=10.77.53.53
LAB_DNS6=fd77:53::53
LAB_ROGUE4=10.77.66.66
LAB_APP4=10.77.30.2
LAB_CACHE_IP=169.254.20.10

# lab_dns_up [N_NAMES]: the upstream namespace with nsd serving a generated
# zone (edge.test) of N names (default 2000); LAB_ZONE_DIR holds the zone,
# domains.txt and expected.txt.
lab_dns_up() {
  local n=${1:-2000}
  source "$LAB_ROOT/tests/lab/dns_upstream.sh"
  LAB_NS_DNS=$(netns_add dns) || return 1
  lab_ns_prepare "$LAB_NS_DNS"
  netns_veth "$LAB_NS_CLIENT" wdns0 "$LAB_NS_DNS" eth0 || return 1
  ip -n "$LAB_NS_CLIENT" addr add 10.77.53.1/24 dev wdns0
  ip -n "$LAB_NS_CLIENT" addr add fd77:53::1/64 dev wdns0 nodad
  ip -n "$LAB_NS_DNS" addr add $LAB_DNS4/24 dev eth0
  ip -n "$LAB_NS_DNS" addr add $LAB_DNS6/64 dev eth0 nodad
  ip -n "$LAB_NS_DNS" route add default via 10.77.53.1
  ip -n "$LAB_NS_DNS" -6 route add default via fd77:53::1
  ip netns exec "$LAB_NS_CLIENT" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n "$LAB_NS_NODE" route add 10.77.53.0/24 via $LAB_CLIENT4
  ip -n "$LAB_NS_NODE" -6 route add fd77:53::/64 via $LAB_CLIENT6
  wait_for 5 lab_no_tentative "$LAB_NS_DNS"
  LAB_ZONE_DIR=$LAB_DIR/zone
  mkdir -p "$LAB_ZONE_DIR"
  dns_zone_generate "$LAB_ZONE_DIR" edge.test "$n" >/dev/null || return 1
  dns_upstream_start "$LAB_NS_DNS" $LAB_DNS4 "$LAB_ZONE_DIR" >/dev/null || return 1
}

# lab_rogue_up: a rogue resolver (answers every name with 203.0.113.66) on the
# WAN side, for hijack drills (an nftables DNAT in the client/WAN namespace
# sends the upstream's traffic there).
lab_rogue_up() {
  LAB_NS_ROGUE=$(netns_add rogue) || return 1
  lab_ns_prepare "$LAB_NS_ROGUE"
  netns_veth "$LAB_NS_CLIENT" wrog0 "$LAB_NS_ROGUE" eth0 || return 1
  ip -n "$LAB_NS_CLIENT" addr add 10.77.66.1/24 dev wrog0
  ip -n "$LAB_NS_ROGUE" addr add $LAB_ROGUE4/24 dev eth0
  ip -n "$LAB_NS_ROGUE" route add default via 10.77.66.1
  netns_bg_log "$LAB_DIR/rogue.log" "$LAB_NS_ROGUE" "$LAB_TOOLS/ep_dns_responder" \
    --listen $LAB_ROGUE4:53 --mode wrong-answer 203.0.113.66 >/dev/null
  wait_for 5 lab_udp_listening "$LAB_NS_ROGUE" 53
}

lab_udp_listening() { ip netns exec "$1" ss -Hlun "sport = :$2" | grep -q .; }

# lab_app_up: a pod namespace behind the node's pods interface podapp. Call
# before lab_config_write; the interface is added to the config.
lab_app_up() {
  LAB_NS_APP=$(netns_add app) || return 1
  lab_ns_prepare "$LAB_NS_APP"
  netns_veth "$LAB_NS_NODE" podapp "$LAB_NS_APP" eth0 || return 1
  ip -n "$LAB_NS_NODE" addr add 10.77.30.1/24 dev podapp
  ip -n "$LAB_NS_APP" addr add $LAB_APP4/24 dev eth0
  ip -n "$LAB_NS_APP" route add default via 10.77.30.1
  LAB_EXTRA_IFACES="  - {name: podapp, role: pods}"
}

# lab_cache_yaml [REFRESH_S]: a dns section for lab_config_write (LAB_EXTRA_YAML)
lab_cache_yaml() {
  cat <<EOT
dns:
  upstreams: [$LAB_DNS4]
  cache:
    listen: $LAB_CACHE_IP
    preload: $LAB_DIR/preload.hosts
    domains: ${LAB_DOMAINS:-$LAB_ZONE_DIR/domains.txt}
    refresh_s: ${1:-0}
    ttl: 30
EOT
}
