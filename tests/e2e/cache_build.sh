#!/usr/bin/env bash
# End to end: `edgeplane cache build` against the lab upstream (nsd in a
# namespace) and the rule-driven responder that fails, drops, spoofs and
# truncates. Every result is compared exactly with what the zone generator
# says the names resolve to.
#
#   EP_CLI=path/to/edgeplane tests/e2e/cache_build.sh
#
# Topology (all inside namespaces made here):
#   cli  10.99.0.2 --veth-- 10.99.0.1  up: 10.99.53.2  nsd, the full zone
#                                          10.99.53.3  responder: fails *.servfail / *.refused,
#                                                      relays the rest without chasing CNAMEs;
#                                                      20% of queries to it are dropped
#                                          10.99.53.4  nsd, half of the names
#                                          10.99.53.5  nothing answers (blackholed)
#                                          10.99.53.6  responder: 20 spoofed replies per query
#                                          10.99.53.7  responder: a wrong answer from another port first
#                                          10.99.53.8  responder: wrong transaction id on every reply
#                                          10.99.53.9  responder: wrong question on every reply
set -u
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/tap.sh
source tests/lab/dns_upstream.sh

EP_CLI=${EP_CLI:-build/edgeplane}
RESP=${EP_DNS_RESPONDER:-$EP_BUILD/tests/tools/ep_dns_responder}
N=${CACHE_E2E_NAMES:-3000}
BIG=${CACHE_E2E_BIG:-131072}

if [ ! -x "$RESP" ]; then
  mkdir -p "$(dirname "$RESP")"
  gcc -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE tests/tools/ep_dns_responder.c -lldns -o "$RESP" ||
    { not_ok "build ep_dns_responder"; tap_done; exit 1; }
fi
export EP_DNS_RESPONDER=$RESP
if ! "$EP_CLI" cache build --help >/dev/null 2>&1; then
  not_ok "$EP_CLI cache build --help works (set EP_CLI)"
  tap_done
  exit 1
fi

T=$(mktemp -d /tmp/ep-cache-e2e.XXXXXX)
netns_on_cleanup "rm -rf '$T'"
netns_add cli >/dev/null && netns_add up >/dev/null || { not_ok "namespaces"; tap_done; exit 1; }
CLI=$(netns_name cli) UP=$(netns_name up)
netns_veth "$CLI" epc0 "$UP" epu0
ip -n "$CLI" addr add 10.99.0.2/24 dev epc0
ip -n "$UP" addr add 10.99.0.1/24 dev epu0
ip -n "$CLI" route add 10.99.53.0/24 via 10.99.0.1
for a in 2 3 4 5 6 7 8 9; do ip -n "$UP" addr add 10.99.53.$a/32 dev lo; done

# The zone: generated names, plus a CNAME loop and a chain longer than the
# builder follows (both fail as servfail), names the responder fails, names
# with bad syntax, duplicates and comments.
Z=$T/zone
dns_zone_generate "$Z" edge.test "$N"
cat >>"$Z/edge.test.zone" <<'EOF'
loop1	CNAME	loop2
loop2	CNAME	loop1
EOF
for i in $(seq 1 10); do echo "long$i	CNAME	long$((i + 1))" >>"$Z/edge.test.zone"; done
echo "long11	A	198.18.200.1" >>"$Z/edge.test.zone"
cp "$Z/domains.txt" "$T/domains.txt"
cp "$Z/expected.txt" "$T/expected.txt"
{
  echo "loop1.edge.test servfail"; echo "long1.edge.test servfail"
  for i in $(seq 1 20); do echo "sf$i.servfail.edge.test servfail"; done
  for i in $(seq 1 10); do echo "rf$i.refused.edge.test refused"; done
} >>"$T/expected.txt"
{
  echo "   # indented comment"
  echo ""
  echo "  N1.Edge.Test.   # duplicate of n1, other case, trailing dot and spaces"
  echo "loop1.edge.test"
  echo "long1.edge.test"
  for i in $(seq 1 20); do echo "sf$i.servfail.edge.test"; done
  for i in $(seq 1 10); do echo "rf$i.refused.edge.test"; done
  echo "bad..edge.test"
  echo "-leading.edge.test"
  echo "$(printf 'x%.0s' $(seq 1 64)).edge.test"
  echo "two words.edge.test"
  echo "bang!.edge.test"
  echo "10.1.2.3"
} >>"$T/domains.txt"
# Line numbers of the bad lines, for the check below.
BAD_LINES=$(grep -n -E '^(bad\.\.|-leading|x{64}|two words|bang!|10\.1\.2\.3)' "$T/domains.txt" | cut -d: -f1 | tr '\n' ' ')

# expected hosts lines and failures of an expected file
exp_hosts() { awk '$2 == "resolved" { for (i = 3; i <= NF; i++) print $i, $1 }' "$1" | LC_ALL=C sort; }
exp_fail() { awk '$2 != "resolved" { print $1, $2 }' "$1" | LC_ALL=C sort; }
got_hosts() { grep -v '^#' "$1" | LC_ALL=C sort; }
got_fail() { grep -v '^#' "$1" | awk '{ print $1, $2 }' | LC_ALL=C sort; }
same() { # same FILE_A FILE_B LABEL: diff, and show the start of a difference
  if diff -q "$1" "$2" >/dev/null; then return 0; fi
  diag "$3 differs ($(wc -l <"$1") expected lines, $(wc -l <"$2") got):"
  diff "$1" "$2" | head -10 | sed 's/^/#   /'
  return 1
}
expect() { # expect DESCRIPTION 'shell condition' (evaluated here, so && works)
  local d=$1; shift
  if eval "$1"; then ok "$d"; else not_ok "$d"; fi
}
# Stop with one clear failure if our namespaces were deleted from outside (a
# concurrent `ip -all netns delete`): every later check would fail for that
# reason alone.
ns_guard() {
  [ -e "/run/netns/$CLI" ] && [ -e "/run/netns/$UP" ] && return 0
  not_ok "namespaces $CLI/$UP were deleted by something outside this test; results are void"
  tap_done; exit 1
}
build() { # build LABEL ARGS... : runs the builder in cli, sets RC, ERR file, SECS
  local label=$1; shift
  local t0 t1
  ns_guard
  t0=$(date +%s.%N)
  ip netns exec "$CLI" "$EP_CLI" cache build "$@" >"$T/$label.stdout" 2>"$T/$label.stderr"
  RC=$?
  t1=$(date +%s.%N)
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')  # awk, not bc: bc is not in a minimal Debian
  ERR=$T/$label.stderr
}

dns_upstream_start "$UP" 10.99.53.2 "$Z" >/dev/null
check "nsd serves the generated zone on 10.99.53.2" [ -n "${DNS_UPSTREAM_PID:-}" ]
Z2=$T/half
dns_zone_generate "$Z2" edge.test $((N / 2))
dns_upstream_start "$UP" 10.99.53.4 "$Z2" >/dev/null
check "a second nsd serves half the names on 10.99.53.4" [ -n "${DNS_UPSTREAM_PID:-}" ]
R=10.99.53.2:53
ok_resp=1
dns_responder_start "$UP" 10.99.53.3:53 --upstream "$R" \
  --mode servfail --match servfail.edge.test --mode refused --match refused.edge.test \
  --mode no-chase >/dev/null || ok_resp=0
dns_responder_start "$UP" 10.99.53.6:53 --upstream "$R" --mode spoof 20 >/dev/null || ok_resp=0
dns_responder_start "$UP" 10.99.53.7:53 --upstream "$R" --mode wrong-port >/dev/null || ok_resp=0
dns_responder_start "$UP" 10.99.53.8:53 --upstream "$R" --mode wrong-id >/dev/null || ok_resp=0
dns_responder_start "$UP" 10.99.53.9:53 --upstream "$R" --mode wrong-question >/dev/null || ok_resp=0
check "responders listen on 10.99.53.3 and .6-.9" [ "$ok_resp" = 1 ]
dns_upstream_drop "$UP" 20 10.99.53.3
dns_upstream_blackhole_addr() { ip netns exec "$UP" nft add rule inet ep_dns_faults input ip daddr "$1" udp dport 53 drop; }
dns_upstream_blackhole_addr 10.99.53.5

# 1. The mix: A, AAAA, CNAME chains the resolver does not chase, NXDOMAIN,
# NODATA, SERVFAIL, REFUSED, a CNAME loop, a truncated answer (TCP), bad
# lines, and 20% of the queries lost. Retries are generous so that a lost
# query never becomes a wrong result: the check is exact.
OUT=$T/out/preload.hosts
mkdir -p "$T/out"
build mix --domains "$T/domains.txt" --resolver 10.99.53.3 --out "$OUT" --timeout-ms 250 --retries 12
check "mix: exit 0 (in ${SECS}s)" [ "$RC" = 0 ]
exp_hosts "$T/expected.txt" >"$T/want.hosts"; got_hosts "$OUT" >"$T/got.hosts"
check "mix: hosts file has exactly the expected $(wc -l <"$T/want.hosts") address lines" same "$T/want.hosts" "$T/got.hosts" hosts
exp_fail "$T/expected.txt" >"$T/want.fail"; got_fail "$OUT.report" >"$T/got.fail"
check "mix: report lists exactly the $(wc -l <"$T/want.fail") failed names with their outcome" same "$T/want.fail" "$T/got.fail" report
check "mix: a CNAME'd name carries its final address under its own name" grep -qx "198.18.0.13 n13.edge.test" "$OUT"
check "mix: the 100-address name came over TCP" [ "$(grep -c ' n7.edge.test$' "$OUT")" = 100 ]
allbad=1
for l in $BAD_LINES; do grep -q "domains.txt:$l: " "$ERR" || { allbad=0; diag "no message for bad line $l"; }; done
expect "mix: the 6 bad lines are reported with their line numbers ($BAD_LINES)" '[ "$allbad" = 1 ] && [ "$(echo $BAD_LINES | wc -w)" = 6 ]'
check "mix: summary line with counts and rate" grep -qE "^cache build: [0-9]+ names: [0-9]+ resolved, [0-9]+ nodata, [0-9]+ nxdomain, [0-9]+ failed .* s, [0-9]+ names/s" "$ERR"
check "mix: header names the resolver and the counts" grep -q "^# resolvers: 10.99.53.3:53" "$OUT"
check "mix: lost queries were retried" grep -qE "retries [1-9]" "$ERR"
expect "mix: written 0644, no temporary file left" '[ "$(stat -c %a "$OUT")" = 644 ] && [ "$(ls -A "$T/out" | wc -l)" = 2 ]'
check "mix: progress lines when stderr is not a terminal" grep -qE "^cache build: [0-9]+/[0-9]+ names|^cache build: [0-9]+ names:" "$ERR"
diag "$(grep -E '^cache build: ' "$ERR" | tail -2 | tr '\n' ' ')"
# dnsmasq takes the file as it is (addn-hosts) and answers from it.
if command -v dnsmasq >/dev/null; then
  ip netns exec "$CLI" dnsmasq --keep-in-foreground --no-resolv --no-hosts --addn-hosts="$OUT" \
    --listen-address=127.0.0.1 --port=5300 --bind-interfaces --user=root --pid-file="$T/dnsmasq.pid" \
    --log-facility="$T/dnsmasq.log" >/dev/null 2>&1 </dev/null &
  netns_track_pid $!
  wait_for 5 grep -q "read $OUT" "$T/dnsmasq.log"
  a=$(ip netns exec "$CLI" kdig +retry=0 +time=1 @127.0.0.1 -p 5300 n13.edge.test A +short 2>/dev/null)
  aaaa=$(ip netns exec "$CLI" kdig +retry=0 +time=1 @127.0.0.1 -p 5300 n13.edge.test AAAA +short 2>/dev/null)
  expect "dnsmasq loads the snapshot ($(grep -o 'read .* names' "$T/dnsmasq.log" | sed 's|.* - ||')) and answers a CNAME'd name with its final A and AAAA" \
    '[ "$a" = 198.18.0.13 ] && [ "$aaaa" = 2001:db8:1:e::1 ]'
  kill "$(cat "$T/dnsmasq.pid" 2>/dev/null)" 2>/dev/null
fi

# 2. Empty and missing domains files, bad usage.
printf '# nothing here\n\n   \n' >"$T/empty.txt"
build empty --domains "$T/empty.txt" --resolver "$R" --out "$T/empty.hosts"
expect "empty domains file: exit 0, header-only hosts file" '[ "$RC" = 0 ] && [ "$(grep -vc '\''^#'\'' "$T/empty.hosts")" = 0 ]'
build missing --domains "$T/no-such-file" --resolver "$R" --out "$T/missing.hosts"
expect "missing domains file: exit 2, message, nothing written" '[ "$RC" = 2 ] && grep -q "no-such-file" "$ERR" && [ ! -e "$T/missing.hosts" ]'
build badres --domains "$T/domains.txt" --resolver 10.99.53.300 --out "$T/badres.hosts"
expect "bad resolver address: exit 2 with a message" '[ "$RC" = 2 ] && grep -q "bad resolver address" "$ERR"'
build badopt --domains "$T/domains.txt" --resolver "$R" --out "$T/badopt.hosts" --concurrency 0
expect "bad option value: exit 2" '[ "$RC" = 2 ] && [ ! -e "$T/badopt.hosts" ]'
build noout --domains "$T/domains.txt" --resolver "$R"
check "missing --out: exit 2" [ "$RC" = 2 ]

# 3. A resolver that never answers: exit 1, nothing written, and it gives up
# after one round of attempts (defaults: 3 x 1000 ms) instead of timing out
# every name in turn. Bound: 6 s.
build dead --domains "$Z/domains.txt" --resolver 10.99.53.5 --out "$T/dead.hosts"
expect "dead resolver: exit 1, nothing written, within 6 s (took ${SECS}s)" '[ "$RC" = 1 ] && [ ! -e "$T/dead.hosts" ] && [ ! -e "$T/dead.hosts.report" ] && awk -v s="$SECS" "BEGIN { exit !(s < 6) }"'
check "dead resolver: says no resolver answered" grep -q "no resolver answered" "$ERR"

# 4. Two resolvers, one dead: every name resolves exactly as expected.
build onedead --domains "$Z/domains.txt" --resolver 10.99.53.5 --resolver "$R" --out "$T/onedead.hosts" --timeout-ms 300
exp_hosts "$Z/expected.txt" >"$T/want2.hosts"; got_hosts "$T/onedead.hosts" >"$T/got2.hosts"
expect "one of two resolvers dead: exit 0, all names as expected (in ${SECS}s)" '[ "$RC" = 0 ] && same "$T/want2.hosts" "$T/got2.hosts" hosts && [ "$(got_fail "$T/onedead.hosts.report" | grep -vc -E '\'' (nxdomain|nodata)$'\'')" = 0 ]'

# 5. RFC 5452: spoofed replies (random ids, another source port, wrong id,
# wrong question) are counted and ignored.
build spoof --domains "$Z/domains.txt" --resolver 10.99.53.6 --out "$T/spoof.hosts" --timeout-ms 500
got_hosts "$T/spoof.hosts" >"$T/got3.hosts"
expect "spoofer racing 20 random-id replies per query: exact result" '[ "$RC" = 0 ] && same "$T/want2.hosts" "$T/got3.hosts" hosts'
check "spoofer: the wrong-id replies were counted" grep -qE "[1-9][0-9]* wrong id" "$ERR"
build wport --domains "$Z/domains.txt" --resolver 10.99.53.7 --out "$T/wport.hosts" --timeout-ms 500
got_hosts "$T/wport.hosts" >"$T/got4.hosts"
expect "wrong answers from another port: ignored, exact result" '[ "$RC" = 0 ] && same "$T/want2.hosts" "$T/got4.hosts" hosts && grep -qE "[1-9][0-9]* wrong source" "$ERR"'
head -50 "$Z/domains.txt" >"$T/d50.txt"
build wid --domains "$T/d50.txt" --resolver 10.99.53.8 --out "$T/wid.hosts" --timeout-ms 200 --retries 1
expect "every reply with a wrong id: none accepted, exit 1, nothing written" '[ "$RC" = 1 ] && [ ! -e "$T/wid.hosts" ] && grep -qE "[1-9][0-9]* wrong id" "$ERR"'
build wq --domains "$T/d50.txt" --resolver 10.99.53.9 --out "$T/wq.hosts" --timeout-ms 200 --retries 1
expect "every reply with a wrong question: none accepted, exit 1" '[ "$RC" = 1 ] && [ ! -e "$T/wq.hosts" ] && grep -qE "[1-9][0-9]* wrong question" "$ERR"'

# 6. The loss guard: a resolver that knows only half the names must not
# shrink the snapshot; --force and a higher --max-loss let it.
G=$T/guard.hosts
build g1 --domains "$Z/domains.txt" --resolver "$R" --out "$G"
sum1=$(sha256sum "$G" | cut -d' ' -f1)
build g2 --domains "$Z/domains.txt" --resolver 10.99.53.4 --out "$G"
check "loss guard: half the names gone -> exit 3" [ "$RC" = 3 ]
check "loss guard: old snapshot untouched" [ "$(sha256sum "$G" | cut -d' ' -f1)" = "$sum1" ]
check "loss guard: message with the numbers" grep -qE "lost [0-9]+ of its [0-9]+ names \([0-9.]+% > --max-loss 10%\)" "$ERR"
diag "$(grep refusing "$ERR")"
build g3 --domains "$Z/domains.txt" --resolver 10.99.53.4 --out "$G" --max-loss 60
expect "loss guard: --max-loss 60 accepts a 50% loss" '[ "$RC" = 0 ] && [ "$(sha256sum "$G" | cut -d'\'' '\'' -f1)" != "$sum1" ]'
build g4 --domains "$Z/domains.txt" --resolver "$R" --out "$G"
build g5 --domains "$Z/domains.txt" --resolver 10.99.53.4 --out "$G" --force
expect "loss guard: --force overrides" '[ "$RC" = 0 ] && [ "$(grep -vc '\''^#'\'' "$G")" -lt "$(grep -vc '\''^#'\'' "$T/onedead.hosts")" ]'

# 6b. The change guard: poisoning looks like change, not loss. An upstream
# whose zone gives other addresses to every name with a direct A record
# (about 65% of the snapshot's names) must not replace the snapshot; one that
# changed a few names (under 1%) passes.
zone_with_new_addresses() { # DIR MAX_I: copy of $Z, n1..nMAX_I (A records) in 198.19.100.0/22
  mkdir -p "$1" && cp "$Z"/*.zone "$Z/zones" "$1"/ &&
    awk -F'\t' -v k="$2" 'BEGIN { OFS = "\t" }
      $2 == "A" && $1 ~ /^n[0-9]+$/ { i = substr($1, 2) + 0
        if (i <= k && i != 7) $3 = sprintf("198.19.%d.%d", 100 + int(i / 256) % 4, i % 256) }
      { print }' "$Z/edge.test.zone" >"$1/edge.test.zone"
}
ip -n "$UP" addr add 10.99.53.11/32 dev lo
ip -n "$UP" addr add 10.99.53.12/32 dev lo
zone_with_new_addresses "$T/zpoison" "$N" && dns_upstream_start "$UP" 10.99.53.11 "$T/zpoison" >/dev/null
zone_with_new_addresses "$T/zsmall" 30 && dns_upstream_start "$UP" 10.99.53.12 "$T/zsmall" >/dev/null
C=$T/change.hosts
build c1 --domains "$Z/domains.txt" --resolver "$R" --out "$C"
csum=$(sha256sum "$C" | cut -d' ' -f1)
build c2 --domains "$Z/domains.txt" --resolver 10.99.53.11 --out "$C"
check "change guard: most names with new addresses -> exit 3" [ "$RC" = 3 ]
check "change guard: old snapshot untouched" [ "$(sha256sum "$C" | cut -d' ' -f1)" = "$csum" ]
check "change guard: message says how many changed" \
  grep -qE "[0-9]+ of its [0-9]+ names \([0-9.]+%\) changed their addresses \(> --max-change 25%\)" "$ERR"
check "change guard: a few changed names are shown" grep -q "^cache build: changed: n[0-9]*\.edge\.test$" "$ERR"
diag "$(grep refusing "$ERR")"
build c3 --domains "$Z/domains.txt" --resolver 10.99.53.12 --out "$C"
expect "change guard: a small change (n1..n30) passes and is written" \
  '[ "$RC" = 0 ] && grep -qx "198.19.100.1 n1.edge.test" "$C" && ! grep -q "^198.18.0.1 n1.edge.test" "$C"'
build c4 --domains "$Z/domains.txt" --resolver 10.99.53.11 --out "$C" --force
expect "change guard: --force overrides" '[ "$RC" = 0 ] && grep -qx "198.19.100.2 n2.edge.test" "$C"'

# 7. Scale: 128k names against nsd, all resolved exactly.
if [ "$BIG" -gt 0 ]; then
  ZB=$T/big
  dns_zone_generate "$ZB" big.test "$BIG"
  ip -n "$UP" addr add 10.99.53.10/32 dev lo
  dns_upstream_start "$UP" 10.99.53.10 "$ZB" >/dev/null
  build big --domains "$ZB/domains.txt" --resolver 10.99.53.10 --out "$T/big.hosts" --quiet
  exp_hosts "$ZB/expected.txt" >"$T/wantb.hosts"; got_hosts "$T/big.hosts" >"$T/gotb.hosts"
  expect "$BIG names: exit 0 in ${SECS}s, every name exactly as expected" '[ "$RC" = 0 ] && same "$T/wantb.hosts" "$T/gotb.hosts" hosts'
  expect "$BIG names: --quiet prints no progress, only the summary" '[ "$(grep -c '\''/.* names ('\'' "$ERR")" = 0 ] && grep -q "names/s" "$ERR"'
  diag "$(grep -E '^cache build: [0-9]+ names:' "$ERR")"
fi

tap_done
