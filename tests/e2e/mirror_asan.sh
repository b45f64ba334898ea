#!/usr/bin/env bash
# Mirroring under the agent built with AddressSanitizer + LeakSanitizer (make
# asan): start with a mirror to an interface and one over VXLAN, traffic,
# metrics, a reload without mirrors, a bad mirror refused at a reload, the
# mirrors back, SIGTERM; any sanitizer report fails the test.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

ASAN_BIN=${EP_BUILD:-build}/asan/edgeplane-agent
if [ ! -x "$ASAN_BIN" ]; then
  not_ok "ASan agent not built ($ASAN_BIN; run make asan)"; tap_done; exit 1
fi
export LSAN_OPTIONS=report_objects=1
LAB_AGENT_BIN=$ASAN_BIN
LAB_AGENT_WAIT=60

lab_up 1 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends"; tap_done; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$LAB_DIR/asan
NS_COL=$(netns_add col) || { not_ok "collector namespace"; tap_done; exit 1; }
netns_veth "$LAB_NS_NODE" mirror0 "$NS_COL" eth0
ip -n "$LAB_NS_NODE" addr add 10.77.200.1/24 dev mirror0
ip -n "$NS_COL" addr add 10.77.200.2/24 dev eth0

services() { # services with|without|bad
  local m1="" m2=""
  case $1 in
    with) m1="{percent: 50, to: {interface: mirror0}}"
          m2="{percent: 50, to: {vxlan: {remote: 10.77.200.2, vni: 7}}, max_bytes_per_s: 5000}" ;;
    bad) m1="{percent: 50, to: {interface: nosuch0}}" ;;
  esac
  LAB_SERVICES_YAML="  - name: web
    vip: $LAB_VIP4
    port: 80
    backends: [{address: $(lab_be4 1), port: 8080}]${m1:+
    mirror: $m1}
  - name: udp
    vip: $LAB_VIP4
    port: 80
    protocol: udp
    backends: [{address: $(lab_be4 1), port: 8080}]${m2:+
    mirror: $m2}"
  lab_config_write
}
reload() { lab_cli reload >/dev/null 2>&1; }

services with
lab_agent_start || { not_ok "ASan agent start"; tap_done; exit 1; }
ok "ASan agent started with two mirrors"
traffic() {
  lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 100 --concurrency 4 2>/dev/null | grep -q '"failed":0' &&
    lab_load --target "$LAB_VIP4:80" --mode udp-rr --count 100 --concurrency 4 --retries 0 2>/dev/null | grep -q '"failed":0'
}
check "traffic through mirrored services" traffic
pk() { lab_metrics | awk '/^edgeplane_mirror_packets_total\{service="web"\}/ {print $NF}'; }
check "mirror_packets_total{service=\"web\"} counts ($(pk))" [ "$(pk)" -gt 0 ]
services without; reload
check "reload without mirrors, traffic" traffic
services bad
refused() { ! lab_cli reload >"$LAB_DIR/reload.out" 2>&1; }
check "a mirror to a missing interface is refused at the reload" refused
diag "$(cat "$LAB_DIR/reload.out")"
check "...and the agent names the key and the interface" grep -q "services\[0\].mirror.to: no interface named 'nosuch0'" "$LAB_LOG"
services with; reload
check "the mirrors back, traffic" traffic
for _ in 1 2 3; do lab_metrics >/dev/null; done

lab_agent_stop
check "ASan agent exits 0 on SIGTERM (status ${LAB_AGENT_RC:-?}; 23 = sanitizer report)" [ "${LAB_AGENT_RC:-1}" = 0 ]
reports=("$LAB_LOG" "$LAB_DIR"/asan.*)
if grep -qsE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "${reports[@]}"; then
  not_ok "no AddressSanitizer/LeakSanitizer/UBSan report"
  grep -sA30 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "${reports[@]}" | head -60 | sed 's/^/# /'
else
  ok "no AddressSanitizer/LeakSanitizer/UBSan report"
fi
tap_done
