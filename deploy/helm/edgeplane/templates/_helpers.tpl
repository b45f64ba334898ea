{{/* Names and labels. */}}
{{- define "edgeplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgeplane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "edgeplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgeplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "edgeplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgeplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: edgeplane
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "edgeplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edgeplane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The user name the API server gives the agent's service account token;
     the admission policy applies to requests from it alone. */}}
{{- define "edgeplane.serviceAccountUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "edgeplane.serviceAccountName" .) -}}
{{- end -}}

{{/* What the agent writes to its own Node (agent/k8s/k8s.h): one label while
     DNS is failed over and one Node condition. The label is the agent's
     kubernetes.dns_unhealthy_label: the value the ConfigMap renders when set,
     else the agent's default (EP_K8S_DEFAULT_LABEL, agent/config/config.h).
     The condition type is fixed in the agent (EP_K8S_CONDITION_TYPE,
     agent/k8s/k8s.h). tests/install/helm.sh checks both defaults against the
     agent's source, so the policy and the agent cannot drift apart. */}}
{{- define "edgeplane.dnsUnhealthyLabel" -}}
{{- get (.Values.config.kubernetes | default dict) "dns_unhealthy_label" | default "edgeplane.io/dns-unhealthy" -}}
{{- end -}}
{{- define "edgeplane.nodeConditionType" -}}EdgeplaneDNSHealthy{{- end -}}

{{/* Whether the ValidatingAdmissionPolicy is rendered: admissionregistration/v1
     and the node-name claim in a service account token's user info are both
     there from Kubernetes 1.30 on (README.md, "Least privilege in the cluster"). */}}
{{- define "edgeplane.admissionPolicy" -}}
{{- if and .Values.rbac.admissionPolicy.enabled (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) -}}
true
{{- end -}}
{{- end -}}

{{- define "edgeplane.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the agent's container. deploy/Dockerfile installs with
     `make install PREFIX=/usr`, so the agent is /usr/sbin/edgeplane-agent. */}}
{{- define "edgeplane.agentPath" -}}/usr/sbin/edgeplane-agent{{- end -}}
{{- define "edgeplane.configDir" -}}/etc/edgeplane/config{{- end -}}
{{- define "edgeplane.configPath" -}}{{ include "edgeplane.configDir" . }}/config.yaml{{- end -}}

{{/* metrics.listen split into the probe host ("" = the pod's IP, i.e. the
     node's) and port. The schema admits only wildcard and loopback hosts. */}}
{{- define "edgeplane.metricsPort" -}}
{{- regexFind "[0-9]+$" .Values.config.metrics.listen -}}
{{- end -}}
{{- define "edgeplane.metricsLoopback" -}}
{{- $host := regexReplaceAll ":[0-9]+$" .Values.config.metrics.listen "" -}}
{{- if eq $host "127.0.0.1" -}}127.0.0.1{{- else if eq $host "[::1]" -}}::1{{- end -}}
{{- end -}}

{{/* The certificate sets as the agent sees them: the chart-only secretName
     dropped, source (or bundle) {dir: ...} defaulted to where the Secret is
     mounted; a plain path as source is taken as that dir. */}}
{{- define "edgeplane.certSource" -}}
{{- $src := .source | default .bundle -}}
{{- if kindIs "map" $src -}}
{{- $src = $src.dir -}}
{{- end -}}
{{- default (printf "/etc/edgeplane/cert-source/%s" .name) $src -}}
{{- end -}}

{{/* NS/NAME of a cert entry's secret source (watched through the API), or "". */}}
{{- define "edgeplane.certSecretRef" -}}
{{- $src := .source | default .bundle -}}
{{- if and (kindIs "map" $src) $src.secret -}}{{ $src.secret }}{{- end -}}
{{- end -}}

{{/* "true" when the certs entry's source is {csr: ...}: the node's own identity through the CSR API. */}}
{{- define "edgeplane.certCSR" -}}
{{- if and (kindIs "map" .source) (hasKey .source "csr") -}}true{{- end -}}
{{- end -}}

{{/* "true" when any certs entry is a csr source. */}}
{{- define "edgeplane.certsHaveCSR" -}}
{{- range .Values.config.certs -}}{{- include "edgeplane.certCSR" . -}}{{- end -}}
{{- end -}}

{{/* The agent's config file. Sections in the order of docs/config.md; an
     empty section is left out so the agent's defaults apply. */}}
{{- define "edgeplane.agentConfig" -}}
{{- $c := .Values.config -}}
{{- $parts := list -}}
{{- range $k := list "node" "datapath" "interfaces" "services" "dns" "kubernetes" "certs" "metrics" "control" -}}
{{- $v := get $c $k -}}
{{- if and $c.dns (eq $k "datapath") -}}
{{- /* DNS failover's socket hooks go to the host's cgroup v2 root, mounted
     into the pod (edgeplane.hostCgroupMount); a cgroup_root set in the values wins. */ -}}
{{- $v = merge (dict) ($v | default (dict)) (dict "cgroup_root" (include "edgeplane.hostCgroupMount" $)) -}}
{{- end -}}
{{- if and $v (eq $k "certs") -}}
{{- $certs := list -}}
{{- range $v -}}
{{- $e := omit . "secretName" -}}
{{- /* agent/certs/certs_config.c: source or bundle, each {dir: PATH} or {secret: NS/NAME}; a source may be {csr: ...} */ -}}
{{- if not (or (include "edgeplane.certSecretRef" .) (include "edgeplane.certCSR" .)) -}}
{{- $_ := set $e (ternary "bundle" "source" (hasKey . "bundle")) (dict "dir" (include "edgeplane.certSource" .)) -}}
{{- end -}}
{{- $certs = append $certs $e -}}
{{- end -}}
{{- $v = $certs -}}
{{- end -}}
{{- if $v -}}
{{- $parts = append $parts (toYaml (dict $k $v)) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $parts -}}
{{- end }}

{{/* Whether the pod gets a service account token. */}}
{{- define "edgeplane.automountToken" -}}
{{- $k := .Values.config.kubernetes -}}
{{- if kindIs "bool" .Values.serviceAccount.automountToken -}}
{{- .Values.serviceAccount.automountToken -}}
{{- else if and $k (ne (toString (get $k "enabled")) "false") -}}
true
{{- else if and (not (and $k (eq (toString (get $k "enabled")) "false"))) (or (include "edgeplane.certSecretNamespaces" .) (include "edgeplane.certsHaveCSR" .)) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* The capabilities the agent needs (README.md, "Capabilities"). dnsmasq
and the policy responder run in the cache container (edgeplane.cacheCapabilities). */}}
{{- define "edgeplane.capabilities" -}}
{{- $caps := list "BPF" "PERFMON" "NET_ADMIN" "SYS_ADMIN" -}}
{{- if .Values.config.dns -}}
{{- /* The agent signals dnsmasq (SIGHUP: a new preload; SIGTERM: a new
config, a hung one), which runs as nobody in the cache container: root
without CAP_KILL may not signal another user's process. */ -}}
{{- $caps = append $caps "KILL" -}}
{{- end -}}
{{- range .Values.securityContext.extraCapabilities -}}
{{- $caps = append $caps (trimPrefix "CAP_" .) -}}
{{- end -}}
{{- toYaml (uniq $caps) -}}
{{- end -}}

{{/* The cache container's (config.dns): dnsmasq binds port 53 and then drops
from root to nobody; the policy responder binds port 299 (a port only root
can bind, so no other user can take its place). */}}
{{- define "edgeplane.cacheCapabilities" -}}
{{- toYaml (list "NET_BIND_SERVICE" "SETUID" "SETGID") -}}
{{- end -}}

{{/* The cache's spawner socket, under hostPaths.run as both containers mount it. */}}
{{- define "edgeplane.spawnerSocket" -}}/run/edgeplane/spawner.sock{{- end -}}

{{/* Checks that need more than one value; each names the values to change. */}}
{{- define "edgeplane.validate" -}}
{{- range .Values.agent.extraArgs -}}
{{- if regexMatch "^--detach-on-exit" . -}}
{{- fail "agent.extraArgs: --detach-on-exit is refused: every pod stop (upgrade, eviction, node drain) would detach the datapath and drop all flows. To remove edgeplane from a node see docs/install.md, \"Removal\"." -}}
{{- end -}}
{{- if or (regexMatch "^--config" .) (regexMatch "^-c" .) (regexMatch "^--check-config" .) -}}
{{- fail (printf "agent.extraArgs: %s is set by the chart (the config comes from .Values.config)" .) -}}
{{- end -}}
{{- end -}}
{{- $c := .Values.config -}}
{{- if not (hasPrefix "/sys/fs/bpf/" $c.datapath.bpffs) -}}
{{- fail (printf "config.datapath.bpffs %q must be a directory under /sys/fs/bpf/: that is where the host's bpffs is mounted into the pod, and pins anywhere else would be lost with the pod" $c.datapath.bpffs) -}}
{{- end -}}
{{- if not (hasPrefix "/run/edgeplane/" $c.control.socket) -}}
{{- fail (printf "config.control.socket %q must be under /run/edgeplane/: the host directory hostPaths.run is mounted there, so the CLI on the node finds the socket" $c.control.socket) -}}
{{- end -}}
{{- $host := regexReplaceAll ":[0-9]+$" $c.metrics.listen "" -}}
{{- $mport := include "edgeplane.metricsPort" . | int -}}
{{- if not (has $host (list "" "0.0.0.0" "[::]" "127.0.0.1" "[::1]")) -}}
{{- fail (printf "config.metrics.listen %q: the host must be empty, 0.0.0.0 or [::] (every node address: probes and Prometheus reach it) or 127.0.0.1 or [::1] (loopback: probes only). One config serves every node, so a node's own address cannot be named" $c.metrics.listen) -}}
{{- end -}}
{{- if or (lt $mport 1) (gt $mport 65535) -}}
{{- fail (printf "config.metrics.listen %q: the port must be 1-65535" $c.metrics.listen) -}}
{{- end -}}
{{- $uplink := false -}}
{{- range $c.interfaces -}}
{{- if eq .role "uplink" -}}{{- $uplink = true -}}{{- end -}}
{{- end -}}
{{- if and $c.services (not $uplink) -}}
{{- fail "config.services: at least one interface in config.interfaces needs role: uplink (clients reach the VIPs there; the XDP load balancer runs on it)" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (include "edgeplane.metricsLoopback" .) -}}
{{- fail (printf "serviceMonitor.enabled: Prometheus cannot scrape config.metrics.listen %q (loopback); use \":PORT\" or \"0.0.0.0:PORT\"" .Values.config.metrics.listen) -}}
{{- end -}}
{{- $names := dict -}}
{{- range .Values.config.services -}}
{{- if hasKey $names .name -}}
{{- fail (printf "config.services: the name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $names .name true -}}
{{- end -}}
{{- $ifs := dict -}}
{{- range .Values.config.interfaces -}}
{{- if hasKey $ifs .name -}}
{{- fail (printf "config.interfaces: %q is listed twice" .name) -}}
{{- end -}}
{{- $_ := set $ifs .name true -}}
{{- end -}}
{{- $actions := .Values.rbac.admissionPolicy.validationActions -}}
{{- if and (has "Deny" $actions) (has "Warn" $actions) -}}
{{- fail "rbac.admissionPolicy.validationActions: Deny and Warn together are refused by the API server (a denied request cannot also warn); use [Deny] to enforce, or [Warn, Audit] for a dry run" -}}
{{- end -}}
{{- $certRoot := trimSuffix "/" .Values.hostPaths.certs -}}
{{- range .Values.config.certs -}}
{{- if not (hasPrefix (printf "%s/" $certRoot) .target) -}}
{{- fail (printf "config.certs[%s].target %q must be under hostPaths.certs (%s), the host directory mounted into the pod" .name .target $certRoot) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where the host's cgroup v2 root is mounted in the agent's container. */}}
{{- define "edgeplane.hostCgroupMount" -}}
/host/cgroup
{{- end }}

{{/* Secrets the certs section watches through the API, as JSON {namespace: [names]}; "" when none. */}}
{{- define "edgeplane.certSecretNamespaces" -}}
{{- $by := dict -}}
{{- range .Values.config.certs -}}
{{- $ref := include "edgeplane.certSecretRef" . -}}
{{- if $ref -}}
{{- $p := splitList "/" $ref -}}
{{- $_ := set $by (index $p 0) (append (get $by (index $p 0) | default list) (index $p 1)) -}}
{{- end -}}
{{- end -}}
{{- if $by -}}{{ toJson $by }}{{- end -}}
{{- end -}}

{{/* The Node annotations the agent writes, as a JSON list (a CEL literal):
     rbac.admissionPolicy.ownedAnnotations, plus certificate sync's
     edgeplane.io/cert-serials (agent/certs/cert_annotate.h) when certs are set. */}}
{{- define "edgeplane.ownedAnnotations" -}}
{{- $a := .Values.rbac.admissionPolicy.ownedAnnotations | default list -}}
{{- if .Values.config.certs -}}
{{- $a = append $a "edgeplane.io/cert-serials" | uniq -}}
{{- end -}}
{{- toJson $a -}}
{{- end -}}
