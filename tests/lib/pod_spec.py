"""One container of a rendered DaemonSet as a runtime sees it, for the
pod-shaped sandbox (tests/lib/pod.sh). Reads the JSON list of manifests that
tests/install/lib/render.bash makes.

    pod_spec.py RENDER.json CONTAINER OUTDIR NODE_NAME

writes into OUTDIR:
    cmd      command + args, NUL-separated
    env      NAME=VALUE, NUL-separated (fieldRef spec.nodeName -> NODE_NAME)
    caps     capabilities.add, one a line, CAP_ prefixed (empty: none)
    mounts   one a line, tab-separated: mountPath kind source readOnly propagation
             kind: hostPath (source = the host path), configMap (source = the
             ConfigMap's name), serviceAccount (source = "-")
    flags    key=value lines: privileged, rootfs_ro, no_new_privs, seccomp
             (type[:localhostProfile]), cap_drop_all, run_as_user, automount,
             share_pid
"""
import json
import os
import sys


def main():
    path, name, out, node = sys.argv[1:5]
    docs = json.load(open(path))["docs"]
    ds = [d for d in docs if d.get("kind") == "DaemonSet"][0]
    pod = ds["spec"]["template"]["spec"]
    cs = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name]
    if len(cs) != 1:
        sys.exit("pod_spec.py: no container %s in the DaemonSet" % name)
    c = cs[0]
    sc = c.get("securityContext") or {}
    psc = pod.get("securityContext") or {}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cmd"), "w") as f:
        f.write("".join(a + "\0" for a in c.get("command", []) + c.get("args", [])))
    env = []
    for e in c.get("env", []):
        if "value" in e:
            env.append("%s=%s" % (e["name"], e["value"]))
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            env.append("%s=%s" % (e["name"], node))
        else:
            sys.exit("pod_spec.py: env %s: only value and fieldRef spec.nodeName are supported" % e["name"])
    with open(os.path.join(out, "env"), "w") as f:
        f.write("".join(x + "\0" for x in env))
    caps = sc.get("capabilities") or {}
    with open(os.path.join(out, "caps"), "w") as f:
        for cap in caps.get("add", []):
            f.write("CAP_%s\n" % cap.upper().removeprefix("CAP_"))
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    automount = pod.get("automountServiceAccountToken", True)
    with open(os.path.join(out, "mounts"), "w") as f:
        for m in c.get("volumeMounts", []):
            v = vols[m["name"]]
            if "hostPath" in v:
                kind, src = "hostPath", v["hostPath"]["path"]
            elif "configMap" in v:
                kind, src = "configMap", v["configMap"]["name"]
            else:
                sys.exit("pod_spec.py: volume %s: only hostPath and configMap volumes are supported" % m["name"])
            if "subPath" in m:
                sys.exit("pod_spec.py: volumeMount %s: subPath is not supported" % m["mountPath"])
            f.write("%s\t%s\t%s\t%d\t%s\n" % (m["mountPath"], kind, src, bool(m.get("readOnly")),
                                              m.get("mountPropagation", "None")))
        if automount:
            f.write("/var/run/secrets/kubernetes.io/serviceaccount\tserviceAccount\t-\t1\tNone\n")
    sp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
    seccomp = sp.get("type", "Unconfined")
    if seccomp == "Localhost":
        seccomp += ":" + sp.get("localhostProfile", "")
    flags = {
        "privileged": int(bool(sc.get("privileged"))),
        "rootfs_ro": int(bool(sc.get("readOnlyRootFilesystem"))),
        # Kubernetes: allowPrivilegeEscalation defaults to true; the runtime
        # sets no_new_privs only when it is false.
        "no_new_privs": int(sc.get("allowPrivilegeEscalation") is False),
        "seccomp": seccomp,
        "cap_drop_all": int("ALL" in [x.upper() for x in caps.get("drop", [])]),
        "run_as_user": sc.get("runAsUser", psc.get("runAsUser", 0)),
        "automount": int(bool(automount)),
        # shareProcessNamespace: the pod's containers share one PID namespace
        # whose PID 1 is the pod's pause process (tests/lib/pod.sh).
        "share_pid": int(bool(pod.get("shareProcessNamespace"))),
    }
    with open(os.path.join(out, "flags"), "w") as f:
        for k, v in flags.items():
            f.write("%s=%s\n" % (k, v))


main()
