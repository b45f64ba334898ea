# The agent run as the chart's DaemonSet runs it, minus the kubelet: a
# pod-shaped sandbox built from the image's root filesystem with the tools a
# runtime uses (podman run cannot start containers on these hosts: crun
# needs CAP_SYS_RESOURCE for rlimits). Source it after tests/lab/lab.sh and
# tests/install/lib/render.bash; the lab must be up (lab_up).
#
# SECCOMP: POD_SECCOMP_PROFILE is required: the Docker/OCI-format seccomp JSON
# the agent's container gets. The pod tests default it to the chart's Localhost
# profile (deploy/helm/edgeplane/files/seccomp/edgeplane-agent.json, generated
# by deploy/gen-confinement.sh). Unset or missing, pod_start fails and says so.
#
# The image: the one of build/image.id (make image; tests/install/image.sh
# builds it earlier in `make test`; made here when the file is missing), or
# EP_IMAGE. The agent container's log is $LAB_LOG, as in the lab.
#
#   pod_start         render the chart for the lab (pod_render), run the bpffs
#                     init container, then (config.dns) the cache container,
#                     then the agent container; waits until the agent answers
#                     on its control socket (hostPaths.run)
#   pod_kill          kill -9 every process of the agent container (its
#                     freezer cgroup, frozen first so nothing forks meanwhile),
#                     as a runtime ends a container; without a shared PID
#                     namespace that is its PID 1, and the namespace dies with it
#   pod_stop          SIGTERM to the agent container's main process, as the
#                     kubelet stops a container (grace: the chart's
#                     terminationGracePeriodSeconds), then pod_kill
#   pod_restart       pod_kill, then the agent container again (a container
#                     restart: the init container does not run again)
#   pod_cache_kill, pod_cache_start
#                     the same for the cache container (dnsmasq and the policy
#                     responder are its children: they die with it)
#   pod_pid           the host PID of the agent container's main process
#   pod_procs [-v] [NAME]
#                     how many processes (-v: their names) container NAME
#                     (default agent) has
#   pod_runner        LAB_AGENT_RUNNER for tests/lab/lab.sh: lab_agent_start,
#                     _stop, _kill9 and _pid then drive the agent container
#
# The sandbox of one container (pod_container), from the rendered DaemonSet
# (tests/lib/pod_spec.py):
#   - network: the lab node's namespace (hostNetwork: true), joined with nsenter;
#   - PID namespace: with shareProcessNamespace (the chart sets it with
#     config.dns) the pod's, made once by pod_pause: its PID 1 is a pause
#     process (bash waiting in a loop: it reaps the orphans a container
#     leaves, e.g. dnsmasq after its spawner died), and each container is
#     entered into it with nsenter, which stays as the parent (the runtime's
#     shim); without it, its own (the command is PID 1), made by unshare,
#     which stays as the parent;
#   - its own mount namespace (private propagation), made by unshare;
#   - a freezer cgroup of its own (cgroup v1, under /sys/fs/cgroup/freezer)
#     that every process of the container is in: a container's end kills
#     exactly those, as a runtime kills a container's cgroup;
#   - root: an overlay of the image's root (podman image mount) with an upper
#     directory on a tmpfs of that mount namespace (a fresh writable layer per
#     container start), remounted read-only when readOnlyRootFilesystem;
#   - /proc of the PID namespace, a minimal /dev (tmpfs with null, zero, full,
#     random, urandom, tty bound from the host; shm; fd links), /sys a fresh
#     read-only sysfs of the node namespace;
#   - volumeMounts in the chart's order: hostPath volumes bound from the lab's
#     stand-ins for the host's paths (POD_HOST_BPFFS for /sys/fs/bpf; the rest
#     are the lab's own directories, passed as hostPaths.* values), read-only
#     where readOnly, rslave for HostToContainer; the ConfigMap as a read-only
#     directory holding config.yaml; the service account token (token, ca.crt,
#     namespace of the lab's test API server) when automountServiceAccountToken;
#     /etc/resolv.conf (dnsPolicy ClusterFirstWithHostNet: the lab's resolver);
#   - the environment: the image's Env, the container's env (NODE_NAME from
#     spec.nodeName = lab-node) and the kubelet's KUBERNETES_SERVICE_HOST/PORT
#     (the lab's test API server) when a kubernetes section is configured;
#   - runAsUser 0 with exactly the chart's capabilities: setpriv (util-linux,
#     from the image) sets the bounding set to capabilities.add and clears
#     the inheritable and ambient sets, as containerd does for root, so
#     CapEff = CapPrm = CapBnd = the chart's set;
#   - seccomp last (tests/tools/ep_seccomp_exec, static, run from the host
#     through /proc/self/fd as a runtime's init is): no_new_privs only when
#     allowPrivilegeEscalation is false (it is unset in the chart).
# Not real: no kubelet (no probes acting, no restart policy: the tests
# restart), no CRI runtime or shim, no cgroup limits (resources) or cgroup
# namespace (the freezer cgroup only groups), no AppArmor/SELinux, no image
# pull, no ConfigMap updates, containers started one after the other.

POD_BUILD=${EP_BUILD:-$LAB_ROOT/build}
POD_LOADER=${POD_LOADER:-$POD_BUILD/tests/tools/ep_seccomp_exec}
POD_VALUES=${POD_VALUES:-$LAB_ROOT/tests/install/values/pod-lab.yaml}
POD_NODE_NAME=${POD_NODE_NAME:-lab-node}
POD_PID1=""
POD_PIDNS=""
POD_SHIM=""
POD_ROOTFS=""
POD_IID=""
POD_SHARED=0	# shareProcessNamespace
POD_PAUSE=""	# host PID of the pod's PID 1 (pause) when shared
POD_PAUSE_SHIM=""
POD_CG=""	# the pod's freezer cgroup; one child per container
declare -A POD_C_SHIM=() POD_C_MAIN=()

pod_diag() { echo "# pod: $*"; }
# Errors as TAP diagnostics: run.sh shows them in its summary, so a failure in CI says why.
pod_err() { echo "pod: error: $*" | sed "s/^/# /"; }


# pod_seccomp_required: TAP failure and exit when POD_SECCOMP_PROFILE is unset
# or unreadable (never a skip: the container runs with the chart's profile or
# not at all).
pod_seccomp_required() {
  [ -n "${POD_SECCOMP_PROFILE:-}" ] && [ -r "$POD_SECCOMP_PROFILE" ] && return 0
  not_ok "POD_SECCOMP_PROFILE ('${POD_SECCOMP_PROFILE:-}') names a readable seccomp profile (required: the agent container's profile)"
  tap_done
  exit 1
}

# pod_init: once per test, after lab_up. The image by id (build/image.id,
# written by make image; built here when missing), its root mounted.
pod_init() {
  POD_DIR=$(netns_tmpdir)
  chmod 755 "$POD_DIR"
  POD_HOST_RUN=$POD_DIR/host/run/edgeplane
  POD_HOST_STATE=$POD_DIR/host/var/lib/edgeplane
  POD_HOST_BPFFS=$LAB_BPFFS
  mkdir -p "$POD_HOST_RUN" "$POD_HOST_STATE"
  chmod 755 "$POD_HOST_STATE" "$POD_DIR/host" "$POD_DIR/host/var" "$POD_DIR/host/var/lib"
  # The host's cgroup v2 root (hybrid hosts: /sys/fs/cgroup/unified).
  POD_HOST_CGROUP=${POD_HOST_CGROUP:-$(findmnt -n -t cgroup2 -o TARGET | head -1)}
  netns_on_cleanup "pod_cleanup"
  POD_CG=/sys/fs/cgroup/freezer/edgeplane-pod-$$-$RANDOM
  mkdir "$POD_CG" 2>"$POD_DIR/cg.err" ||
    { pod_err "a freezer cgroup (v1) for the containers: $(cat "$POD_DIR/cg.err")"; POD_CG=""; return 1; }
  [ -n "${RENDER_DIR:-}" ] || render_init
  if [ -z "${EP_IMAGE:-}" ] && [ ! -s "$POD_BUILD/image.id" ]; then
    pod_diag "no $POD_BUILD/image.id: make image"
    make --no-print-directory -C "$LAB_ROOT" image >"$POD_DIR/image-build.log" 2>&1 ||
      { pod_err "make image failed: $(tail -5 "$POD_DIR/image-build.log")"; return 1; }
  fi
  POD_IID=${EP_IMAGE:-$(cat "$POD_BUILD/image.id")}
  if ! POD_ROOTFS=$(podman image mount "$POD_IID" 2>"$POD_DIR/mount.err") || [ ! -x "$POD_ROOTFS/usr/sbin/edgeplane-agent" ]; then
    pod_err "podman image mount $POD_IID: $(cat "$POD_DIR/mount.err")"; POD_ROOTFS=""; return 1
  fi
  POD_IMAGE_ENV=$(podman image inspect --format '{{range .Config.Env}}{{.}}{{"\n"}}{{end}}' "$POD_IID")
  [ -x "$POD_LOADER" ] || { pod_err "$POD_LOADER missing (make tests-bin)"; return 1; }
}

pod_cleanup() {
  local c
  pod_kill >/dev/null 2>&1
  pod_cache_kill >/dev/null 2>&1
  [ -n "$POD_PAUSE" ] && kill -9 "$POD_PAUSE" 2>/dev/null
  [ -n "$POD_PAUSE_SHIM" ] && wait "$POD_PAUSE_SHIM" 2>/dev/null
  POD_PAUSE=""; POD_PAUSE_SHIM=""
  if [ -n "$POD_CG" ]; then
    for c in "$POD_CG"/*/; do [ -d "$c" ] && _pod_cg_kill "${c%/}" && rmdir "${c%/}"; done
    rmdir "$POD_CG" 2>/dev/null
  fi
  [ -n "$POD_ROOTFS" ] && podman image unmount "$POD_IID" >/dev/null 2>&1
  POD_ROOTFS=""
}

# pod_values LAB_CONFIG OUT: the lab's agent config as chart values (config:),
# its host paths turned into the paths the chart mounts; copies the files the
# config names into the state hostPath.
pod_values() {
  local in=$1 out=$2 f
  for f in $(sed -n 's/^ *\(preload\|domains\): *//p' "$in"); do
    [ -f "$f" ] && cp "$f" "$POD_HOST_STATE/$(basename "$f")"
  done
  chmod 644 "$POD_HOST_STATE"/* 2>/dev/null
  {
    echo "config:"
    # node.name: from NODE_NAME (the DaemonSet's spec.nodeName); kubernetes: in
    # cluster (the service account mount and KUBERNETES_SERVICE_*).
    awk '
      /^[a-z]/ { sect = $1 }
      sect == "node:" { next }
      sect == "kubernetes:" && /^  (api_server|token_file|ca_file):/ { next }
      { print }' "$in" |
      sed -e 's|^\(  bpffs:\).*|\1 /sys/fs/bpf/edgeplane|' \
        -e 's|^\(  socket:\).*|\1 /run/edgeplane/agent.sock|' \
        -e 's|^\( *preload:\) *.*/\([^/]*\)$|\1 /var/lib/edgeplane/\2|' \
        -e 's|^\( *domains:\) *.*/\([^/]*\)$|\1 /var/lib/edgeplane/\2|' |
      sed 's/^/  /'
  } >"$out"
}

# pod_render: the chart rendered for the lab ($LAB_CONFIG as values, the
# lab's host paths); the config file and the containers' specs extracted.
pod_render() {
  POD_R=$POD_DIR/render
  rm -rf "$POD_R"; mkdir -p "$POD_R/config"
  pod_values "$LAB_CONFIG" "$POD_R/lab-values.yaml"
  if ! render pod -f "$POD_VALUES" -f "$POD_R/lab-values.yaml" \
    --set "hostPaths.run=$POD_HOST_RUN" --set "hostPaths.state=$POD_HOST_STATE" \
    --set "hostPaths.cgroup=$POD_HOST_CGROUP"; then
    pod_err "helm template: $(head -5 "$RENDER_DIR/pod.err")"; return 1
  fi
  config_of pod "$POD_R/config/config.yaml"
  chmod -R a+rX "$POD_R"
  "$PY3" "$LAB_ROOT/tests/lib/pod_spec.py" "$RENDER_DIR/pod.json" agent "$POD_R/agent" "$POD_NODE_NAME" &&
    "$PY3" "$LAB_ROOT/tests/lib/pod_spec.py" "$RENDER_DIR/pod.json" bpffs "$POD_R/bpffs" "$POD_NODE_NAME" ||
    return 1
  # The cache container: with config.dns.
  if "$PY3" "$LAB_ROOT/tests/install/lib/manifests.py" "$RENDER_DIR/pod.json" --print \
    'any(c["name"] == "cache" for c in pod["containers"])' | grep -qx true; then
    "$PY3" "$LAB_ROOT/tests/lib/pod_spec.py" "$RENDER_DIR/pod.json" cache "$POD_R/cache" "$POD_NODE_NAME" || return 1
  fi
  POD_SHARED=$(pod_flag "$POD_R/agent" share_pid)
  # The host side of the socket: lab_cli talks to the agent through hostPaths.run.
  LAB_SOCK=$POD_HOST_RUN/agent.sock
  # The service account: the test API server's token and CA (drills.sh).
  rm -rf "$POD_R/sa"; mkdir -p "$POD_R/sa"
  if [ -n "${K8S_DIR:-}" ]; then
    cp "$K8S_DIR/token" "$POD_R/sa/token"; cp "$K8S_CA" "$POD_R/sa/ca.crt"
  fi
  echo kube-system >"$POD_R/sa/namespace"
}

# pod_flag SPEC KEY
pod_flag() { sed -n "s/^$2=//p" "$1/flags"; }

# _pod_inside SPEC ROOTFS RUNDIR HOSTMAP...: the runtime's work inside the
# new PID and mount namespaces (this shell is PID 1); ends in the exec of
# the container's command. HOSTMAP: "HOSTPATH=SOURCE" substitutions.
_pod_inside() {
  local spec=$1 lower=$2 run=$3 r m kind src ro prop dst t
  shift 3
  set -e
  # First of all: everything this container runs is in its cgroup.
  echo 0 >"$POD_CGROUP/cgroup.procs"
  r=$run/root
  mkdir -p "$run/rw" "$r"
  mount -t tmpfs -o mode=0755 tmpfs "$run/rw"
  mkdir "$run/rw/upper" "$run/rw/work"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$run/rw/upper,workdir=$run/rw/work" "$r"
  mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
  mount -t tmpfs -o nosuid,mode=0755,size=65536k tmpfs "$r/dev"
  for t in null zero full random urandom tty; do
    : >"$r/dev/$t"; mount --bind "/dev/$t" "$r/dev/$t"
  done
  mkdir "$r/dev/shm" "$r/dev/pts"
  mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=65536k shm "$r/dev/shm"
  ln -s /proc/self/fd "$r/dev/fd"; ln -s /proc/self/fd/0 "$r/dev/stdin"
  ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
  while IFS=$'\t' read -r dst kind src ro prop; do
    case $kind in
      hostPath)
        for m in "$@"; do [ "${m%%=*}" = "$src" ] && src=${m#*=}; done
        [ -e "$src" ] || { echo "pod: hostPath $src of $dst does not exist" >&2; exit 125; };;
      configMap) src=$spec/../config;;
      serviceAccount) src=$spec/../sa;;
    esac
    # The mount point, resolved inside the root (/var/run is a symlink).
    chroot "$r" /bin/mkdir -p "$dst"
    t=$(chroot "$r" /usr/bin/readlink -f "$dst")
    mount --bind "$src" "$r$t"
    [ "$ro" = 1 ] && mount -o remount,bind,ro "$r$t"
    [ "$prop" = HostToContainer ] && mount --make-rslave "$r$t"
  done <"$spec/mounts"
  # dnsPolicy ClusterFirstWithHostNet: the kubelet's resolv.conf (the lab's resolver).
  echo "nameserver ${LAB_DNS4:-127.0.0.1}" >"$run/resolv.conf"
  chroot "$r" /bin/sh -c ': >>/etc/resolv.conf'
  t=$(chroot "$r" /usr/bin/readlink -f /etc/resolv.conf)
  mount --bind "$run/resolv.conf" "$r$t"
  mount -o remount,bind,ro "$r$t"
  [ "$(sed -n 's/^rootfs_ro=//p' "$spec/flags")" = 1 ] && mount -o remount,bind,ro "$r"
  local caps nnp=0 env=() cmd=() last=()
  caps=$(tr 'A-Z' 'a-z' <"$spec/caps" | sed 's/^cap_/+/' | paste -sd, -)
  [ "$(sed -n 's/^no_new_privs=//p' "$spec/flags")" = 1 ] && nnp=1
  mapfile -d '' env <"$spec/env.all"
  mapfile -d '' cmd <"$spec/cmd"
  set +e
  cd "$r" || exit 125
  if [ "$(sed -n 's/^seccomp=//p' "$spec/flags")" = Unconfined ]; then
    [ $nnp = 1 ] && last=(--no-new-privs)
    last+=(--)
  else
    # fd 8: the seccomp profile, fd 9: the loader, both from the host; the
    # loader closes them before its exec.
    exec 8<"$POD_SECCOMP_PROFILE" 9<"$POD_LOADER"
    last=(-- /proc/self/fd/9)
    [ $nnp = 1 ] && last+=(--no-new-privs)
    last+=(/proc/self/fd/8 --)
  fi
  exec chroot "$r" /usr/bin/env -i "${env[@]}" \
    /usr/bin/setpriv --reuid=0 --regid=0 --clear-groups --inh-caps=-all --ambient-caps=-all \
    --bounding-set="-all${caps:+,$caps}" "${last[@]}" "${cmd[@]}"
}

# pod_container NAME LOG: starts container NAME (agent | bpffs) of the
# rendered pod in the background; POD_SHIM is unshare's pid, POD_PID1 the
# container's PID 1 on the host.
pod_container() {
  local name=$1 log=$2 spec=$POD_R/$1 run=$POD_DIR/c-$1-$RANDOM i cg
  if [ -z "${POD_SECCOMP_PROFILE:-}" ] || [ ! -r "$POD_SECCOMP_PROFILE" ]; then
    pod_err "POD_SECCOMP_PROFILE ('${POD_SECCOMP_PROFILE:-}') is not set or not readable: the container's seccomp profile is required"
    return 1
  fi
  [ "$(pod_flag "$spec" run_as_user)" = 0 ] || { pod_err "runAsUser $(pod_flag "$spec" run_as_user): only 0 is supported"; return 1; }
  [ "$(pod_flag "$spec" privileged)" = 0 ] || { pod_err "privileged containers are not supported"; return 1; }
  { tr '\n' '\0' <<<"$POD_IMAGE_ENV" | grep -zv '^$'; cat "$spec/env"
    if [ "$name" = agent ] && [ -n "${K8S_PORT:-}" ] && grep -q '^kubernetes:' "$POD_R/config/config.yaml"; then
      printf 'KUBERNETES_SERVICE_HOST=127.0.0.1\0KUBERNETES_SERVICE_PORT=%s\0' "$K8S_PORT"
    fi; } >"$spec/env.all"
  mkdir -p "$run"
  cg=$POD_CG/$name
  mkdir -p "$cg"
  _pod_cg_kill "$cg" || { pod_err "$name: processes of its last run are left in $cg"; return 1; }
  if [ "$POD_SHARED" = 1 ]; then
    [ -n "$POD_PAUSE" ] && kill -0 "$POD_PAUSE" 2>/dev/null || pod_pause || return 1
    # nsenter forks into the pod's PID namespace and stays as the parent (the shim).
    POD_CGROUP=$cg POD_SECCOMP_PROFILE=$POD_SECCOMP_PROFILE POD_LOADER=$POD_LOADER LAB_DNS4=${LAB_DNS4:-} \
      nsenter --net="/run/netns/$LAB_NS_NODE" --pid="/proc/$POD_PAUSE/ns/pid" \
      unshare --mount --propagation=private \
      bash -c "$(declare -f _pod_inside); _pod_inside \"\$@\"" _pod_inside "$spec" "$POD_ROOTFS" "$run" \
      "/sys/fs/bpf=$POD_HOST_BPFFS" </dev/null >>"$log" 2>&1 &
  else
    POD_CGROUP=$cg POD_SECCOMP_PROFILE=$POD_SECCOMP_PROFILE POD_LOADER=$POD_LOADER LAB_DNS4=${LAB_DNS4:-} \
      nsenter --net="/run/netns/$LAB_NS_NODE" \
      unshare --pid --fork --kill-child --mount --propagation=private \
      bash -c "$(declare -f _pod_inside); _pod_inside \"\$@\"" _pod_inside "$spec" "$POD_ROOTFS" "$run" \
      "/sys/fs/bpf=$POD_HOST_BPFFS" </dev/null >>"$log" 2>&1 &
  fi
  POD_SHIM=$!
  netns_track_pid "$POD_SHIM"
  POD_PID1=""
  # The container's main process: the shim's child in the pod's PID
  # namespace (shared), or the one whose PID in its namespace is 1 (before
  # the exec of unshare, the shell's own short-lived children would show up
  # instead).
  for ((i = 0; i < 100; i++)); do
    if [ "$POD_SHARED" = 1 ] && [ "$(cat "/proc/$POD_SHIM/comm" 2>/dev/null)" = nsenter ]; then
      POD_PID1=$(awk '{print $1}' "/proc/$POD_SHIM/task/$POD_SHIM/children" 2>/dev/null)
      [ -n "$POD_PID1" ] && [ "$(readlink "/proc/$POD_PID1/ns/pid" 2>/dev/null)" = "$POD_PIDNS" ] && break
    elif [ "$POD_SHARED" != 1 ] && [ "$(cat "/proc/$POD_SHIM/comm" 2>/dev/null)" = unshare ]; then
      POD_PID1=$(cat "/proc/$POD_SHIM/task/$POD_SHIM/children" 2>/dev/null | awk '{print $1}')
      [ -n "$POD_PID1" ] && [ "$(awk '/^NSpid/ {print $NF}' "/proc/$POD_PID1/status" 2>/dev/null)" = 1 ] && break
    fi
    POD_PID1=""
    sleep 0.05
  done
  # A short-lived container (the init container) may be gone already; an
  # agent container that is gone before its PID 1 was seen has failed.
  if [ -z "$POD_PID1" ]; then
    if kill -0 "$POD_SHIM" 2>/dev/null; then
      pod_err "$name: no main process after 5 s (log: $(tail -3 "$log"))"; return 1
    elif [ "$name" != bpffs ]; then
      wait "$POD_SHIM"
      pod_err "$name: the container exited ($?) before its main process was seen; log: $(tail -5 "$log")"; return 1
    fi
  fi
  POD_C_SHIM[$name]=$POD_SHIM
  POD_C_MAIN[$name]=$POD_PID1
  # The container's PID namespace, kept after PID 1 is gone so pod_procs can
  # tell that nothing of it is left.
  # (An if, not `[ ] && ...`: a short-lived container gone before its PID 1
  # was seen is no failure, and the function's status must not say it is.)
  if [ -n "$POD_PID1" ] && [ "$POD_SHARED" != 1 ]; then
    POD_PIDNS=$(readlink "/proc/$POD_PID1/ns/pid" 2>/dev/null)
  fi
  return 0
}

# pod_pause: the pod's PID namespace (shareProcessNamespace) and its PID 1,
# a pause process that reaps whatever is reparented to it.
pod_pause() {
  local i
  nsenter --net="/run/netns/$LAB_NS_NODE" unshare --pid --fork --kill-child \
    bash -c 'while :; do sleep 100000 & wait $!; done' </dev/null >/dev/null 2>&1 &
  POD_PAUSE_SHIM=$!
  netns_track_pid "$POD_PAUSE_SHIM"
  POD_PAUSE=""
  for ((i = 0; i < 100; i++)); do
    if [ "$(cat "/proc/$POD_PAUSE_SHIM/comm" 2>/dev/null)" = unshare ]; then
      POD_PAUSE=$(awk '{print $1}' "/proc/$POD_PAUSE_SHIM/task/$POD_PAUSE_SHIM/children" 2>/dev/null)
      [ -n "$POD_PAUSE" ] && [ "$(awk '/^NSpid/ {print $NF}' "/proc/$POD_PAUSE/status" 2>/dev/null)" = 1 ] && break
    fi
    POD_PAUSE=""
    sleep 0.05
  done
  [ -n "$POD_PAUSE" ] || { pod_err "the pod's pause process did not start"; return 1; }
  POD_PIDNS=$(readlink "/proc/$POD_PAUSE/ns/pid")
}

# _pod_cg_kill CGROUP: SIGKILL to every process in it, frozen first (none
# can fork meanwhile); 0 once it is empty (bounded: 5 s).
_pod_cg_kill() {
  local cg=$1 p i
  [ -d "$cg" ] || return 0
  [ -n "$(cat "$cg/cgroup.procs" 2>/dev/null)" ] || return 0
  echo FROZEN >"$cg/freezer.state" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    [ "$(cat "$cg/freezer.state" 2>/dev/null)" = FROZEN ] && break
    sleep 0.02
  done
  for p in $(cat "$cg/cgroup.procs"); do kill -9 "$p" 2>/dev/null; done
  echo THAWED >"$cg/freezer.state" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    [ -n "$(cat "$cg/cgroup.procs" 2>/dev/null)" ] || return 0
    sleep 0.05
  done
  return 1
}

# pod_wait_exec COMM SECONDS: PID 1 has exec'd the container's command
pod_wait_exec() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ "$(cat "/proc/$POD_PID1/comm" 2>/dev/null)" = "$1" ] && return 0
    kill -0 "$POD_SHIM" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# pod_start: init container, then the cache container (config.dns), then
# the agent container, ready on its socket.
pod_start() {
  local rc
  [ -n "$POD_ROOTFS" ] || pod_init || return 1
  pod_render || return 1
  POD_INIT_LOG=$POD_DIR/init.log
  pod_container bpffs "$POD_INIT_LOG" || return 1
  wait "$POD_SHIM"; rc=$?
  POD_SHIM=""; POD_PID1=""
  if [ $rc -ne 0 ]; then
    pod_err "init container bpffs failed ($rc): $(tail -3 "$POD_INIT_LOG")"; return 1
  fi
  if [ -d "$POD_R/cache" ]; then pod_cache_start || return 1; fi
  pod_agent_start
}

# pod_agent_start: the agent container alone (a container restart).
pod_agent_start() {
  pod_container agent "$LAB_LOG" || return 1
  LAB_AGENT_PID=$POD_SHIM
  if ! pod_wait_exec edgeplane-agent 10 || ! wait_for "${LAB_AGENT_WAIT:-20}" lab_cli status; then
    pod_err "agent container did not become ready; log:"
    tail -30 "$LAB_LOG" | sed "s/^/# /"
    return 1
  fi
}

# pod_cache_start: the cache container (its log: $POD_CACHE_LOG), listening
# on the spawner socket under hostPaths.run. POD_SHIM/POD_PID1 stay the
# agent container's.
pod_cache_start() {
  local shim=$POD_SHIM pid1=$POD_PID1 ok=1
  POD_CACHE_LOG=${POD_CACHE_LOG:-$POD_DIR/cache.log}
  pod_container cache "$POD_CACHE_LOG" || ok=0
  POD_SHIM=$shim; POD_PID1=$pid1
  [ $ok = 1 ] || return 1
  if ! wait_for 10 grep -q 'spawner: listening on' "$POD_CACHE_LOG"; then
    pod_err "cache container: no spawner server listening; log: $(tail -5 "$POD_CACHE_LOG")"; return 1
  fi
}

# pod_cache_kill: kill -9 every process of the cache container (the spawner
# server, dnsmasq, the policy responder), as a runtime ends the container.
pod_cache_kill() {
  [ -n "${POD_C_SHIM[cache]:-}" ] || return 0
  _pod_cg_kill "$POD_CG/cache" 2>/dev/null
  wait "${POD_C_SHIM[cache]}" 2>/dev/null
  POD_C_SHIM[cache]=""; POD_C_MAIN[cache]=""
}

# pod_cache_pid: the host PID of the cache container's main process (the
# spawner server)
pod_cache_pid() { local p=${POD_C_MAIN[cache]:-}; [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"; }

# pod_procs [-v] [NAME]: how many processes container NAME (default agent)
# runs (-v: their names). Shared PID namespace: those of its cgroup;
# otherwise those of the PID namespace of the last started container, kept
# after it is gone. By PID namespace, not by /proc/PID/root: the container's
# root is a mount of its own mount namespace, and readlink shows it
# differently from a host that is itself chrooted (../shared/fresh-root.sh).
pod_procs() {
  local p n=0 names=() want=${POD_PIDNS:-} v=0
  [ "${1:-}" = -v ] && { v=1; shift; }
  if [ "$POD_SHARED" = 1 ]; then
    for p in $(cat "$POD_CG/${1:-agent}/cgroup.procs" 2>/dev/null); do
      n=$((n + 1)); names+=("$(cat "/proc/$p/comm" 2>/dev/null)")
    done
  elif [ -n "$want" ]; then
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$want" ] || continue
      n=$((n + 1)); names+=("$(cat "$p/comm" 2>/dev/null)")
    done
  fi
  if [ $v = 1 ]; then echo "${names[*]}"; else echo $n; fi
}


pod_pid() { [ -n "$POD_PID1" ] && kill -0 "$POD_PID1" 2>/dev/null && echo "$POD_PID1"; }

# pod_kill: the agent container ends at once. Shared PID namespace: SIGKILL
# to each of its processes (its cgroup); otherwise to PID 1, and the kernel
# kills the rest of the PID namespace.
pod_kill() {
  [ -n "$POD_SHIM" ] || return 0
  if [ "$POD_SHARED" = 1 ]; then
    # (stderr: bash's "Killed" notice for the shim, which nsenter ends with
    # its child's signal.)
    _pod_cg_kill "$POD_CG/agent" 2>/dev/null
  else
    # Without a known PID 1, SIGKILL to the shim: unshare --kill-child passes it on.
    kill -9 "${POD_PID1:-$POD_SHIM}" 2>/dev/null
  fi
  wait "$POD_SHIM" 2>/dev/null
  POD_SHIM=""; POD_PID1=""; LAB_AGENT_PID=""
}

# pod_stop: the kubelet's stop: SIGTERM, the grace period, SIGKILL.
pod_stop() {
  local grace i
  [ -n "$POD_SHIM" ] || return 0
  grace=$("$PY3" "$LAB_ROOT/tests/install/lib/manifests.py" "$RENDER_DIR/pod.json" --print 'pod["terminationGracePeriodSeconds"]')
  [ -n "$POD_PID1" ] && kill -TERM "$POD_PID1" 2>/dev/null
  for ((i = 0; i < ${grace:-30} * 10; i++)); do kill -0 "$POD_SHIM" 2>/dev/null || break; sleep 0.1; done
  pod_kill
}

pod_restart() { pod_kill; pod_agent_start; }

# pod_checks TAG [NAME]: TAP checks of a running container (default: agent),
# from the host: PID namespace, namespaces, capabilities, seccomp, root,
# mounts, command
pod_checks() {
  local p st want got tag=$1 name=${2:-agent} what
  if [ "$name" = agent ]; then p=$(pod_pid); what="the agent"; else p=$(pod_cache_pid); what="the $name container"; fi
  st=$(cat "/proc/$p/status" 2>/dev/null)
  if [ "$POD_SHARED" = 1 ]; then
    check "$tag: $what is in the pod's shared PID namespace (shareProcessNamespace), whose PID 1 is the pause process, not it (NSpid: $(awk '/^NSpid/ {print $2, $3}' <<<"$st"))" \
      bash -c "[ \"\$(awk '/^NSpid/ {print \$NF}' <<<'$st')\" != 1 ] && [ \"\$(readlink /proc/$p/ns/pid)\" = '$POD_PIDNS' ] && [ \"\$(readlink /proc/$POD_PAUSE/ns/pid)\" = '$POD_PIDNS' ] && [ '$POD_PIDNS' != \"\$(readlink /proc/1/ns/pid)\" ]"
  else
    check "$tag: $what is PID 1 of its own PID namespace (NSpid: $(awk '/^NSpid/ {print $2, $3}' <<<"$st"))" \
      bash -c "[ \"\$(awk '/^NSpid/ {print \$NF}' <<<'$st')\" = 1 ] && [ \"\$(readlink /proc/$p/ns/pid)\" != \"\$(readlink /proc/1/ns/pid)\" ]"
  fi
  check "$tag: $name: its mount namespace is not the host's, its network namespace is the lab node's (hostNetwork)" \
    bash -c "[ \"\$(readlink /proc/$p/ns/mnt)\" != \"\$(readlink /proc/1/ns/mnt)\" ] && [ \"\$(stat -L -c %i /proc/$p/ns/net)\" = \"\$(stat -L -c %i /run/netns/$LAB_NS_NODE)\" ]"
  want=$("$PY3" -c '
import sys
names = ["CHOWN","DAC_OVERRIDE","DAC_READ_SEARCH","FOWNER","FSETID","KILL","SETGID","SETUID","SETPCAP",
  "LINUX_IMMUTABLE","NET_BIND_SERVICE","NET_BROADCAST","NET_ADMIN","NET_RAW","IPC_LOCK","IPC_OWNER",
  "SYS_MODULE","SYS_RAWIO","SYS_CHROOT","SYS_PTRACE","SYS_PACCT","SYS_ADMIN","SYS_BOOT","SYS_NICE",
  "SYS_RESOURCE","SYS_TIME","SYS_TTY_CONFIG","MKNOD","LEASE","AUDIT_WRITE","AUDIT_CONTROL","SETFCAP",
  "MAC_OVERRIDE","MAC_ADMIN","SYSLOG","WAKE_ALARM","BLOCK_SUSPEND","AUDIT_READ","PERFMON","BPF","CHECKPOINT_RESTORE"]
m = 0
for l in open(sys.argv[1]):
    m |= 1 << names.index(l.strip().removeprefix("CAP_"))
print("%016x" % m)' "$POD_R/$name/caps")
  got=$(awk '/^Cap(Eff|Prm|Bnd|Inh|Amb)/ {printf "%s=%s ", $1, $2}' <<<"$st")
  check "$tag: $name: CapEff = CapPrm = CapBnd = the chart's capabilities.add ($(paste -sd, "$POD_R/$name/caps") = $want), CapInh = CapAmb = 0 ($got)" \
    bash -c "[ '$got' = 'CapInh:=0000000000000000 CapPrm:=$want CapEff:=$want CapBnd:=$want CapAmb:=0000000000000000 ' ]"
  # NoNewPrivs: the runtime sets it as allowPrivilegeEscalation says, and the
  # agent's own filter (loaded at the end of its start-up, libseccomp's
  # default) sets it in any case: 1 for the running agent; the cache
  # container has allowPrivilegeEscalation: false.
  check "$tag: $name: seccomp filter on (Seccomp: 2, the container's profile$([ "$name" = agent ] && echo " and the agent's own")), NoNewPrivs 1" \
    bash -c "grep -qx 'Seccomp:[[:space:]]*2' <<<'$st' && grep -qx 'NoNewPrivs:[[:space:]]*1' <<<'$st'"
  local want_m got_m
  want_m=$(cut -f1 "$POD_R/$name/mounts" | sed 's|^/var/run/|/run/|' | sort)
  got_m=$(awk '{print $5}' "/proc/$p/mountinfo" | grep -xF "$want_m" | sort -u)
  check "$tag: $name: root filesystem read-only (readOnlyRootFilesystem), the chart's $(wc -l <"$POD_R/$name/mounts") volume mounts in place ($(paste -sd' ' <<<"$got_m"))" \
    bash -c "awk '\$5 == \"/\" {print \$6}' /proc/$p/mountinfo | grep -q '^ro' && [ '$want_m' = '$got_m' ]"
  # (Through a pipe: /proc files have size 0, and cmp takes a size
  # difference for a difference.)
  check "$tag: $name: runs the chart's command ($(tr '\0' ' ' <"$POD_R/$name/cmd"))" \
    bash -c "cat /proc/$p/cmdline | cmp -s - '$POD_R/$name/cmd'"
}

# LAB_AGENT_RUNNER=pod_runner: tests/lab/lab.sh calls pod_runner start|stop|kill9|pid.
pod_runner() {
  case $1 in
    start) if [ -n "$POD_ROOTFS" ] && [ -f "$POD_DIR/render/agent/cmd" ]; then pod_render && pod_agent_start; else pod_start; fi;;
    stop) pod_stop;;
    kill9) pod_kill;;
    pid) pod_pid;;
  esac
}
