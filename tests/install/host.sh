#!/usr/bin/env bash
# Host install: `make install DESTDIR=...` into a temporary root, then
#  - the layout, the generated unit (ExecStart = the installed agent) and
#    `systemd-analyze verify` on it (when systemd-analyze exists);
#  - man pages that cover every option and command of --help;
#  - the INSTALLED agent and CLI in the netns lab, started from the INSTALLED
#    default config (plus the lab's interfaces and services) under exactly the
#    unit's capability bounding set and no_new_privs: 200 TCP connections to the
#    VIP, forwarding while the agent is stopped, restart, reload; and that
#    CAP_NET_ADMIN and CAP_SYS_ADMIN are each really needed;
#  - removal as docs/install.md describes it (--detach-on-exit once, and by hand);
#  - re-install over an edited config and `make uninstall`.
set -u
cd "$(dirname "$0")/../.." || exit 1
export EP_ROOT=${EP_ROOT:-$PWD}
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

MAKE=(make --no-print-directory -s)
ROOT=$(netns_tmpdir)

# --- make install DESTDIR=ROOT (default PREFIX /usr/local) ------------------------
if ! out=$("${MAKE[@]}" install DESTDIR="$ROOT" 2>&1); then
  not_ok "make install DESTDIR=$ROOT"; echo "$out" | sed 's/^/# /'; tap_done; exit 1
fi
ok "make install DESTDIR=\$tmp"
P=$ROOT/usr/local
AGENT=$P/sbin/edgeplane-agent CLI=$P/bin/edgeplane
UNIT=$P/lib/systemd/system/edgeplane-agent.service CFG=$ROOT/etc/edgeplane/config.yaml
mode() { stat -c %a "$1" 2>/dev/null; }
check "agent in sbin, CLI in bin (0755), identical to the build" \
  bash -c "[ '$(mode "$AGENT")' = 755 ] && [ '$(mode "$CLI")' = 755 ] && cmp -s '$AGENT' build/edgeplane-agent && cmp -s '$CLI' build/edgeplane"
check "BPF objects in lib/edgeplane/bpf (for bpftool; the binaries embed them)" \
  bash -c "cmp -s build/bpf/xdp_lb.bpf.o '$P/lib/edgeplane/bpf/xdp_lb.bpf.o' && cmp -s build/bpf/tc_rnat.bpf.o '$P/lib/edgeplane/bpf/tc_rnat.bpf.o'"
check "man pages in share/man/man8" test -f "$P/share/man/man8/edgeplane-agent.8" -a -f "$P/share/man/man8/edgeplane.8"
check "unit in lib/systemd/system, 0644" [ "$(mode "$UNIT")" = 644 ]
check "default config /etc/edgeplane/config.yaml is the shipped one" cmp -s "$CFG" deploy/etc/config.yaml
check "unit ExecStart runs the installed agent on the installed config" \
  grep -qx "ExecStart=/usr/local/sbin/edgeplane-agent --config /etc/edgeplane/config.yaml" "$UNIT"
check "unit: no @VARIABLE@ left" bash -c "! grep -q '@[A-Z]*@' '$UNIT'"
check "unit: never --detach-on-exit in ExecStart" bash -c "! grep -E '^ExecStart=.*--detach-on-exit' '$UNIT'"
for kv in "Restart=on-failure" "RestartPreventExitStatus=2" "KillSignal=SIGTERM" "ExecReload=/bin/kill -HUP \$MAINPID" \
  "NoNewPrivileges=yes" "ProtectSystem=strict" "ReadWritePaths=-/sys/fs/bpf" "RuntimeDirectory=edgeplane" \
  "StateDirectory=edgeplane" "ProtectHome=yes" "PrivateTmp=yes" "ProtectKernelModules=yes" "ProtectControlGroups=yes" \
  "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK" "LockPersonality=yes" "SystemCallArchitectures=native" \
  "LimitMEMLOCK=infinity" "WantedBy=multi-user.target" "Type=notify" "NotifyAccess=main" "WatchdogSec=10s"; do
  check "unit: $kv" grep -qxF "$kv" "$UNIT"
done
CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
check "unit: CapabilityBoundingSet is $CAPS" [ "$CAPS" = "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN" ]
check "unit: nothing that blocks bpf() or netlink (no ProtectKernelTunables, no PrivateNetwork)" \
  bash -c "! grep -E '^(ProtectKernelTunables|PrivateNetwork|RestrictAddressFamilies=~)' '$UNIT'"
# The filter itself is checked against the agent's list in confinement.sh.
check "unit: SystemCallFilter= allows bpf(), mount(), umount2() and seccomp() on top of @system-service" \
  grep -qx "SystemCallFilter=@system-service bpf mount umount2 seccomp" "$UNIT"

# --- systemd-analyze verify ------------------------------------------------------------
# verify needs the unit's binaries and man pages at the paths the unit names, so
# it gets an install whose PREFIX is a temporary directory (no DESTDIR). It
# checks Documentation=man: links by running man(1); where systemd is present
# but man-db is not (a minimal Debian root), the links cannot be checked: the
# unit is verified with --man=no and the link check is reported as skipped.
if command -v systemd-analyze >/dev/null 2>&1; then
  V=$(netns_tmpdir)
  "${MAKE[@]}" install PREFIX="$V/usr" SYSCONFDIR="$V/etc" UNITDIR="$V/unit" >/dev/null 2>&1
  sdv=$(systemd-analyze --version | head -1)
  if command -v man >/dev/null 2>&1; then
    vout=$(MANPATH=$V/usr/share/man systemd-analyze verify "$V/unit/edgeplane-agent.service" 2>&1); rc=$?
    what="systemd-analyze verify (Documentation= man pages included)"
  else
    vout=$(systemd-analyze verify --man=no "$V/unit/edgeplane-agent.service" 2>&1); rc=$?
    what="systemd-analyze verify --man=no"
    tap_skip "systemd-analyze verify: the unit's Documentation=man: pages resolve" "man(1) not installed (man-db)"
  fi
  if [ $rc -eq 0 ] && [ -z "$vout" ]; then ok "$what: no errors, no warnings ($sdv)"
  else not_ok "$what (status $rc)"; echo "$vout" | sed 's/^/# /'; fi
else
  tap_skip "systemd-analyze verify" "systemd-analyze not installed"
fi

# --- --help and man pages ---------------------------------------------------------------
check "installed agent --help works" "$AGENT" --help
check "installed CLI --help works" "$CLI" --help
if command -v groff >/dev/null 2>&1; then
  for m in edgeplane-agent edgeplane; do
    gout=$(groff -man -ww -z "$P/share/man/man8/$m.8" 2>&1)
    check "man page $m.8 renders without groff warnings" [ -z "$gout" ]
  done
else
  tap_skip "man pages render without groff warnings" "groff not installed"
fi
# every option of --help is in the man page (roff writes - as \-)
man_has() { sed 's/\\-/-/g; s/\\fB//g; s/\\fR//g; s/\\fI//g' "$1" | grep -qF -- "$2"; }
missing=()
for o in $("$AGENT" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  man_has "$P/share/man/man8/edgeplane-agent.8" "$o" || missing+=("$o")
done
check "edgeplane-agent.8 documents every option of --help${missing:+ (missing: ${missing[*]})}" [ ${#missing[@]} -eq 0 ]
missing=()
for o in $("$CLI" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u) \
  $("$CLI" --help | grep -oE '^  [a-z]+( [a-z]+)?' | sed 's/^  //; s/ /_/') \
  $("$CLI" cache build --help 2>/dev/null | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  man_has "$P/share/man/man8/edgeplane.8" "${o//_/ }" || missing+=("$o")
done
check "edgeplane.8 documents every command and option of --help${missing:+ (missing: ${missing[*]})}" [ ${#missing[@]} -eq 0 ]
check "installed default config passes the installed agent's --check-config" "$AGENT" --check-config --config "$CFG"

# --- the installed agent in the lab -------------------------------------------------------
LAB_AGENT_BIN=$AGENT
LAB_CLI_BIN=$CLI
lab_up 3 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends start"; tap_done; exit 1; }

# The lab config = the installed default config with the lab's bpffs, socket,
# interfaces and one service filled in. Every edit must hit its line.
lab_from_default() {
  awk -v bpffs="$LAB_BPFFS/edgeplane" -v sock="$LAB_SOCK" -v be1="$(lab_be4 1)" -v be2="$(lab_be4 2)" \
      -v be3="$(lab_be4 3)" -v vip="$LAB_VIP4" -v extra="${1:-}" '
    /^  bpffs: \/sys\/fs\/bpf\/edgeplane$/ { print "  bpffs: " bpffs; n++; next }
    /^  socket: \/run\/edgeplane\/agent.sock/ { print "  socket: " sock; n++; next }
    /^interfaces: \[\]$/ { print "interfaces:"; print "  - {name: up0, role: uplink}"
                           for (i = 1; i <= 3; i++) print "  - {name: pod" i ", role: pods}"; n++; next }
    /^services: \[\]$/ { print "services:"; print "  - name: web"; print "    vip: " vip; print "    port: 80"
                         print "    backends:"; print "      - {address: " be1 ", port: 8080}"
                         print "      - {address: " be2 ", port: 8080}"; print "      - {address: " be3 ", port: 8080}"
                         if (extra != "") print extra; n++; next }
    { print }
    END { exit n == 4 ? 0 : 1 }' "$CFG"
}
if lab_from_default >"$LAB_CONFIG"; then ok "lab config made from the installed default config (4 edits)"
else not_ok "lab config made from the installed default config: the default no longer has the expected lines"; fi
check "that config passes --check-config" "$AGENT" --check-config --config "$LAB_CONFIG"

# The unit's privileges: its capability bounding set, no_new_privs.
caps_arg=$(echo "$CAPS" | tr ' ' '\n' | sed 's/^CAP_/+/' | tr 'A-Z' 'a-z' | paste -sd, -)
SANDBOX=(setpriv --bounding-set "-all,$caps_arg" --inh-caps -all --no-new-privs --)
diag "agent runs under: ${SANDBOX[*]}"
if lab_agent_start "${SANDBOX[@]}"; then ok "installed agent starts with only the unit's capabilities"
else not_ok "installed agent starts with only the unit's capabilities"; tap_done; exit 1; fi
pid=$(lab_agent_pid)
eff=$(awk '/^CapEff/{print $2}' "/proc/$pid/status")
want=$(printf '%016x' $(( (1 << 39) | (1 << 38) | (1 << 12) | (1 << 21) )))  # BPF PERFMON NET_ADMIN SYS_ADMIN
check "its effective capabilities are exactly BPF, PERFMON, NET_ADMIN, SYS_ADMIN (CapEff=$eff)" [ "$eff" = "$want" ]
check "no_new_privs set" grep -qE '^NoNewPrivs:\s+1' "/proc/$pid/status"

smoke() {
  local out
  out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 200 --concurrency 16 2>/dev/null)
  diag "$(json_get "$out" '"ok %s failed %s backends %s" % (j["ok"], j["failed"], j["backends"]) + ("" if not j["failed"] else " errors %s first failure %s" % (j["errors"], j["first_failure"]))' 2>/dev/null || echo "$out")"
  [ "$(json_get "$out" 'j["ok"]')" = 200 ] && [ "$(json_get "$out" 'len(j["backends"])')" = 3 ]
}
check "load-balancer smoke test: 200 TCP connections to the VIP all succeed, spread over 3 backends" smoke
cli_sees_web() { lab_cli status >/dev/null && lab_cli services | grep -q web; }
check "installed CLI talks to the installed agent (edgeplane status, services)" cli_sees_web
health_ok() {
  ip netns exec "$LAB_NS_NODE" sh -c 'curl -sf --max-time 5 http://127.0.0.1:9464/healthz && curl -sf --max-time 5 http://127.0.0.1:9464/readyz' >/dev/null
}
check "/healthz and /readyz answer 200 on the default metrics address 127.0.0.1:9464" health_ok

# systemctl stop = SIGTERM: the datapath keeps forwarding with no agent.
lab_agent_stop
check "SIGTERM: agent exits 0 (status ${LAB_AGENT_RC:-?})" [ "${LAB_AGENT_RC:-1}" = 0 ]
check "while the agent is stopped, 200 connections still go through the VIP" smoke
# systemctl start again (Restart=on-failure or an upgrade): same caps, pins reused.
# This time as systemd starts it (Type=notify, WatchdogSec=): NOTIFY_SOCKET is
# a stand-in for systemd's socket, and a 2 s watchdog wants a ping every 1 s.
NOTIFY_OUT=$LAB_DIR/notify.log
: >"$NOTIFY_OUT"
"$PY3" tests/lib/sd_notify_listen.py "$LAB_DIR/notify.sock" "$NOTIFY_OUT" >"$LAB_DIR/notify.ready" 2>&1 &
netns_track_pid $!
wait_for 5 grep -q ready "$LAB_DIR/notify.ready"
if NOTIFY_SOCKET=$LAB_DIR/notify.sock WATCHDOG_USEC=2000000 lab_agent_start "${SANDBOX[@]}"; then
  ok "restart under the same capabilities picks up the pinned datapath"
else not_ok "restart under the same capabilities picks up the pinned datapath"; fi
notified() { grep -qE "^[0-9.]+ $1\$" "$NOTIFY_OUT"; }
check "sd_notify: READY=1 sent once started (Type=notify)" wait_for 5 notified READY=1
check "sd_notify: a STATUS= line for systemctl status" grep -qE '^[0-9.]+ STATUS=ready: ' "$NOTIFY_OUT"
pings0=$(grep -c ' WATCHDOG=1$' "$NOTIFY_OUT")
sleep 3.2
pings1=$(grep -c ' WATCHDOG=1$' "$NOTIFY_OUT")
check "sd_notify: WATCHDOG=1 every WATCHDOG_USEC/2 from the loop (3.2 s: $((pings1 - pings0)) pings, want 2-4)" \
  test $((pings1 - pings0)) -ge 2 -a $((pings1 - pings0)) -le 4
check "log says the services were recovered from the pins" grep -q "recovered 1 services" "$LAB_LOG"
check "after the restart: 200 connections through the VIP" smoke
# systemctl reload = SIGHUP
lab_from_default "      - {address: $(lab_be4 1), port: 8081, weight: 0}" >"$LAB_CONFIG.new" && mv "$LAB_CONFIG.new" "$LAB_CONFIG"
lab_agent_signal HUP
check "reload (SIGHUP, the unit's ExecReload) applied" wait_for 10 sh -c "ip netns exec '$LAB_NS_NODE' curl -s --max-time 2 http://127.0.0.1:9464/metrics | grep -q 'edgeplane_lb_backend_weight{service=\"web\",backend=\"$(lab_be4 1):8081\"} 0'"
reload_notified() { awk '$2 == "RELOADING=1" {r = 1} r && $2 == "READY=1" {ok = 1} END {exit !ok}' "$NOTIFY_OUT"; }
check "sd_notify: RELOADING=1 then READY=1 around the reload" wait_for 5 reload_notified

# --- each capability that is not implied by another is really needed ------------------------
# (the datapath is attached and pinned now, as after any stop: what a restart meets)
lab_agent_stop
check "sd_notify: STOPPING=1 on SIGTERM" notified STOPPING=1
without() { # without CAP: run the agent once with the unit's set minus CAP; prints its log
  local set
  set=$(echo "$caps_arg" | tr ',' '\n' | grep -vx "+$1" | paste -sd, -)
  ip netns exec "$LAB_NS_NODE" timeout 15 setpriv --bounding-set "-all,$set" --inh-caps -all --no-new-privs -- \
    "$AGENT" --config "$LAB_CONFIG" 2>&1
  echo "exit status $?"
}
out=$(without net_admin)
check "without CAP_NET_ADMIN the agent cannot attach and exits 1" grep -q "exit status 1" <<<"$out"
echo "$out" | grep -E "error" | head -2 | sed 's/^/#   /'
out=$(without sys_admin)
restart_refused() { grep -q 'exit status 1' <<<"$out" && grep -q 'needs CAP_SYS_ADMIN to open attached programs by id' <<<"$out"; }
check "without CAP_SYS_ADMIN a restart fails and says why (opening the attached program by id needs CAP_SYS_ADMIN)" restart_refused
echo "$out" | grep -E "error" | head -2 | sed 's/^/#   /'
check "and the datapath still forwards after those failed starts" smoke

# dnsmasq (the DNS cache the agent supervises) under the unit's set: it exits;
# with the drop-in's three capabilities (unit comment, docs/install.md, chart) it runs.
dnsmasq_runs() { # dnsmasq_runs EXTRA_CAPS: true if dnsmasq is still up after 2 s
  ip netns exec "$LAB_NS_NODE" timeout 2 setpriv --bounding-set "-all,$caps_arg$1" --inh-caps -all -- \
    dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null --pid-file= \
    --listen-address=127.0.0.1 --bind-interfaces >/dev/null 2>&1
  [ $? = 124 ]
}
if command -v dnsmasq >/dev/null 2>&1; then
  dnsmasq_fails() { ! dnsmasq_runs ""; }
  check "dnsmasq exits under the unit's capabilities alone (it needs to drop to nobody)" dnsmasq_fails
  check "dnsmasq runs with +NET_BIND_SERVICE,+SETUID,+SETGID (the DNS drop-in / chart's dns capabilities)" \
    dnsmasq_runs ",+net_bind_service,+setuid,+setgid"
  # ... and then runs as nobody: the agent signals it (SIGHUP: a new preload)
  # only with the drop-in's CAP_KILL.
  signals_nobody() { # signals_nobody EXTRA_CAPS: can root under the unit's set signal a nobody process?
    local p rc
    setpriv --reuid 65534 --regid 65534 --clear-groups sleep 30 &  # nobody, nogroup
    p=$!
    sleep 0.2
    setpriv --bounding-set "-all,$caps_arg$1" --inh-caps -all -- sh -c 'kill -0 "$0"' "$p" 2>/dev/null; rc=$?
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    return $rc
  }
  cannot_signal() { ! signals_nobody "$1"; }
  check "under the unit's set plus the dnsmasq three, root cannot signal a nobody process" \
    cannot_signal ",+net_bind_service,+setuid,+setgid"
  check "with the drop-in's CAP_KILL it can (the agent's SIGHUP to dnsmasq)" \
    signals_nobody ",+net_bind_service,+setuid,+setgid,+kill"
else
  tap_skip "dnsmasq capabilities" "dnsmasq not installed"
fi

vip_dead() {
  local out
  out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 3 --concurrency 3 --timeout-ms 500 2>/dev/null)
  [ "$(json_get "$out" 'j["ok"]')" = 0 ]
}

# --- removal as docs/install.md describes: --detach-on-exit once ------------------------------
lab_agent_stop
LAB_AGENT_ARGS=--detach-on-exit
if lab_agent_start "${SANDBOX[@]}"; then
  lab_agent_stop
  LAB_AGENT_ARGS=
  check "removal: --detach-on-exit run once detaches XDP from the uplink" \
    bash -c "! ip -n '$LAB_NS_NODE' link show up0 | grep -q 'prog/xdp'"
  check "removal: and the TC filters from the pods interfaces" \
    bash -c "[ -z \"\$(ip netns exec '$LAB_NS_NODE' tc filter show dev pod1 ingress)\" ]"
  check "removal: and the pins under datapath.bpffs" \
    bash -c "[ ! -d '$LAB_BPFFS/edgeplane/maps' ] || [ -z \"\$(ls -A '$LAB_BPFFS/edgeplane/maps')\" ]"
  check "removal: traffic to the VIP is no longer balanced" vip_dead
else
  not_ok "removal: agent with --detach-on-exit starts"
fi

# --- removal by hand (docs/install.md): the agent stopped, its datapath still attached ----------
if lab_agent_start "${SANDBOX[@]}"; then
  lab_agent_stop
  check "before removal by hand: the stopped agent left the datapath forwarding" smoke
  diag "tc on up0 egress: $(ip netns exec "$LAB_NS_NODE" tc filter show dev up0 egress | head -1)"
  nsx() { ip netns exec "$LAB_NS_NODE" "$@"; }
  nsx ip link set dev up0 xdp off
  nsx tc filter del dev up0 egress pref 233
  for i in 1 2 3; do nsx tc filter del dev "pod$i" ingress pref 233; done
  for d in up0 pod1 pod2 pod3; do
    nsx tc filter del dev "$d" ingress pref 228
    nsx tc filter del dev "$d" egress pref 228
  done
  rm -r "$LAB_BPFFS/edgeplane"
  check "removal by hand: no XDP program on the uplink" bash -c "! ip -n '$LAB_NS_NODE' link show up0 | grep -q 'prog/xdp'"
  tc_left() { local d; for d in "up0 egress" "up0 ingress" "pod1 ingress" "pod2 ingress" "pod3 ingress" \
    "pod1 egress" "pod2 egress" "pod3 egress"; do
    [ -z "$(nsx tc filter show dev $d)" ] || return 1; done; }
  check "removal by hand: no TC filter left on the uplink or the pods interfaces" tc_left
  check "removal by hand: traffic to the VIP is no longer balanced" vip_dead
else
  not_ok "agent starts again for the removal by hand"
fi

# --- re-install over an edited config, then uninstall ----------------------------------------
echo "# edited by the operator" >>"$CFG"
"${MAKE[@]}" install DESTDIR="$ROOT" >"$ROOT.log" 2>&1
check "re-install keeps an edited config and puts the shipped one beside it" \
  bash -c "grep -q 'edited by the operator' '$CFG' && cmp -s deploy/etc/config.yaml '$CFG.default' && grep -q 'kept your' '$ROOT.log'"
"${MAKE[@]}" uninstall DESTDIR="$ROOT" >"$ROOT.log" 2>&1
left=$(cd "$ROOT" && find . -type f | sort | paste -sd' ' -)
check "make uninstall removes everything it installed but the edited config (left: $left)" [ "$left" = "./etc/edgeplane/config.yaml" ]
check "make uninstall says the datapath stays and how to remove it" grep -q -- "--detach-on-exit" "$ROOT.log"
"${MAKE[@]}" install DESTDIR="$ROOT" >/dev/null 2>&1
cp deploy/etc/config.yaml "$CFG"
"${MAKE[@]}" uninstall DESTDIR="$ROOT" >/dev/null 2>&1
left=$(cd "$ROOT" && find . -type f | wc -l)
check "with an unedited config, make uninstall leaves no file" [ "$left" = 0 ]
check "and removes its own directories (etc/edgeplane, lib/edgeplane)" \
  bash -c "[ ! -e '$ROOT/etc/edgeplane' ] && [ ! -e '$P/lib/edgeplane' ]"
rm -f "$ROOT.log"

# --- other prefixes -------------------------------------------------------------------------
R2=$(netns_tmpdir)
"${MAKE[@]}" install DESTDIR="$R2" PREFIX=/usr >/dev/null 2>&1
check "PREFIX=/usr: /usr/sbin/edgeplane-agent (the path the Helm chart runs) and /usr/lib/systemd/system" \
  bash -c "[ -x '$R2/usr/sbin/edgeplane-agent' ] && grep -qx 'ExecStart=/usr/sbin/edgeplane-agent --config /etc/edgeplane/config.yaml' '$R2/usr/lib/systemd/system/edgeplane-agent.service' && grep -q '/usr/sbin/edgeplane-agent' deploy/helm/edgeplane/templates/_helpers.tpl"
R3=$(netns_tmpdir)
"${MAKE[@]}" install DESTDIR="$R3" PREFIX=/opt/edgeplane >/dev/null 2>&1
check "PREFIX=/opt/edgeplane: unit in /etc/systemd/system (on systemd's search path)" \
  grep -qx 'ExecStart=/opt/edgeplane/sbin/edgeplane-agent --config /etc/edgeplane/config.yaml' "$R3/etc/systemd/system/edgeplane-agent.service"

tap_done
