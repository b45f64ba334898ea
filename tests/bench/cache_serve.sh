#!/usr/bin/env bash
# The local cache serving a 128k-name preload: dnsmasq as the agent runs it.
#
#   startup   a dnsmasq with the agent's rendered config (a second listen
#             address) from spawn to its first answer for a preloaded name,
#             next to the same dnsmasq with an empty preload
#   reload    SIGHUP with a preload that has one more name, until that name
#             answers (dnsmasq alone), and the same through the agent (file
#             replaced, the agent notices, signals dnsmasq)
#   memory    dnsmasq's RSS with the 128k preload and with an empty one
#   qps       dnsperf over the preloaded names against the agent's dnsmasq,
#             and against the empty one asking its one health name (the
#             ceiling of this machine for dnsmasq answering from memory)
#
#   tests/bench/cache_serve.sh        BENCH_NAMES (131072) BENCH_SECONDS (10)
# Writes build/bench/cache_serve.json.
set -u
[ -n "${BENCH_DEBUG:-}" ] && set -x
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/lab/dns_upstream.sh
NS_PREFIX=${NS_PREFIX:-epcs$$}
N=${BENCH_NAMES:-131072}
SECS=${BENCH_SECONDS:-10}
OUT=${EP_BUILD:-build}/bench
mkdir -p "$OUT"
py() { /usr/bin/python3 -c "$@"; }
ALT=169.254.20.11

lab_up 1 >/dev/null || { echo "cache_serve: lab setup failed" >&2; exit 1; }
ZD=$LAB_DIR/zone
mkdir -p "$ZD"
echo "generating $N names..."
dns_zone_generate "$ZD" edge.test "$N" >/dev/null || exit 1
# The preload as `edgeplane cache build` writes it: "ADDR NAME" per address.
awk '$2 == "resolved" {for (i = 3; i <= NF; i++) print $i, $1}' "$ZD/expected.txt" >"$LAB_DIR/preload.hosts"
chmod 644 "$LAB_DIR/preload.hosts"
records=$(wc -l <"$LAB_DIR/preload.hosts")
awk '$2 == "resolved" {print $1, "A"}' "$ZD/expected.txt" | head -100000 >"$LAB_DIR/perf.txt"
probe=$(awk 'NR == 1000 {print $2}' "$LAB_DIR/preload.hosts")
echo "preload: $records records for $(awk '$2 == "resolved"' "$ZD/expected.txt" | wc -l) names"

LAB_EXTRA_YAML="dns:
  upstreams: [10.77.53.53]
  cache:
    listen: $LAB_CACHE_IP
    preload: $LAB_DIR/preload.hosts
    refresh_s: 0"
lab_config_write
lab_agent_start >/dev/null || { echo "cache_serve: agent did not start" >&2; exit 1; }
answers() { # answers SERVER NAME
  [ -n "$(ip netns exec "$LAB_NS_NODE" kdig @"$1" "$2" A +short +timeout=1 +retry=0 2>/dev/null)" ]
}
wait_for 30 answers $LAB_CACHE_IP "$probe" || { echo "cache_serve: the agent's dnsmasq does not answer" >&2; exit 1; }
DM_PID=$(lab_cli dns status -o json | py 'import json,sys; print(json.load(sys.stdin)["cache"]["dnsmasq"]["pid"])')
RUNDIR=$(dirname "$LAB_SOCK")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# --- a standalone dnsmasq with the agent's config ------------------------------
ip -n "$LAB_NS_NODE" addr add $ALT/32 dev lo
alt_conf() { # alt_conf PRELOAD CONF
  sed -e "s|^listen-address=.*|listen-address=$ALT|" -e "s|^addn-hosts=.*|addn-hosts=$1|" \
    -e "s|^log-facility=.*|log-facility=$LAB_DIR/alt.log|" "$RUNDIR/dnsmasq.conf" >"$2"
}
# spawn_until_answer PRELOAD NAME: START_MS = ms from spawn to NAME answered;
# ALT_PID = the dnsmasq (not in a subshell: the caller kills it later)
spawn_until_answer() {
  local t0 t1
  alt_conf "$1" "$LAB_DIR/alt.conf"
  t0=$(date +%s%N)
  ip netns exec "$LAB_NS_NODE" dnsmasq --keep-in-foreground --conf-file="$LAB_DIR/alt.conf" &
  ALT_PID=$!
  netns_track_pid $ALT_PID
  for _ in $(seq 1 3000); do answers $ALT "$2" && break; sleep 0.005; done
  t1=$(date +%s%N)
  START_MS=$(((t1 - t0) / 1000000))
}
: >"$LAB_DIR/empty.hosts"; chmod 644 "$LAB_DIR/empty.hosts"
spawn_until_answer "$LAB_DIR/empty.hosts" edgeplane-health.invalid
start_empty=$START_MS
kill $ALT_PID; wait $ALT_PID 2>/dev/null
cp "$LAB_DIR/preload.hosts" "$LAB_DIR/alt.hosts"; chmod 644 "$LAB_DIR/alt.hosts"
spawn_until_answer "$LAB_DIR/alt.hosts" "$probe"
start_full=$START_MS
# dnsmasq's RSS right after start with the preload (standalone)
rss_full_alt=$(rss $ALT_PID)
# reload: the same file plus one name, swapped in atomically, SIGHUP, until
# the new name answers
cp "$LAB_DIR/preload.hosts" "$LAB_DIR/alt.tmp"
echo "198.18.255.1 bench-reload.edge.test" >>"$LAB_DIR/alt.tmp"
chmod 644 "$LAB_DIR/alt.tmp"; mv "$LAB_DIR/alt.tmp" "$LAB_DIR/alt.hosts"
t0=$(date +%s%N)
kill -HUP $ALT_PID
for _ in $(seq 1 3000); do answers $ALT bench-reload.edge.test && break; sleep 0.005; done
reload_ms=$((($(date +%s%N) - t0) / 1000000))
kill $ALT_PID; wait $ALT_PID 2>/dev/null

# --- through the agent: replace the preload, until the new name answers ------------
cp "$LAB_DIR/preload.hosts" "$LAB_DIR/p.tmp"; echo "198.18.255.2 bench-agent.edge.test" >>"$LAB_DIR/p.tmp"
chmod 644 "$LAB_DIR/p.tmp"
t0=$(date +%s%N)
mv "$LAB_DIR/p.tmp" "$LAB_DIR/preload.hosts"
for _ in $(seq 1 3000); do answers $LAB_CACHE_IP bench-agent.edge.test && break; sleep 0.005; done
agent_reload_ms=$((($(date +%s%N) - t0) / 1000000))

# --- memory and queries/s --------------------------------------------------------
rss_full=$(rss "$DM_PID")
alt_conf "$LAB_DIR/empty.hosts" "$LAB_DIR/alt.conf"
ip netns exec "$LAB_NS_NODE" dnsmasq --keep-in-foreground --conf-file="$LAB_DIR/alt.conf" &
ALT_PID=$!
netns_track_pid $ALT_PID
wait_for 10 answers $ALT edgeplane-health.invalid
rss_empty=$(rss $ALT_PID)
perf() { # perf SERVER FILE -> queries/s
  ip netns exec "$LAB_NS_NODE" dnsperf -s "$1" -d "$2" -l "$SECS" -c 8 -T 2 -q 500 2>/dev/null |
    awk '/Queries per second/ {print int($4)}'
}
printf 'edgeplane-health.invalid A\n' >"$LAB_DIR/health.txt"
qps_full=$(perf $LAB_CACHE_IP "$LAB_DIR/perf.txt")
qps_empty=$(perf $ALT "$LAB_DIR/health.txt")
qps_full2=$(perf $LAB_CACHE_IP "$LAB_DIR/perf.txt")
kill $ALT_PID; wait $ALT_PID 2>/dev/null

# --- kill -9 of the agent's dnsmasq, until a preloaded name answers again ---------
DM_PID=$(lab_cli dns status -o json | py 'import json,sys; print(json.load(sys.stdin)["cache"]["dnsmasq"]["pid"])')
t0=$(date +%s%N)
kill -9 "$DM_PID"
# the old process is gone (a zombie or reaped: its socket is closed), then the new one answers
for _ in $(seq 1 200); do
  st=$(awk '{print $3}' "/proc/$DM_PID/stat" 2>/dev/null)
  [ -z "$st" ] || [ "$st" = Z ] && break
  sleep 0.005
done
# a query every 5 ms from one socket until one is answered (kdig would wait out
# its 1 s timeout on a query sent while nothing listens)
ip netns exec "$LAB_NS_NODE" "$PY3" - "$LAB_CACHE_IP" "$probe" <<'PYQ'
import os, socket, struct, sys, time
ip, name = sys.argv[1], sys.argv[2]
q = lambda i: struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"".join(
    bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0\0\1\0\1"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.005)
end = time.time() + 15
i = 1
while time.time() < end:
    try:
        s.sendto(q(i), (ip, 53))
        d = s.recv(4096)
        if len(d) > 12 and struct.unpack(">H", d[6:8])[0] > 0:
            break
    except OSError:
        time.sleep(0.005)
    i = i % 65535 + 1
PYQ
kill9_ms=$((($(date +%s%N) - t0) / 1000000))
new_pid=$(lab_cli dns status -o json | py 'import json,sys; print(json.load(sys.stdin)["cache"]["dnsmasq"]["pid"])')
[ "$new_pid" != "$DM_PID" ] || kill9_ms=-1

py '
import json, sys
(n, records, se, sf, rl, arl, rssf, rsse, rssa, qf, qe, qf2, secs, k9, out) = sys.argv[1:]
qf, qf2, qe = int(qf or 0), int(qf2 or 0), int(qe or 0)
qmed = sorted([qf, qf2])[0] if min(qf, qf2) else max(qf, qf2)
d = {"benchmark": "cache_serve", "names": int(n), "records": int(records),
     "startup_ms_empty": int(se), "startup_ms_preloaded": int(sf),
     "reload_sighup_ms": int(rl), "reload_through_agent_ms": int(arl),
     "kill9_to_answer_ms": int(k9),
     "rss_kib_preloaded": int(rssf), "rss_kib_empty": int(rsse), "rss_kib_preloaded_standalone": int(rssa),
     "qps_preloaded_names": [qf, qf2], "qps_health_name_empty_cache": qe,
     "qps_ratio_to_empty": round(min(qf, qf2) / qe, 3) if qe else None, "dnsperf_seconds": int(secs)}
json.dump(d, open(out, "w"), indent=1)
rows = [("records in the preload", records),
        ("dnsmasq start to first answer, empty / 128k preload (ms)", "%s / %s" % (se, sf)),
        ("SIGHUP to the new name answered, dnsmasq alone (ms)", rl),
        ("preload replaced to new name answered, through the agent (ms)", arl),
        ("kill -9 of the agent-run dnsmasq to a preloaded name answered (ms)", k9),
        ("dnsmasq RSS, 128k preload / empty (KiB)", "%s / %s" % (rssf, rsse)),
        ("queries/s over preloaded names (two runs)", "%d / %d" % (qf, qf2)),
        ("queries/s, one name from an empty cache (ceiling)", qe)]
for k, v in rows:
    print("%-64s %s" % (k, v))
print("wrote", out)' "$N" "$records" "$start_empty" "$start_full" "$reload_ms" "$agent_reload_ms" \
  "$rss_full" "$rss_empty" "$rss_full_alt" "${qps_full:-0}" "${qps_empty:-0}" "${qps_full2:-0}" "$SECS" "$kill9_ms" \
  "$OUT/cache_serve.json"
