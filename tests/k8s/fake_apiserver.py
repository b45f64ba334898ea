#!/usr/bin/python3
"""An API-faithful stand-in for kube-apiserver, for testing the agent's
Kubernetes client (agent/k8s/) where no real cluster can run.

It serves the slice of the core/v1 API the client uses, and serves it the way
kube-apiserver does, including the ways a client can get it wrong:

  * HTTPS only, with a certificate signed by a CA generated at start (openssl
    CLI) or given paths; bearer-token authentication (401 Status otherwise).
  * GET/PATCH /api/v1/nodes/NAME, PATCH /api/v1/nodes/NAME/status,
    GET /api/v1/nodes (list); POST/GET /api/v1/namespaces/NS/events,
    GET /api/v1/events.
  * PATCH bodies: application/merge-patch+json (RFC 7386 exactly: null
    deletes, objects merge recursively, anything else - lists included -
    replaces), application/strategic-merge-patch+json (the Node merge keys:
    status.conditions and status.addresses by "type"), application/json-patch+json
    (RFC 6902). Other or missing content types: 415, with the apiserver's text.
  * metadata.resourceVersion in a patch is a precondition: a stale one is a
    409 Conflict. A write that changes the object bumps resourceVersion (one
    cluster-wide counter, as etcd's revision); a no-op write does not, like
    the real storage layer.
  * PATCH on the main resource ignores status; PATCH on /status only changes
    status (the strategies of the nodes registry).
  * Validation with 422 Invalid Status objects: label keys/values, names,
    immutable uid; Events: name/generateName, the namespace rule for
    cluster-scoped involved objects (a Node event must live in "default"),
    and - stricter than the apiserver, so that a sloppy client cannot pass -
    involvedObject.kind/name, reason, message and type Normal|Warning.
    Malformed timestamps or wrongly typed fields: 400 BadRequest.
  * RBAC: a set of allowed "verb resource" pairs; others get the apiserver's
    403 Forbidden Status ("... cannot patch resource \"nodes/status\" ...").
  * Secrets (certificate sync's secret source): GET /api/v1/namespaces/NS/secrets
    [?fieldSelector=metadata.name=NAME] lists with the list's resourceVersion;
    with watch=1 it streams watch events as JSON lines (ADDED, MODIFIED,
    DELETED) from resourceVersion on, BOOKMARK events (allowWatchBookmarks)
    every second, closes after timeoutSeconds, and answers a resourceVersion
    older than the compaction point with an ERROR event carrying a 410 Expired
    Status, as etcd compaction makes the real one do.

  * CertificateSigningRequests (certificate sync's csr source, certificates.k8s.io/v1):
    POST /apis/certificates.k8s.io/v1/certificatesigningrequests (validated as the
    apiserver does: name, spec.request a base64 PEM CERTIFICATE REQUEST with a valid
    signature, signerName, usages, expirationSeconds >= 600; 409 AlreadyExists for a
    name in use), GET .../certificatesigningrequests/NAME. A built-in approver and
    signer (python3-cryptography) acts on each new CSR per the CSR policy: "auto"
    approves it and signs it with a test CA (WORKDIR/csr-signer-ca.crt) for
    expirationSeconds, or "cert_seconds" when set (shorter than the API allows, so
    tests see renewals), NotBefore backdated by "backdate_seconds" (default 1; Kubernetes'
    own signer backdates 5 minutes); "deny" adds a Denied condition with the policy's reason and
    message; "hold" leaves it pending until the policy changes.

Control (plain HTTP on 127.0.0.1, a separate port):
  GET  /_control/state                 nodes, events, token, rbac
  GET  /_control/requests[?since=N]    request log; DELETE clears it
  POST /_control/faults                a fault or a list of faults (below);
                                       DELETE clears them; GET lists them
  POST /_control/rbac                  {"allow": ["get nodes", ...] | "*"}
  POST /_control/token                 {"token": "..."}: the only token accepted from now on
  POST /_control/kubelet               {"node": NAME}: a kubelet heartbeat (a concurrent writer)
  POST /_control/nodes                 a Node object to add or replace (seeded with a uid/rv)
  POST /_control/reset                 back to the initial state
  POST /_control/secrets               {"namespace", "name", "type", "data": {k: base64}}:
                                       create or replace a Secret (a watch event);
                                       with "delete": true, delete it
  POST /_control/csr_policy            {"mode": "auto"|"deny"|"hold", "reason", "message",
                                       "cert_seconds", "backdate_seconds"}: pending CSRs are
                                       acted on at once
  GET  /_control/csrs                  the CSRs
  POST /_control/compact               forget history: watches from an older
                                       resourceVersion get 410 Gone
  POST /_control/close_watches         end every open watch stream (as an apiserver
                                       restart or a load balancer timeout does)

A fault matches a request by "method" and "path_regex" (both optional) and
applies to the next "count" matching requests (default 1, -1 = forever):
  {"status": 429, "retry_after": 2}    an error Status (429/500/503/504/...)
  {"delay_ms": 3000}                   answer late (combine with status, or not)
  {"drop_connection": true}            close the connection without an answer
  {"conflict": N}                      a concurrent writer (the kubelet) updates
                                       the node just before each of the next N
                                       node writes, so a client's resourceVersion
                                       goes stale
Faults apply before authentication, like a proxy or the apiserver's own
priority-and-fairness throttling would.

Prints "ready PORT CONTROL_PORT CA_PATH" on stdout once listening; exits on
SIGTERM/SIGINT. Standard library only (Debian's /usr/bin/python3), but for the CSR signer:
python3-cryptography, imported when a CSR is first signed.
"""

import argparse
import copy
import datetime
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
]
DEFAULT_ALLOW = [
    "get nodes", "list nodes", "patch nodes", "patch nodes/status",
    "create events", "get events", "list events",
]
# Strategic merge patch: the list fields of a Node that merge by key instead
# of being replaced (patchMergeKey tags in k8s.io/api/core/v1/types.go).
SMP_MERGE_KEYS = {
    ("status", "conditions"): "type",
    ("status", "addresses"): "type",
}

RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code, reason, message, details=None):
    """A metav1.Status failure, field order as the apiserver writes it."""
    o = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason}
    if details is not None:
        o["details"] = details
    o["code"] = code
    return o


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.status = status_obj(code, reason, message, details)
        self.code = code
        self.headers = headers or {}


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def invalid(kind, name, causes):
    """422 Invalid with field causes, as field.ErrorList.ToAggregate() renders it."""
    parts = ["%s: %s" % (c["field"], c["message"]) for c in causes]
    msg = '%s "%s" is invalid: ' % (kind, name)
    msg += parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", msg,
                    {"name": name, "kind": kind, "causes": causes})


def cause(reason, field, message):
    return {"reason": reason, "message": message, "field": field}


# ---------------------------------------------------------------- patches

def merge_patch(target, patch):
    """RFC 7386 MergePatch(Target, Patch), verbatim from section 2."""
    if isinstance(patch, dict):
        result = dict(target) if isinstance(target, dict) else {}
        for name, value in patch.items():
            if value is None:
                result.pop(name, None)
            else:
                result[name] = merge_patch(result.get(name), value)
        return result
    return copy.deepcopy(patch)


def strategic_merge_patch(target, patch, path=()):
    """The strategic merge patch semantics for the Node fields that have a
    patch strategy: maps merge, null deletes, the lists in SMP_MERGE_KEYS merge
    element-wise by their key (an element {"$patch": "delete", KEY: V} removes
    one), every other list replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    if patch.get("$patch") == "replace":
        patch = {k: v for k, v in patch.items() if k != "$patch"}
        return copy.deepcopy(patch)
    for name, value in patch.items():
        if name.startswith("$"):
            if name == "$patch":
                continue
            if name.startswith("$setElementOrder/") or name.startswith("$retainKeys") \
                    or name.startswith("$deleteFromPrimitiveList/"):
                continue  # ordering/retain directives: no effect on content here
            raise bad_request("unknown patch directive %s" % name)
        key = SMP_MERGE_KEYS.get(path + (name,))
        if value is None:
            result.pop(name, None)
        elif key and isinstance(value, list):
            cur = result.get(name)
            merged = copy.deepcopy(cur) if isinstance(cur, list) else []
            for item in value:
                if not isinstance(item, dict) or key not in item:
                    raise bad_request("map: %s does not contain declared merge key: %s"
                                      % (json.dumps(item), key))
                idx = next((i for i, m in enumerate(merged)
                            if isinstance(m, dict) and m.get(key) == item[key]), None)
                if item.get("$patch") == "delete":
                    if idx is not None:
                        merged.pop(idx)
                elif idx is None:
                    merged.append(strategic_merge_patch({}, item, path + (name,)))
                else:
                    merged[idx] = strategic_merge_patch(merged[idx], item, path + (name,))
            result[name] = merged
        else:
            result[name] = strategic_merge_patch(result.get(name), value, path + (name,))
    return result


def _pointer(doc, ptr):
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise bad_request("invalid JSON pointer %r" % ptr)
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]


def json_patch(doc, ops):
    """RFC 6902."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)

    def parent(path):
        parts = _pointer(doc, path)
        if not parts:
            raise bad_request("cannot operate on the document root")
        cur = doc
        for p in parts[:-1]:
            if isinstance(cur, list):
                cur = cur[int(p)]
            elif isinstance(cur, dict) and p in cur:
                cur = cur[p]
            else:
                raise bad_request("doc is missing path: %s" % path)
        return cur, parts[-1]

    def get(path):
        c, last = parent(path)
        if isinstance(c, list):
            return c[int(last)]
        if last not in c:
            raise bad_request("doc is missing path: %s" % path)
        return c[last]

    def remove(path):
        c, last = parent(path)
        if isinstance(c, list):
            return c.pop(int(last))
        if last not in c:
            raise bad_request("doc is missing path: %s" % path)
        return c.pop(last)

    def add(path, value):
        c, last = parent(path)
        if isinstance(c, list):
            if last == "-":
                c.append(value)
            else:
                c.insert(int(last), value)
        else:
            c[last] = value

    try:
        for op in ops:
            kind = op.get("op")
            if kind == "add":
                add(op["path"], copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(op["path"])
            elif kind == "replace":
                remove(op["path"])
                add(op["path"], copy.deepcopy(op["value"]))
            elif kind == "move":
                add(op["path"], remove(op["from"]))
            elif kind == "copy":
                add(op["path"], copy.deepcopy(get(op["from"])))
            elif kind == "test":
                if get(op["path"]) != op["value"]:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an "
                                   "error in our request")
            else:
                raise bad_request("Unexpected kind: %s" % kind)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
        raise bad_request("the server rejected our request due to an error in our request: %s"
                          % e)
    return doc


# ------------------------------------------------------------ validation

def check_time(v, field):
    if v is None:
        return
    if not isinstance(v, str) or not RFC3339_RE.match(v):
        raise bad_request('parsing time %s as "2006-01-02T15:04:05Z07:00": cannot parse (%s)'
                          % (json.dumps(v), field))


def check_str(v, field, allow_none=True):
    if v is None and allow_none:
        return
    if not isinstance(v, str):
        raise bad_request("json: cannot unmarshal %s into Go struct field %s of type string"
                          % (type(v).__name__, field))


def qualified_name_errors(key):
    errs = []
    prefix, _, name = key.rpartition("/")
    if "/" in key:
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not DNS1123_SUBDOMAIN_RE.match(prefix):
            errs.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                        "alphanumeric characters, '-' or '.', and must start and end with an "
                        "alphanumeric character")
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not QUALIFIED_NAME_RE.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character")
    return errs


def validate_meta_labels(meta, kind, name, causes):
    labels = meta.get("labels")
    if labels is None:
        return
    if not isinstance(labels, dict):
        raise bad_request("json: cannot unmarshal into Go struct field ObjectMeta.metadata.labels"
                          " of type map[string]string")
    for k, v in labels.items():
        if not isinstance(v, str):
            raise bad_request("json: cannot unmarshal %s into Go struct field "
                              "ObjectMeta.metadata.labels of type string" % type(v).__name__)
        for e in qualified_name_errors(k):
            causes.append(cause("FieldValueInvalid", "metadata.labels",
                                'Invalid value: "%s": %s' % (k, e)))
        if len(v) > 63 or not LABEL_VALUE_RE.match(v):
            causes.append(cause("FieldValueInvalid", "metadata.labels",
                                'Invalid value: "%s": a valid label must be an empty string or '
                                "consist of alphanumeric characters, '-', '_' or '.', and must "
                                "start and end with an alphanumeric character" % v))


def validate_node(node, name, old):
    meta = node.get("metadata")
    if not isinstance(meta, dict):
        raise bad_request("json: cannot unmarshal into Go struct field Node.metadata")
    if meta.get("name") != name:
        raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                          % (meta.get("name"), name))
    for f in ("kind", "apiVersion"):
        if f in node and node[f] != old[f]:
            raise bad_request("%s cannot be changed (%s)" % (f, node[f]))
    causes = []
    if meta.get("uid") != old["metadata"]["uid"]:
        causes.append(cause("FieldValueInvalid", "metadata.uid",
                            'Invalid value: "%s": field is immutable' % meta.get("uid")))
    validate_meta_labels(meta, "Node", name, causes)
    status = node.get("status", {})
    if not isinstance(status, dict):
        raise bad_request("json: cannot unmarshal into Go struct field Node.status")
    conds = status.get("conditions", [])
    if conds is not None:
        if not isinstance(conds, list):
            raise bad_request("json: cannot unmarshal %s into Go struct field "
                              "NodeStatus.status.conditions of type []v1.NodeCondition"
                              % type(conds).__name__)
        for i, c in enumerate(conds):
            if not isinstance(c, dict):
                raise bad_request("json: cannot unmarshal into Go struct field "
                                  "NodeStatus.status.conditions of type v1.NodeCondition")
            for f in ("type", "status", "reason", "message"):
                check_str(c.get(f), "NodeCondition.status.conditions.%s" % f)
            for f in ("lastHeartbeatTime", "lastTransitionTime"):
                check_time(c.get(f), "status.conditions[%d].%s" % (i, f))
    if causes:
        raise invalid("Node", name, causes)


# ------------------------------------------------------------------ state

def seed_node(name):
    t = now_rfc3339()
    def cond(ctype, st, reason, msg):
        return {"type": ctype, "status": st, "lastHeartbeatTime": t,
                "lastTransitionTime": "2024-05-01T08:00:00Z", "reason": reason, "message": msg}
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": "2024-05-01T08:00:00Z",
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/edge": "",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "61202244Ki", "memory": "8148992Ki",
                         "pods": "110"},
            "allocatable": {"cpu": "4", "ephemeral-storage": "56403987978",
                            "memory": "8046592Ki", "pods": "110"},
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                     "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure",
                     "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID",
                     "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "192.168.50.10"},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": str(uuid.uuid4()),
                         "containerRuntimeVersion": "containerd://1.7.13",
                         "kernelVersion": "6.1.0-18-amd64",
                         "kubeProxyVersion": "v1.29.2", "kubeletVersion": "v1.29.2",
                         "machineID": uuid.uuid4().hex, "operatingSystem": "linux",
                         "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "systemUUID": str(uuid.uuid4())},
        },
    }


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.rv = 1000
        self.nodes = {}
        for n in self.args.node:
            self.put_node(seed_node(n))
        self.events = {}          # namespace -> {name: event}
        self.token = self.args.token
        self.allow = set(self.args.allow)
        self.faults = []
        self.requests = []
        self.heartbeats = 0
        self.secrets = {}         # (namespace, name) -> Secret
        self.secret_log = []      # (rv int, type, Secret) for watches
        self.compacted = 0
        self.watch_gen = 0
        self.csrs = {}            # name -> CertificateSigningRequest
        self.csr_policy = {"mode": "auto", "reason": "PolicyDenied",
                           "message": "denied by the test approver", "cert_seconds": None,
                           "backdate_seconds": 1}
        self.cond = threading.Condition(self.lock)

    def put_secret(self, body):
        ns, name = body["namespace"], body["name"]
        old = self.secrets.get((ns, name))
        if body.get("delete"):
            if old:
                del self.secrets[(ns, name)]
                gone = copy.deepcopy(old)
                gone["metadata"]["resourceVersion"] = self.next_rv()
                self.secret_log.append((self.rv, "DELETED", gone))
        else:
            sec = {"kind": "Secret", "apiVersion": "v1",
                   "metadata": {"name": name, "namespace": ns,
                                "uid": old["metadata"]["uid"] if old else str(uuid.uuid4()),
                                "resourceVersion": self.next_rv()},
                   "type": body.get("type", "kubernetes.io/tls"), "data": body.get("data", {})}
            self.secrets[(ns, name)] = sec
            self.secret_log.append((self.rv, "MODIFIED" if old else "ADDED", copy.deepcopy(sec)))
        self.cond.notify_all()
        return self.secrets.get((ns, name))

    def act_on_csr(self, csr):
        """The approver and signer: what a controller would do to a new CSR."""
        if csr["status"].get("conditions") or csr["status"].get("certificate"):
            return
        pol = self.csr_policy
        now = now_rfc3339()
        if pol["mode"] == "hold":
            return
        if pol["mode"] == "deny":
            csr["status"]["conditions"] = [{"type": "Denied", "status": "True",
                                            "reason": pol["reason"], "message": pol["message"],
                                            "lastUpdateTime": now, "lastTransitionTime": now}]
        else:
            csr["status"]["conditions"] = [{"type": "Approved", "status": "True",
                                            "reason": "AutoApproved",
                                            "message": "approved by the test approver",
                                            "lastUpdateTime": now, "lastTransitionTime": now}]
            secs = pol.get("cert_seconds") or csr["spec"].get("expirationSeconds") or 3600
            csr["status"]["certificate"] = self.signer.sign(
                csr["spec"]["request"], csr["spec"]["usages"], int(secs),
                int(pol.get("backdate_seconds") or 1))
        csr["metadata"]["resourceVersion"] = self.next_rv()

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def put_node(self, node):
        node.setdefault("kind", "Node")
        node.setdefault("apiVersion", "v1")
        meta = node.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta["resourceVersion"] = self.next_rv()
        self.nodes[meta["name"]] = node

    def kubelet_heartbeat(self, name):
        """What the kubelet does every few seconds: rewrite its own condition
        heartbeat. Any client holding the old resourceVersion is now stale."""
        node = self.nodes.get(name)
        if not node:
            return False
        self.heartbeats += 1
        for c in node["status"].get("conditions", []):
            if c.get("type") == "Ready":
                c["lastHeartbeatTime"] = now_rfc3339()
                c["message"] = "kubelet is posting ready status (heartbeat %d)" % self.heartbeats
        node["metadata"]["resourceVersion"] = self.next_rv()
        return True

    @staticmethod
    def _matches(f, method, path):
        if f["count"] == 0:
            return False
        if f.get("method") and f["method"].upper() != method:
            return False
        return not f.get("path_regex") or re.search(f["path_regex"], path)

    @staticmethod
    def _consume(f):
        if f["count"] > 0:
            f["count"] -= 1
        f["hits"] = f.get("hits", 0) + 1

    def concurrent_writer(self, method, path):
        """A conflict fault: the kubelet writes the node just before this
        node write is processed, so the client's resourceVersion is stale."""
        if method not in ("PATCH", "PUT") or not path.startswith("/api/v1/nodes/"):
            return None
        for f in self.faults:
            if f.get("conflict") and self._matches(f, method, path):
                self._consume(f)
                self.kubelet_heartbeat(path.split("/")[4])
                return {"conflict": True}
        return None

    def take_fault(self, method, path):
        for f in self.faults:
            if not f.get("conflict") and self._matches(f, method, path):
                self._consume(f)
                return {k: v for k, v in f.items() if k not in ("count", "hits")}
        return None


# ------------------------------------------------------------------ the API

class WatchStream(Exception):
    """Raised by dispatch: answer with a watch stream instead of one object."""
    def __init__(self, ns, only, query):
        super().__init__()
        self.ns, self.only, self.query = ns, only, query


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    sys_version = ""
    timeout = 300

    def log_message(self, fmt, *a):
        if self.server.state.args.verbose:
            sys.stderr.write("fake-apiserver: " + (fmt % a) + "\n")

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_PATCH(self):
        self.serve("PATCH")

    def do_PUT(self):
        self.serve("PUT")

    def do_DELETE(self):
        self.serve("DELETE")

    def send_json(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def serve(self, method):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        auth = self.headers.get("Authorization")
        entry = {
            "t": time.time(),
            "method": method,
            "path": path,
            "query": url.query,
            "content_type": self.headers.get("Content-Type"),
            "accept": self.headers.get("Accept"),
            "user_agent": self.headers.get("User-Agent"),
            "token": auth[7:] if auth and auth.startswith("Bearer ") else None,
            "peer_port": self.client_address[1],
            "status": None,
        }
        try:
            entry["body"] = json.loads(raw) if raw else None
        except ValueError:
            entry["body"] = raw.decode("utf-8", "replace")[:4096]
        with st.lock:
            st.requests.append(entry)
            entry["concurrent_write"] = bool(st.concurrent_writer(method, path))
            fault = st.take_fault(method, path)
        code, obj, headers = 500, None, {}
        try:
            if fault:
                entry["fault"] = fault
                if fault.get("delay_ms"):
                    time.sleep(fault["delay_ms"] / 1000.0)
                if fault.get("drop_connection"):
                    entry["status"] = "dropped"
                    entry["t_done"] = time.time()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault.get("status"):
                    raise self.fault_error(fault)
            code, obj, headers = self.dispatch(method, path, url.query, raw)
        except WatchStream as w:
            entry["status"] = "watch"
            self.stream_watch(w)
            entry["t_done"] = time.time()
            return
        except ApiError as e:
            code, obj, headers = e.code, e.status, e.headers
        except Exception as e:  # a bug here must show, not hang the client
            code, obj = 500, status_obj(500, "InternalError",
                                        "Internal error occurred: fake apiserver: %r" % e)
        entry["status"] = code
        entry["t_done"] = time.time()
        try:
            self.send_json(code, obj, headers)
        except OSError:
            entry["status"] = "client-gone"

    def fault_error(self, f):
        code = int(f["status"])
        headers = {}
        if code == 429:
            ra = int(f.get("retry_after", 1))
            headers["Retry-After"] = ra
            return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                            {"retryAfterSeconds": ra}, headers)
        if f.get("retry_after") is not None:
            headers["Retry-After"] = int(f["retry_after"])
        reasons = {500: ("InternalError", "Internal error occurred: injected fault"),
                   502: ("InternalError", "Bad Gateway"),
                   503: ("ServiceUnavailable", "the server is currently unable to handle the "
                         "request"),
                   504: ("Timeout", "Timeout: request did not complete within the allowed "
                         "duration"),
                   401: ("Unauthorized", "Unauthorized"),
                   403: ("Forbidden", "forbidden: injected fault"),
                   404: ("NotFound", "the server could not find the requested resource"),
                   409: ("Conflict", "Operation cannot be fulfilled: injected fault")}
        reason, msg = reasons.get(code, ("InternalError", "injected fault"))
        return ApiError(code, reason, msg, headers=headers)

    # -- authn, routing, authz

    def dispatch(self, method, path, query, raw):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        with st.lock:
            token = st.token
        if not auth.startswith("Bearer ") or auth[7:].strip() != token or not token:
            raise ApiError(401, "Unauthorized", "Unauthorized")

        parts = [p for p in path.split("/") if p]
        if parts[:4] == ["apis", "certificates.k8s.io", "v1", "certificatesigningrequests"]:
            return self.csr_request(method, parts[4:], raw)
        if parts[:2] != ["api", "v1"]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rest = parts[2:]
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if rest[:1] == ["secrets"] and ns is not None and len(rest) == 1 and method == "GET":
            q = urllib.parse.parse_qs(query)
            watch = q.get("watch", ["0"])[0] in ("1", "true")
            self.authorize("watch" if watch else "list", "secrets", "secrets", None, ns)
            fs = q.get("fieldSelector", [""])[0]
            only = fs[len("metadata.name="):] if fs.startswith("metadata.name=") else None
            if watch:
                raise WatchStream(ns, only, q)
            return self.list_secrets(ns, only)
        if not rest or rest[0] not in ("nodes", "events") or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if resource == "nodes" and (ns is not None or sub not in (None, "status")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if resource == "events" and sub is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

        verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch",
                "PUT": "update", "DELETE": "delete" if name else "deletecollection"}[method]
        rres = resource + ("/" + sub if sub else "")
        self.authorize(verb, rres, resource, name, ns)

        if resource == "nodes":
            if method == "GET" and name is None:
                return self.list_nodes()
            if method == "GET" and sub is None:
                return self.get_node(name)
            if method == "PATCH":
                return self.patch_node(name, sub, raw)
        else:
            if method == "GET" and name is None:
                return self.list_events(ns)
            if method == "GET":
                return self.get_event(ns, name)
            if method == "POST" and name is None and ns is not None:
                return self.create_event(ns, raw)
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")

    def authorize(self, verb, rres, resource, name, ns):
        st = self.server.state
        with st.lock:
            allowed = "*" in st.allow or ("%s %s" % (verb, rres)) in st.allow
        if allowed:
            return
        subject = '%s "%s"' % (resource, name) if name else resource
        scope = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
        msg = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "" %s' % (
            subject, st.args.user, verb, rres, scope)
        details = {"name": name, "kind": resource} if name else {"kind": resource}
        raise ApiError(403, "Forbidden", msg, details)

    # -- certificatesigningrequests

    def csr_request(self, method, rest, raw):
        st = self.server.state
        if len(rest) > 1 or (method == "POST") != (not rest) or method not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        name = rest[0] if rest else None
        self.authorize("create" if method == "POST" else "get", "certificatesigningrequests",
                       "certificatesigningrequests", name, None)
        if method == "GET":
            with st.lock:
                csr = st.csrs.get(name)
                if not csr:
                    raise ApiError(404, "NotFound",
                                   'certificatesigningrequests.certificates.k8s.io "%s" not found'
                                   % name, {"name": name, "group": "certificates.k8s.io",
                                            "kind": "certificatesigningrequests"})
                return 200, copy.deepcopy(csr), {}
        try:
            obj = json.loads(raw)
        except ValueError:
            raise bad_request("the body is not JSON")
        if not isinstance(obj, dict) or obj.get("apiVersion") != "certificates.k8s.io/v1" or \
                obj.get("kind") != "CertificateSigningRequest":
            raise bad_request("apiVersion/kind must be certificates.k8s.io/v1 "
                              "CertificateSigningRequest")
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        name = meta.get("name")
        causes = []
        if not isinstance(name, str) or not re.fullmatch(
                r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name) \
                or len(name) > 253:
            causes.append(cause("FieldValueInvalid", "metadata.name", "a DNS subdomain"))
        try:
            st.signer.check_request(spec.get("request"))
        except Exception as e:  # noqa: any parse failure is the client's
            causes.append(cause("FieldValueInvalid", "spec.request", "invalid: %s" % e))
        if not isinstance(spec.get("signerName"), str) or "/" not in spec["signerName"]:
            causes.append(cause("FieldValueRequired", "spec.signerName", "Required value"))
        usages = spec.get("usages")
        known = {"digital signature", "key encipherment", "client auth", "server auth"}
        if not isinstance(usages, list) or not usages or not set(usages) <= known:
            causes.append(cause("FieldValueNotSupported", "spec.usages", "unsupported usages"))
        exp = spec.get("expirationSeconds")
        if exp is not None and (not isinstance(exp, int) or exp < 600):
            causes.append(cause("FieldValueInvalid", "spec.expirationSeconds",
                                "may not specify a duration less than 600 seconds"))
        if causes:
            raise invalid("CertificateSigningRequest", name, causes)
        with st.lock:
            if name in st.csrs:
                raise ApiError(409, "AlreadyExists",
                               'certificatesigningrequests.certificates.k8s.io "%s" already '
                               'exists' % name, {"name": name, "group": "certificates.k8s.io",
                                                 "kind": "certificatesigningrequests"})
            csr = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                   "metadata": dict(meta, uid=str(uuid.uuid4()), resourceVersion=st.next_rv(),
                                    creationTimestamp=now_rfc3339()),
                   "spec": dict(spec, username=st.args.user), "status": {}}
            st.csrs[name] = csr
            out = copy.deepcopy(csr)
            st.act_on_csr(csr)
        return 201, out, {}

    # -- secrets

    def list_secrets(self, ns, only):
        st = self.server.state
        with st.lock:
            items = [copy.deepcopy(v) for (n, name), v in sorted(st.secrets.items())
                     if n == ns and (only is None or name == only)]
            rv = str(st.rv)
        return 200, {"kind": "SecretList", "apiVersion": "v1",
                     "metadata": {"resourceVersion": rv}, "items": items}, {}

    def stream_watch(self, w):
        """Watch events as JSON lines until timeoutSeconds, the client goes, or 410."""
        st = self.server.state
        q = w.query
        since = int(q.get("resourceVersion", ["0"])[0] or 0)
        bookmarks = q.get("allowWatchBookmarks", ["false"])[0] in ("1", "true")
        end = time.time() + min(int(q.get("timeoutSeconds", ["1800"])[0]), 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def send(ev):
            self.wfile.write((json.dumps(ev) + "\n").encode())
            self.wfile.flush()

        with st.lock:
            compacted = st.compacted
            gen = st.watch_gen
        if since and since < compacted:
            try:
                send({"type": "ERROR", "object": status_obj(
                    410, "Expired", "too old resource version: %d (%d)" % (since, compacted))})
            except OSError:
                pass
            return
        last_bm = time.time()
        try:
            while time.time() < end:
                with st.lock:
                    if st.watch_gen != gen:
                        break
                    evs = [(rv, t, copy.deepcopy(o)) for rv, t, o in st.secret_log
                           if rv > since and o["metadata"]["namespace"] == w.ns
                           and (w.only is None or o["metadata"]["name"] == w.only)]
                    cur = st.rv  # before waiting: a bookmark must not skip what comes during it
                    if not evs:
                        st.cond.wait(timeout=0.2)
                for rv, t, o in evs:
                    send({"type": t, "object": o})
                    since = rv
                if bookmarks and time.time() - last_bm >= 1.0:
                    since = max(since, cur)
                    send({"type": "BOOKMARK", "object": {"kind": "Secret", "apiVersion": "v1",
                          "metadata": {"resourceVersion": str(since)}}})
                    last_bm = time.time()
        except OSError:
            pass

    # -- nodes

    def list_nodes(self):
        st = self.server.state
        with st.lock:
            items = [copy.deepcopy(n) for n in st.nodes.values()]
            rv = str(st.rv)
        for i in items:
            i.pop("kind", None)
            i.pop("apiVersion", None)
        return 200, {"kind": "NodeList", "apiVersion": "v1",
                     "metadata": {"resourceVersion": rv}, "items": items}, {}

    def not_found(self, resource, name):
        return ApiError(404, "NotFound", '%s "%s" not found' % (resource, name),
                        {"name": name, "kind": resource})

    def get_node(self, name):
        st = self.server.state
        with st.lock:
            node = st.nodes.get(name)
            if node is None:
                raise self.not_found("nodes", name)
            return 200, copy.deepcopy(node), {}

    def patch_node(self, name, sub, raw):
        st = self.server.state
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in PATCH_TYPES or ctype == "application/apply-patch+yaml":
            # apply-patch is a valid apiserver type that this fake does not
            # emulate; say so rather than pretend.
            msg = ("the body of the request was in an unknown format - accepted media types "
                   "include: " + ", ".join(PATCH_TYPES))
            if ctype == "application/apply-patch+yaml":
                msg += " (server-side apply is not emulated by the fake apiserver)"
            raise ApiError(415, "UnsupportedMediaType", msg)
        try:
            patch = json.loads(raw)
        except ValueError as e:
            raise bad_request("error decoding patch: %s" % e)
        with st.lock:
            node = st.nodes.get(name)
            if node is None:
                raise self.not_found("nodes", name)
            old = copy.deepcopy(node)
            if ctype == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("error decoding patch: merge patch must be a JSON object")
                new = merge_patch(old, patch)
            elif ctype == "application/strategic-merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("error decoding patch: strategic merge patch must be a "
                                      "JSON object")
                new = strategic_merge_patch(old, patch)
            else:
                new = json_patch(old, patch)
            if not isinstance(new, dict):
                raise bad_request("patched object is not a Node")
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                raise bad_request("json: cannot unmarshal into Go struct field Node.metadata")
            # A resourceVersion left in the patched object is the optimistic
            # concurrency precondition of the update that follows the patch.
            want_rv = meta.get("resourceVersion")
            cur_rv = old["metadata"]["resourceVersion"]
            if want_rv is not None and want_rv != cur_rv:
                raise ApiError(409, "Conflict",
                               'Operation cannot be fulfilled on nodes "%s": the object has been '
                               "modified; please apply your changes to the latest version and "
                               "try again" % name, {"name": name, "kind": "nodes"})
            validate_node(new, name, old)
            # Registry strategies: the main resource cannot change status,
            # the status subresource can change nothing but status.
            if sub == "status":
                result = copy.deepcopy(old)
                result["status"] = new.get("status", {})
            else:
                result = new
                result["status"] = old["status"]
                for f in ("uid", "creationTimestamp", "name"):
                    result["metadata"][f] = old["metadata"][f]
            result["metadata"]["resourceVersion"] = cur_rv
            if result != old:
                result["metadata"]["resourceVersion"] = st.next_rv()
            st.nodes[name] = result
            return 200, copy.deepcopy(result), {}

    # -- events

    def list_events(self, ns):
        st = self.server.state
        with st.lock:
            if ns is None:
                items = [e for evs in st.events.values() for e in evs.values()]
            else:
                items = list(st.events.get(ns, {}).values())
            items = copy.deepcopy(items)
            rv = str(st.rv)
        for i in items:
            i.pop("kind", None)
            i.pop("apiVersion", None)
        return 200, {"kind": "EventList", "apiVersion": "v1",
                     "metadata": {"resourceVersion": rv}, "items": items}, {}

    def get_event(self, ns, name):
        st = self.server.state
        with st.lock:
            ev = st.events.get(ns, {}).get(name)
            if ev is None:
                raise self.not_found("events", name)
            return 200, copy.deepcopy(ev), {}

    def create_event(self, ns, raw):
        st = self.server.state
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0]
        if ctype.strip().lower() != "application/json":
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json, application/yaml, "
                           "application/vnd.kubernetes.protobuf, application/cbor")
        try:
            ev = json.loads(raw)
        except ValueError as e:
            raise bad_request("couldn't get version/kind; json parse error: %s" % e)
        if not isinstance(ev, dict):
            raise bad_request("couldn't get version/kind; json parse error: not an object")
        if ev.get("kind", "Event") != "Event" or ev.get("apiVersion", "v1") != "v1":
            raise bad_request("%s in version \"%s\" cannot be handled as a Event"
                              % (ev.get("kind"), ev.get("apiVersion")))
        meta = ev.get("metadata")
        if meta is None:
            meta = ev["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("json: cannot unmarshal into Go struct field Event.metadata")
        if meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        io = ev.get("involvedObject")
        if io is not None and not isinstance(io, dict):
            raise bad_request("json: cannot unmarshal into Go struct field "
                              "Event.involvedObject of type v1.ObjectReference")
        io = io or {}
        for f in ("kind", "name", "namespace", "uid", "apiVersion", "resourceVersion",
                  "fieldPath"):
            check_str(io.get(f), "ObjectReference.involvedObject.%s" % f)
        for f in ("reason", "message", "type", "reportingComponent", "reportingInstance",
                  "action"):
            check_str(ev.get(f), "Event.%s" % f)
        src = ev.get("source") or {}
        if not isinstance(src, dict):
            raise bad_request("json: cannot unmarshal into Go struct field Event.source")
        for f in ("firstTimestamp", "lastTimestamp"):
            check_time(ev.get(f), f)
        if ev.get("eventTime") is not None and (not isinstance(ev["eventTime"], str) or
                                                not RFC3339_RE.match(ev["eventTime"])):
            raise bad_request("parsing time %s as eventTime" % json.dumps(ev["eventTime"]))
        if "count" in ev and not isinstance(ev["count"], int):
            raise bad_request("json: cannot unmarshal into Go struct field Event.count of "
                              "type int32")

        name = meta.get("name") or ""
        gen = meta.get("generateName") or ""
        causes = []
        if not name and not gen:
            causes.append(cause("FieldValueRequired", "metadata.name",
                                "Required value: name or generateName is required"))
        if not name and gen:
            name = gen + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        if name and (len(name) > 253 or not DNS1123_SUBDOMAIN_RE.match(name)):
            causes.append(cause("FieldValueInvalid", "metadata.name",
                                'Invalid value: "%s": a lowercase RFC 1123 subdomain must '
                                "consist of lower case alphanumeric characters, '-' or '.', "
                                "and must start and end with an alphanumeric character" % name))
        validate_meta_labels(meta, "Event", name, causes)
        # legacyValidateEvent (pkg/apis/core/validation/events.go)
        io_ns = io.get("namespace") or ""
        if not ev.get("eventTime"):
            if not io_ns:
                if ns not in ("", "default"):
                    causes.append(cause("FieldValueInvalid", "involvedObject.namespace",
                                        'Invalid value: "": does not match event.namespace'))
            elif ns != io_ns:
                causes.append(cause("FieldValueInvalid", "involvedObject.namespace",
                                    'Invalid value: "%s": does not match event.namespace'
                                    % io_ns))
        else:
            if not io_ns and ns not in ("default", "kube-system"):
                causes.append(cause("FieldValueInvalid", "involvedObject.namespace",
                                    'Invalid value: "": does not match event.namespace'))
            for f, lim in (("reportingComponent", None), ("reportingInstance", 128),
                           ("action", 128), ("reason", 128)):
                if not ev.get(f):
                    causes.append(cause("FieldValueRequired", f, "Required value"))
                elif lim and len(ev[f]) > lim:
                    causes.append(cause("FieldValueInvalid", f, "Invalid value: \"\": can have "
                                        "at most %d characters" % lim))
        # Stricter than the apiserver (it accepts these missing): an Event
        # nobody can attribute or read is a client bug we want to catch.
        for f in ("kind", "name"):
            if not io.get(f):
                causes.append(cause("FieldValueRequired", "involvedObject.%s" % f,
                                    "Required value"))
        for f in ("reason", "message"):
            if not ev.get(f) and not (f == "reason" and ev.get("eventTime")):
                causes.append(cause("FieldValueRequired", f, "Required value"))
        if ev.get("type") not in ("Normal", "Warning"):
            causes.append(cause("FieldValueNotSupported", "type",
                                'Unsupported value: %s: supported values: "Normal", "Warning"'
                                % json.dumps(ev.get("type"))))
        if causes:
            raise invalid("Event", name, causes)

        with st.lock:
            evs = st.events.setdefault(ns, {})
            if name in evs:
                raise ApiError(409, "AlreadyExists", 'events "%s" already exists' % name,
                               {"name": name, "kind": "events"})
            ev["kind"] = "Event"
            ev["apiVersion"] = "v1"
            meta["name"] = name
            meta["namespace"] = ns
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["resourceVersion"] = st.next_rv()
            evs[name] = ev
            return 201, copy.deepcopy(ev), {}


# ------------------------------------------------------------ control API

class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def reply(self, code, obj):
        data = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        with st.lock:
            if url.path == "/_control/state":
                return self.reply(200, {
                    "nodes": copy.deepcopy(st.nodes),
                    "events": [e for evs in st.events.values() for e in evs.values()],
                    "token": st.token,
                    "rbac": sorted(st.allow),
                    "rv": st.rv,
                    "heartbeats": st.heartbeats,
                })
            if url.path == "/_control/requests":
                since = int(q.get("since", ["0"])[0])
                return self.reply(200, st.requests[since:])
            if url.path == "/_control/faults":
                return self.reply(200, st.faults)
            if url.path == "/_control/csrs":
                return self.reply(200, list(st.csrs.values()))
        self.reply(404, {"error": "no such control endpoint"})

    def do_DELETE(self):
        st = self.server.state
        with st.lock:
            if self.path == "/_control/requests":
                st.requests = []
                return self.reply(200, {})
            if self.path == "/_control/faults":
                st.faults = []
                return self.reply(200, {})
        self.reply(404, {"error": "no such control endpoint"})

    def do_POST(self):
        st = self.server.state
        try:
            body = self.body()
        except ValueError as e:
            return self.reply(400, {"error": "bad JSON: %s" % e})
        with st.lock:
            if self.path == "/_control/faults":
                faults = body if isinstance(body, list) else [body]
                for f in faults:
                    f = dict(f)
                    if f.get("conflict") is not None and not isinstance(f["conflict"], bool):
                        f.setdefault("count", int(f["conflict"]))
                    f.setdefault("count", 1)
                    if f.get("path_regex"):
                        re.compile(f["path_regex"])
                    st.faults.append(f)
                return self.reply(200, st.faults)
            if self.path == "/_control/rbac":
                allow = body.get("allow", "*")
                st.allow = {"*"} if allow == "*" else set(allow)
                return self.reply(200, {"rbac": sorted(st.allow)})
            if self.path == "/_control/token":
                st.token = body["token"]
                return self.reply(200, {})
            if self.path == "/_control/kubelet":
                ok = st.kubelet_heartbeat(body.get("node") or st.args.node[0])
                return self.reply(200 if ok else 404, {"heartbeats": st.heartbeats})
            if self.path == "/_control/nodes":
                st.put_node(copy.deepcopy(body))
                return self.reply(200, st.nodes[body["metadata"]["name"]])
            if self.path == "/_control/secrets":
                return self.reply(200, st.put_secret(body) or {})
            if self.path == "/_control/close_watches":
                st.watch_gen += 1
                st.cond.notify_all()
                return self.reply(200, {})
            if self.path == "/_control/csr_policy":
                st.csr_policy.update(body)
                for c in st.csrs.values():
                    st.act_on_csr(c)
                return self.reply(200, st.csr_policy)
            if self.path == "/_control/compact":
                st.compacted = st.rv + 1
                st.next_rv()
                return self.reply(200, {"compacted": st.compacted})
            if self.path == "/_control/reset":
                st.reset()
                return self.reply(200, {})
        self.reply(404, {"error": "no such control endpoint"})


class TLSThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, so a client that
        # never completes one cannot stall the accept loop.
        try:
            request.settimeout(30)
            # Headers and body go out in separate writes: without this,
            # Nagle + delayed ACK add 40 ms to every answer.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
            conn.settimeout(None)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass


def make_certs(workdir):
    """A throwaway CA and a server certificate for 127.0.0.1/::1/localhost."""
    ca_key, ca_crt = os.path.join(workdir, "ca.key"), os.path.join(workdir, "ca.crt")
    key, csr, crt = (os.path.join(workdir, f) for f in ("server.key", "server.csr",
                                                          "server.crt"))
    ext = os.path.join(workdir, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
    run("openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
        "-subj", "/CN=fake-kubernetes-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class Signer:
    """A test CA for CSRs (python3-cryptography), imported only when used."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.ca = None

    def _load(self):
        if self.ca:
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-csr-signer-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        with open(self.path(), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        self.ca = (key, cert)

    def path(self):
        return os.path.join(self.workdir, "csr-signer-ca.crt")

    def check_request(self, req_b64):
        import base64
        from cryptography import x509
        if not isinstance(req_b64, str):
            raise ValueError("Required value")
        pem = base64.b64decode(req_b64, validate=True)
        if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
            raise ValueError("not a PEM CERTIFICATE REQUEST")
        csr = x509.load_pem_x509_csr(pem)
        if not csr.is_signature_valid:
            raise ValueError("the request's signature does not verify")
        return csr

    def sign(self, req_b64, usages, seconds, backdate=1):
        import base64
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID
        self._load()
        ca_key, ca_cert = self.ca
        csr = self.check_request(req_b64)
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        eku = [oid for u, oid in (("client auth", ExtendedKeyUsageOID.CLIENT_AUTH),
                                  ("server auth", ExtendedKeyUsageOID.SERVER_AUTH)) if u in usages]
        b = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
             .public_key(csr.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(seconds=backdate))
             .not_valid_after(now + datetime.timedelta(seconds=seconds - 1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage("digital signature" in usages, False,
                                          "key encipherment" in usages, False, False, False,
                                          False, False, False), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), critical=False))
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            b = b.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        cert = b.sign(ca_key, hashes.SHA256())
        return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--node", action="append", help="seed a Node (repeatable)")
    ap.add_argument("--token", help="the bearer token accepted")
    ap.add_argument("--token-file", help="read the accepted token from this file")
    ap.add_argument("--user", default="system:serviceaccount:edgeplane:edgeplane-agent",
                    help="the identity named in 403 messages")
    ap.add_argument("--allow", default=",".join(DEFAULT_ALLOW),
                    help='comma-separated "verb resource" pairs, or "*"')
    ap.add_argument("--cert", help="server certificate (PEM); default: generate")
    ap.add_argument("--key", help="server key (PEM)")
    ap.add_argument("--ca", help="CA certificate reported on the ready line")
    ap.add_argument("--workdir", help="where generated certificates go (default: a temp dir)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--csr-signer", action="store_true",
                    help="make the CSR signer's CA (WORKDIR/csr-signer-ca.crt) at start")
    args = ap.parse_args()
    args.node = args.node or ["edge-01"]
    if args.token_file:
        with open(args.token_file) as f:
            args.token = f.read().strip()
    if not args.token:
        ap.error("--token or --token-file is required")
    args.allow = [a.strip() for a in args.allow.split(",") if a.strip()]

    tmp = None
    if args.cert:
        ca, crt, key = args.ca or args.cert, args.cert, args.key or args.cert
    else:
        workdir = args.workdir or tempfile.mkdtemp(prefix="fake-apiserver.")
        tmp = None if args.workdir else workdir
        os.makedirs(workdir, exist_ok=True)
        try:
            ca, crt, key = make_certs(workdir)
        except subprocess.CalledProcessError as e:
            sys.stderr.write("fake-apiserver: openssl failed: %s\n" % e.stderr.decode())
            return 1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(crt, key)

    state = State(args)
    sdir = args.workdir or tmp or tempfile.mkdtemp(prefix="fake-apiserver-signer.")
    state.signer = Signer(sdir)
    if args.csr_signer:
        state.signer._load()
    api = TLSThreadingServer((args.listen, args.port), ApiHandler)
    api.ssl_ctx = ctx
    api.state = state
    ctl = http.server.ThreadingHTTPServer(("127.0.0.1", args.control_port), ControlHandler)
    ctl.daemon_threads = True
    ctl.state = state

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    for srv in (api, ctl):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("ready %d %d %s" % (api.server_address[1], ctl.server_address[1], ca), flush=True)
    while not done.wait(1.0):
        pass
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
