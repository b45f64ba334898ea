# Certificates for the certificate sync tests, made with the openssl CLI.
#
#   certs_init DIR              a scratch CA workspace under DIR
#   certs_ca NAME               self-signed CA: $CERTS_DIR/NAME.crt, NAME.key
#   certs_leaf CA OUT CN [SAN] [START END] [EXT]
#                               leaf signed by CA: OUT.crt, OUT.key (EC P-256);
#                               SAN "DNS:a,URI:spiffe://x" (default DNS:CN);
#                               START/END as openssl ca's YYYYMMDDHHMMSSZ
#                               (default now-1h .. +30 days); EXT extra
#                               extension lines (e.g. extendedKeyUsage=codeSigning)
#   certs_stamp SECONDS         the openssl ca date SECONDS from now (may be negative)
#   certs_serial FILE           the serial of a certificate, upper-case hex
#   certs_k8s_write SRC FROM    writes the files of directory FROM into SRC the way
#                               the kubelet's AtomicWriter does: a timestamped
#                               directory, ..data swapped with one rename,
#                               tls.crt -> ..data/tls.crt links; sets
#                               CERTS_SWAP_NS to the wall time of the swap
CERTS_DIR=

certs_init() {
  CERTS_DIR=$1
  mkdir -p "$CERTS_DIR/ca-db"
  : >"$CERTS_DIR/ca-db/index.txt"
  cat >"$CERTS_DIR/ca.cnf" <<CNF
[ca]
default_ca = ca_default
[ca_default]
dir = $CERTS_DIR/ca-db
database = \$dir/index.txt
new_certs_dir = \$dir
rand_serial = yes
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
}

certs_stamp() { date -u -d "@$(( $(date +%s) + $1 ))" +%Y%m%d%H%M%SZ; }

certs_ca() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=$1" -config "$CERTS_DIR/ca.cnf" -extensions v3_ca \
    -keyout "$CERTS_DIR/$1.key" -out "$CERTS_DIR/$1.crt" 2>/dev/null
}

certs_leaf() {
  local ca=$1 out=$2 cn=$3 san=${4:-DNS:$3} start=${5:-$(certs_stamp -3600)} end=${6:-$(certs_stamp 2592000)} ext=${7:-}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.key" 2>/dev/null &&
  openssl req -new -key "$out.key" -subj "/CN=$cn" -out "$out.csr" 2>/dev/null &&
  printf '[leaf]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n%s\n' \
    "$( [ -n "$ext" ] && [ "${ext%%=*}" = extendedKeyUsage ] && echo "${ext#*=}" || echo serverAuth,clientAuth)" \
    "$san" "$( [ "${ext%%=*}" = extendedKeyUsage ] || echo "$ext")" >"$out.ext" &&
  openssl ca -batch -config "$CERTS_DIR/ca.cnf" -cert "$CERTS_DIR/$ca.crt" -keyfile "$CERTS_DIR/$ca.key" \
    -in "$out.csr" -out "$out.crt" -startdate "$start" -enddate "$end" -extfile "$out.ext" -extensions leaf \
    -notext 2>/dev/null
}

certs_serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

certs_k8s_write() {
  local src=$1 from=$2 ts f
  ts="..$(date -u +%Y_%m_%d_%H_%M_%S).$(date +%N)"
  mkdir -p "$src/$ts"
  cp "$from"/* "$src/$ts/"
  ln -sfn "$ts" "$src/..data_tmp"
  CERTS_SWAP_NS=$(date +%s%N)
  mv -T "$src/..data_tmp" "$src/..data"
  for f in "$from"/*; do
    f=$(basename "$f")
    [ "$(readlink "$src/$f")" = "..data/$f" ] || ln -sfn "..data/$f" "$src/$f"
  done
  # the kubelet removes the previous directory at once
  for d in "$src"/..[0-9]*; do [ "$(basename "$d")" = "$ts" ] || rm -rf "$d"; done
}
