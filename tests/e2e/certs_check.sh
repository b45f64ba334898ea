#!/usr/bin/env bash
# Certificate set validation (agent/certs/cert_check.c, cert_store.c read
# side), through ep_certs_drive check: the exact read + validate path of
# the agent. Every case is made with openssl here and must be accepted or
# refused with the reason named. Needs no root, no lab.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/certs.sh
B=${EP_BUILD:-$PWD/build}
DRIVE=$B/tests/tools/ep_certs_drive
[ -x "$DRIVE" ] || { echo "1..0 # SKIP $DRIVE not built (make tests-bin)"; exit 0; }
T=$(mktemp -d /tmp/ep-certs-check.XXXXXX)
trap 'rm -rf "$T"' EXIT
certs_init "$T/ca"
C=$T/ca
certs_ca ca && certs_ca other || { not_ok "openssl makes the CAs"; tap_done; exit 1; }

# set NAME CRT KEY CA: a source directory from the given files ("-" = absent)
set_of() {
  local d=$T/$1; mkdir -p "$d"
  [ "$2" = - ] || cp "$2" "$d/tls.crt"
  [ "$3" = - ] || cp "$3" "$d/tls.key"
  [ "$4" = - ] || cp "$4" "$d/ca.crt"
  echo "$d"
}
# expect NAME RE DIR [ARGS]: the drive's verdict matches RE
expect() {
  local name=$1 re=$2 dir=$3 out; shift 3
  out=$("$DRIVE" check "$dir" "$@" 2>&1)
  if grep -qE -- "$re" <<<"$out"; then ok "$name: $out"; else not_ok "$name: got '$out', want /$re/"; fi
}

certs_leaf ca "$C/good" payments.edge.example "DNS:payments.edge.example,URI:spiffe://edge.example/ns/pay/sa/web,IP:10.1.2.3"
certs_leaf ca "$C/good2" payments.edge.example
certs_leaf ca "$C/expired" payments.edge.example "" "$(certs_stamp -864000)" "$(certs_stamp -3600)"
certs_leaf ca "$C/future" payments.edge.example "" "$(certs_stamp 7200)" "$(certs_stamp 864000)"
certs_leaf ca "$C/soon" payments.edge.example "" "$(certs_stamp 30)" "$(certs_stamp 864000)"
certs_leaf other "$C/foreign" payments.edge.example
certs_leaf ca "$C/codesign" payments.edge.example "" "" "" "extendedKeyUsage=codeSigning"

G=$(set_of good "$C/good.crt" "$C/good.key" "$C/ca.crt")
expect "valid set" "^ok serial=$(certs_serial "$C/good.crt") " "$G"
expect "expected DNS name, URI (SPIFFE ID) and IP all present" "^ok " "$G" \
  --san payments.edge.example --san spiffe://edge.example/ns/pay/sa/web --san 10.1.2.3
expect "expected name absent" "^refused: tls.crt is not for other.edge.example \(expect.san\)" "$G" \
  --san payments.edge.example --san other.edge.example
expect "expected SPIFFE ID absent" "^refused: tls.crt is not for spiffe://edge.example/ns/x" "$G" \
  --san spiffe://edge.example/ns/x
expect "expired" "^refused: tls.crt has expired: NotAfter 20" \
  "$(set_of expired "$C/expired.crt" "$C/expired.key" "$C/ca.crt")"
expect "not yet valid" "^refused: tls.crt is not yet valid: NotBefore .* \+ 60s skew" \
  "$(set_of future "$C/future.crt" "$C/future.key" "$C/ca.crt")"
expect "NotBefore 30 s ahead, within the 60 s skew margin" "^ok " \
  "$(set_of soon "$C/soon.crt" "$C/soon.key" "$C/ca.crt")"
expect "NotBefore 30 s ahead with no skew margin" "^refused: tls.crt is not yet valid" \
  "$T/soon" --skew 0
expect "wrong key" "^refused: tls.key does not match the certificate in tls.crt \(serial " \
  "$(set_of wrongkey "$C/good.crt" "$C/good2.key" "$C/ca.crt")"
expect "other CA" "^refused: tls.crt does not verify to the CA bundle: unable to get local issuer certificate" \
  "$(set_of foreign "$C/foreign.crt" "$C/foreign.key" "$C/ca.crt")"
expect "other CA, but the configured trust bundle is that CA" "^ok " "$T/foreign" \
  --trust "$(set_of trust-other - - "$C/other.crt")"
expect "trust bundle pinned: a source's own ca.crt does not widen it" \
  "^refused: tls.crt does not verify to the CA bundle" \
  "$(set_of foreign-own "$C/foreign.crt" "$C/foreign.key" "$C/other.crt")" --trust "$T/trust-other/../good"
head -c 300 "$C/good.crt" >"$T/trunc.crt"
expect "truncated PEM" "^refused: tls.crt: PEM block 1 of 1 is not a whole certificate" \
  "$(set_of trunc "$T/trunc.crt" "$C/good.key" "$C/ca.crt")"
{ cat "$C/good.crt"; head -c 200 "$C/good2.crt"; } >"$T/trunc2.crt"
expect "a whole certificate followed by a truncated one" "^refused: tls.crt: PEM block 2 of 2 is not a whole" \
  "$(set_of trunc2 "$T/trunc2.crt" "$C/good.key" "$C/ca.crt")"
head -c 4000 /dev/urandom | base64 >"$T/garbage.pem"
expect "garbage" "^refused: tls.crt holds no PEM block" \
  "$(set_of garbage "$T/garbage.pem" "$C/good.key" "$C/ca.crt")"
head -c 2000 /dev/urandom >"$T/binary.bin"
expect "binary garbage" "^refused: tls.crt (is not PEM text|holds no PEM block)" \
  "$(set_of binary "$T/binary.bin" "$C/good.key" "$C/ca.crt")"
expect "garbage key" "^refused: tls.key must hold exactly one PEM private key block" \
  "$(set_of garbagekey "$C/good.crt" "$T/garbage.pem" "$C/ca.crt")"
expect "missing key file" "^refused: tls.key is missing" "$(set_of nokey "$C/good.crt" - "$C/ca.crt")"
D=$(set_of dangling - "$C/good.key" "$C/ca.crt"); ln -s ..data/tls.crt "$D/tls.crt"
expect "tls.crt a symlink to nothing" "^refused: tls.crt is missing" "$D"
expect "key without certificate" "^refused: tls.crt is missing" "$(set_of nocrt - "$C/good.key" "$C/ca.crt")"
expect "no CA bundle at all" "^refused: no CA bundle to verify against" "$(set_of noca "$C/good.crt" "$C/good.key" -)"
expect "empty certificate file" "^refused: tls.crt is empty" "$(set_of empty /dev/null "$C/good.key" "$C/ca.crt")"
D=$(set_of outside - "$C/good.key" "$C/ca.crt")
cp "$C/good.crt" "$T/elsewhere.crt"; ln -s "$T/elsewhere.crt" "$D/tls.crt"
expect "tls.crt symlinked outside its directory" "^refused: tls.crt resolves to $T/elsewhere.crt, outside the source directory $D" "$D"
D=$(set_of outside2 "$C/good.crt" "$C/good.key" "$C/ca.crt")
rm "$D/tls.key"; ln -s /etc/shadow "$D/tls.key"
expect "tls.key symlinked to /etc/shadow" "^refused: tls.key resolves to /etc/shadow, outside the source directory" "$D"
F=$(set_of k8s-files "$C/good.crt" "$C/good.key" "$C/ca.crt")
D=$(set_of k8s - - -); certs_k8s_write "$D" "$F"
expect "a mounted Secret's layout (..data symlinks inside the directory) is fine" "^ok " "$D"
{ cat "$C/good.crt"; head -c 2000000 /dev/zero | tr '\0' 'A'; } >"$T/huge.crt"
expect "huge file" "^refused: tls.crt is [0-9]+ bytes, more than the limit of 262144" \
  "$(set_of huge "$T/huge.crt" "$C/good.key" "$C/ca.crt")"
expect "CA certificate in place of a leaf" "^refused: tls.crt: the first certificate is a CA certificate" \
  "$(set_of caleaf "$C/ca.crt" "$C/ca.key" "$C/ca.crt")"
expect "extended key usage codeSigning only" "^refused: tls.crt: extended key usage allows neither serverAuth nor clientAuth" \
  "$(set_of codesign "$C/codesign.crt" "$C/codesign.key" "$C/ca.crt")"
openssl pkey -in "$C/good.key" -aes128 -passout pass:x -out "$T/enc.key" 2>/dev/null
expect "encrypted key is refused, never prompted for" "^refused: tls.key is not a readable private key" \
  "$(set_of enc "$C/good.crt" "$T/enc.key" "$C/ca.crt")" </dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$T/weak.key" 2>/dev/null
openssl req -new -key "$T/weak.key" -subj /CN=weak -out "$T/weak.csr" 2>/dev/null
printf '[leaf]\nbasicConstraints=CA:FALSE\nsubjectAltName=DNS:weak\n' >"$T/weak.ext"
openssl ca -batch -config "$C/../ca/ca.cnf" -cert "$C/ca.crt" -keyfile "$C/ca.key" -in "$T/weak.csr" -out "$T/weak.crt" \
  -days 2 -extfile "$T/weak.ext" -extensions leaf -notext 2>/dev/null
expect "RSA key of 1024 bits" "^refused: tls.key: RSA key of 1024 bits, fewer than 2048" \
  "$(set_of weak "$T/weak.crt" "$T/weak.key" "$C/ca.crt")"
# bundles: CA certificates only
expect "bundle of two CAs" "^ok .* certs=2" "$(set_of bundle - - <(cat "$C/ca.crt" "$C/other.crt"))" --bundle
expect "bundle holding a leaf" "^refused: ca.crt: certificate 2 is not a CA certificate" \
  "$(set_of bundle-leaf - - <(cat "$C/ca.crt" "$C/good.crt"))" --bundle
expect "bundle holding a key" "^refused: ca.crt: PEM block 2 of 2 is not a whole certificate" \
  "$(set_of bundle-key - - <(cat "$C/ca.crt" "$C/good.key"))" --bundle
expect "empty bundle" "^refused: ca.crt is missing" "$(set_of bundle-none - - -)" --bundle
tap_done
