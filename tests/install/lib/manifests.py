"""Queries over rendered Helm manifests (a JSON list made by render.bash).

    manifests.py FILE.json 'EXPR'   exit 0 if EXPR is true; otherwise print what it saw, exit 1
    manifests.py FILE.json --config print the agent's config file from the ConfigMap
    manifests.py FILE.json --print 'EXPR'   print the value of EXPR (JSON)

Names available in EXPR:
    docs                 every manifest
    kinds                sorted list of "Kind/name"
    find(kind, name=None) manifests of a kind (optionally one name)
    one(kind)            the single manifest of that kind (error if not exactly one)
    ds, pod              the DaemonSet and its pod spec
    agent, init          the agent container and the bpffs init container
    caps_add, caps_drop  the agent's added/dropped capabilities as sets
    cache                the cache container (config.dns), or None
    mounts               agent's volumeMounts by mountPath
    init_mounts          init container's volumeMounts by mountPath
    volumes              pod volumes by name
    cfg                  the config file text from the ConfigMap
    ann                  pod template annotations
    json                 the json module
"""
import json
import sys


def main():
    path, args = sys.argv[1], sys.argv[2:]
    with open(path) as f:
        data = json.load(f)
    docs = data["docs"]
    for d in docs:
        if "Error" in d and len(d) == 1:
            print("# YAML error in a rendered manifest: %s" % d["Error"], file=sys.stderr)
            sys.exit(1)

    def find(kind, name=None):
        return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]

    def one(kind):
        got = find(kind)
        if len(got) != 1:
            raise LookupError("%d manifests of kind %s" % (len(got), kind))
        return got[0]

    ns = {"docs": docs, "find": find, "one": one, "json": json,
          "kinds": sorted("%s/%s" % (d.get("kind"), d.get("metadata", {}).get("name")) for d in docs)}
    dss = find("DaemonSet")
    if len(dss) == 1:
        ds = dss[0]
        pod = ds["spec"]["template"]["spec"]
        agent = [c for c in pod["containers"] if c["name"] == "agent"][0]
        caches = [c for c in pod["containers"] if c["name"] == "cache"]
        inits = [c for c in pod.get("initContainers", []) if c["name"] == "bpffs"]
        caps = agent.get("securityContext", {}).get("capabilities", {})
        ns.update(ds=ds, pod=pod, agent=agent, init=inits[0] if inits else None,
                  cache=caches[0] if caches else None,
                  caps_add=set(caps.get("add", [])), caps_drop=set(caps.get("drop", [])),
                  mounts={m["mountPath"]: m for m in agent.get("volumeMounts", [])},
                  init_mounts={m["mountPath"]: m for m in (inits[0].get("volumeMounts", []) if inits else [])},
                  volumes={v["name"]: v for v in pod.get("volumes", [])},
                  ann=ds["spec"]["template"]["metadata"].get("annotations") or {})
    cms = [d for d in find("ConfigMap") if "config.yaml" in d.get("data", {})]
    if len(cms) == 1:
        ns["cfg"] = cms[0]["data"]["config.yaml"]

    if args == ["--config"]:
        sys.stdout.write(ns["cfg"] if ns["cfg"].endswith("\n") else ns["cfg"] + "\n")
        return
    if args[:1] == ["--print"]:
        print(json.dumps(eval(args[1], ns), default=sorted))
        return
    expr = args[0]
    try:
        val = eval(expr, ns)
    except Exception as e:  # a missing key is a failed check, with the reason
        print("# %s: %s: %s" % (expr, type(e).__name__, e))
        sys.exit(1)
    if not val:
        print("# false: %s" % expr)
        sys.exit(1)


main()
