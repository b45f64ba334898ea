# Helpers for the chart tests: render the chart and turn the manifests into
# JSON without PyYAML. Source it after tests/lib/netns.sh (for netns_tmpdir).
#
#   render_init                      once: sets HELM, CHART, RENDER_DIR
#   render NAME [helm args...]       helm template -> $RENDER_DIR/NAME.yaml and NAME.json
#                                    (a JSON list of every manifest); returns helm's status
#   mq NAME 'python expression'      evaluates the expression over NAME.json (see manifests.py);
#                                    exit 0 when it is true, else prints what it saw

render_init() {
  HELM=${HELM:-$EP_ROOT/.tools/bin/helm}
  CHART=$EP_ROOT/deploy/helm/edgeplane
  RENDER_DIR=$(netns_tmpdir)
  # yaml2json: a throwaway chart whose one template parses a file with helm's
  # own YAML parser (fromYaml, the same one `helm install` uses) and prints
  # every document as JSON. The output is one JSON object, itself valid YAML,
  # so helm accepts it as a manifest.
  mkdir -p "$RENDER_DIR/y2j/templates"
  printf 'apiVersion: v2\nname: y2j\nversion: 0.0.0\n' >"$RENDER_DIR/y2j/Chart.yaml"
  cat >"$RENDER_DIR/y2j/templates/out.yaml" <<'EOF'
{{- $docs := list -}}
{{- range regexSplit "(?m)^---[ \t]*$" (.Files.Get "in.yaml") -1 -}}
{{- $d := fromYaml . -}}
{{- if $d -}}{{- $docs = append $docs $d -}}{{- end -}}
{{- end -}}
{{ dict "kind" "Y2J" "apiVersion" "v1" "docs" $docs | toJson }}
EOF
}

# yaml2json IN.yaml OUT.json
yaml2json() {
  cp "$1" "$RENDER_DIR/y2j/in.yaml"
  "$HELM" template y2j "$RENDER_DIR/y2j" | grep '^{' >"$2"
}

render() {
  local name=$1 rc; shift
  "$HELM" template edgeplane "$CHART" --namespace kube-system "$@" \
    >"$RENDER_DIR/$name.yaml" 2>"$RENDER_DIR/$name.err"
  rc=$?
  [ $rc -eq 0 ] || return $rc
  yaml2json "$RENDER_DIR/$name.yaml" "$RENDER_DIR/$name.json"
}

mq() {
  local name=$1; shift
  "$PY3" "$EP_ROOT/tests/install/lib/manifests.py" "$RENDER_DIR/$name.json" "$@"
}

# config_of NAME OUT: the agent's config file from the rendered ConfigMap
config_of() { "$PY3" "$EP_ROOT/tests/install/lib/manifests.py" "$RENDER_DIR/$1.json" --config >"$2"; }
