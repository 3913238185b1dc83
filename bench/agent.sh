#!/usr/bin/env bash
# Node agent figures of issue 4: nuage's pod start beside the same busybox
# container started by bare crun (the floor) in the same run.
#
#   floor   bare `crun run` of a bundle whose process is `true` (run to
#           exit), and `crun create` + `crun start` of `sleep 3600` (until
#           it runs), $FLOOR_N times each, on the unpacked busybox layer
#           (read-only rootfs, config from `crun spec`); the same with runc
#           for information. crun runs through host.md's workaround on a
#           hybrid cgroup host (unshare -m, unified hierarchy unmounted).
#   serial  $N pods one after another (busybox `sleep 3600`, spec.nodeName
#           set): create -> a watch event with phase Running and the
#           container running; each deleted (grace 0) and torn down before
#           the next
#   burst   $BURST pods created at once: time until all are Running
#   idle    $IDLE pods Running, then the agent's CPU over $IDLE_SECS s (%
#           of one core), its RSS, and a shim's RSS / PSS
#
# The control plane runs as `nuage server --no-agent` and the agent as its
# own process (`nuage agent --runtime crun`), so the agent's CPU and memory
# are its own. Everything listens on 127.0.0.1 (port 0 or a free port);
# the bridge, the pod CIDR and the node name are unique to the run.
#
# Builds release first (BUILD=0 skips it). Needs root, crun, runc, unshare,
# ip, curl, python3, busybox-static (for examples/seed/build-images).
#
# Env knobs: N=30 BURST=100 IDLE=50 IDLE_SECS=30 FLOOR_N=30
#   FIGURES="floor serial burst idle"  AGENT_LOG=info (e.g. nuage_agent=debug)
#   MIN_IDLE=85 WAIT_IDLE_S=30  wait (bounded) for idle CPUs before each part
#   KEEP=1 keeps the work dir (logs) after the run
# Output: "RESULT <figure> <value> <unit>" lines, a table, and
# "TARGET <figure> PASS|FAIL ..." lines for issue 4's targets.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-30}
BURST=${BURST:-100}
IDLE=${IDLE:-50}
IDLE_SECS=${IDLE_SECS:-30}
FLOOR_N=${FLOOR_N:-30}
FIGURES=${FIGURES:-floor serial burst idle}
AGENT_LOG=${AGENT_LOG:-info}

[ "$(id -u)" = 0 ] || { echo "run as root (containers, bridges, namespaces)"; exit 1; }
for b in crun runc unshare ip curl python3 cargo; do
  command -v "$b" >/dev/null || { echo "missing $b"; exit 1; }
done

if [ "${BUILD:-1}" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p nuage -p nuage-bench)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-agent.XXXXXX")
# Private copies: a rebuild during the run must not change what is measured.
cp "$ROOT/target/release/nuage" "$WORK/nuage"
cp "$ROOT/target/release/nuage-bench" "$WORK/nuage-bench"
NUAGE_SHA=$(sha256sum "$WORK/nuage" | cut -c1-12)
NUAGE=$WORK/nuage; BENCH=$WORK/nuage-bench
RESULTS=$WORK/results.txt; : > "$RESULTS"
SERVER_DIR=$WORK/server; AGENT_DIR=$WORK/agent
SERVER_PID=""; AGENT_PID=""; API=""; TOKEN=""

# A bridge, CIDR and node name no one else on this machine uses.
TAG=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
BRIDGE=nb$TAG
NODE=bench-$TAG
CGROUP=nuagebench-$TAG
routes=$(ip -4 route show table all)
CIDR=""
for _ in $(seq 1 200); do
  b=$((200 + RANDOM % 30)); c=$((RANDOM % 256))
  case $routes in *"10.$b.$c."*) continue ;; esac
  CIDR=10.$b.$c.0/24; break
done
[ -n "$CIDR" ] || { echo "no free 10.2xx.y.0/24"; exit 1; }

# --- processes and clean-up ----------------------------------------------------
stop_pid() { # pid: SIGTERM, wait up to 15 s, then SIGKILL
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

floor_cleanup() { # containers and cgroups the floor may have left
  local engine id
  for engine in crun runc; do
    [ -d "$WORK/$engine-root" ] || continue
    for id in $(ls "$WORK/$engine-root" 2>/dev/null); do
      if [ "$engine" = crun ] && mountpoint -q /sys/fs/cgroup/unified; then
        unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$0" "$@"' \
          crun --root "$WORK/crun-root" delete --force "$id" >/dev/null 2>&1 || true
      else
        "$engine" --root "$WORK/$engine-root" delete --force "$id" >/dev/null 2>&1 || true
      fi
    done
  done
  for d in /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/*/*/"$CGROUP"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$API" ] && [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    # Pods this run made that are still there (after a failure).
    curl -sk -o /dev/null --max-time 10 -X DELETE -H "Authorization: Bearer $TOKEN" \
      "$API/api/v1/namespaces/default/pods?labelSelector=nuage-bench&gracePeriodSeconds=0"
  fi
  stop_pid "$AGENT_PID"
  # The agent leaves containers running when it stops: reset removes them,
  # their networks and mounts, and the bridge.
  if [ -d "$AGENT_DIR/agent" ]; then
    timeout 120 "$NUAGE" reset --data-dir "$AGENT_DIR" >"$WORK/reset.log" 2>&1 \
      || { echo "nuage reset failed:"; tail -5 "$WORK/reset.log"; }
  fi
  stop_pid "$SERVER_PID"
  floor_cleanup
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  if grep -q " $WORK" /proc/mounts; then
    echo "mounts left under $WORK:"; grep " $WORK" /proc/mounts | head
  elif [ "${KEEP:-0}" = 1 ]; then
    echo "# kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

IDLES=""
# Wait (at most WAIT_IDLE_S s) for the CPUs to be at least MIN_IDLE % idle
# over one second: other sessions share this machine.
wait_idle() {
  local idle="" i
  for i in $(seq 1 "${WAIT_IDLE_S:-30}"); do
    idle=$(python3 - <<'EOF'
import time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f)
i0, t0 = snap(); time.sleep(1); i1, t1 = snap()
print(int(100 * (i1 - i0) / max(1, t1 - t0)))
EOF
)
    [ "$idle" -ge "${MIN_IDLE:-85}" ] && break
  done
  IDLES+="$idle "
  echo "# cpu idle ${idle}%" >&2
}

record() { # name value unit
  echo "$1 $2 $3" >> "$RESULTS"
  echo "# $1 = $2 $3" >&2
}
record_bench() { local name value unit; while read -r name value unit; do record "$name" "$value" "$unit"; done; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "# $(date -u +%FT%TZ) $(uname -r) nproc=$(nproc) | nuage $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (binary sha256 $NUAGE_SHA) | $(crun --version | head -1) | $(runc --version | head -1)"
echo "# N=$N BURST=$BURST IDLE=$IDLE IDLE_SECS=$IDLE_SECS FLOOR_N=$FLOOR_N node=$NODE bridge=$BRIDGE cidr=$CIDR work=$WORK"

# --- images ----------------------------------------------------------------------
"$ROOT/examples/seed/build-images" "$WORK/images" >/dev/null
mkdir -p "$AGENT_DIR"
"$NUAGE" image import "$WORK/images/busybox.tar" --data-dir "$AGENT_DIR" >/dev/null
# busybox is one layer: the floor's rootfs is that unpacked layer.
LAYER=$(ls -d "$AGENT_DIR"/images/layers/*/)
[ "$(echo "$LAYER" | wc -l)" = 1 ] || { echo "expected one busybox layer, got: $LAYER"; exit 1; }
LAYER=${LAYER%/}

has() { case " $FIGURES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- 1. the floor: bare crun (and runc) --------------------------------------------
bundle() { # engine dir args-json: a bundle from `ENGINE spec`, adjusted
  mkdir -p "$2"
  (cd "$2" && "$1" spec)
  python3 - "$2/config.json" "$LAYER" "$3" "/$CGROUP" <<'EOF'
import json, sys
path, rootfs, args, cgroup = sys.argv[1:]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["args"] = json.loads(args)
c["process"]["terminal"] = False
c["hostname"] = "floor"
c.setdefault("linux", {})["cgroupsPath"] = cgroup
json.dump(c, open(path, "w"), indent=1)
EOF
}
if has floor; then
  for engine in crun runc; do
    bundle "$engine" "$WORK/$engine-run" '["true"]'
    bundle "$engine" "$WORK/$engine-start" '["sleep","3600"]'
    mkdir -p "$WORK/$engine-root"
  done
  wait_idle
  for engine in crun runc; do
    timeout 300 "$BENCH" oci-floor --engine "$engine" --root "$WORK/$engine-root" --mode run \
      --bundle "$WORK/$engine-run" --n "$FLOOR_N" | record_bench
    timeout 300 "$BENCH" oci-floor --engine "$engine" --root "$WORK/$engine-root" --mode start \
      --bundle "$WORK/$engine-start" --n "$FLOOR_N" | record_bench
  done
  floor_cleanup
fi

# --- 2. control plane and agent ------------------------------------------------------
if has serial || has burst || has idle; then
  mkdir -p "$SERVER_DIR"
  "$NUAGE" server --data-dir "$SERVER_DIR" --listen 127.0.0.1:0 --aws-listen 127.0.0.1:0 \
    --no-agent >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if [ -s "$SERVER_DIR/endpoints.json" ]; then
      API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$SERVER_DIR/endpoints.json" 2>/dev/null) || API=""
      if [ -n "$API" ] && [ "$(curl -sk -o /dev/null -w '%{http_code}' "$API/readyz")" = 200 ]; then break; fi
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    API=""; sleep 0.1
  done
  [ -n "$API" ] || { echo "nuage server did not start"; tail -20 "$WORK/server.log"; exit 1; }
  TOKEN=$(cat "$SERVER_DIR/admin-token")

  RUST_LOG=$AGENT_LOG "$NUAGE" agent --server "$API" --token "$TOKEN" --ca-file "$SERVER_DIR/ca.crt" \
    --data-dir "$AGENT_DIR" --node-name "$NODE" --bridge "$BRIDGE" --pod-cidr "$CIDR" \
    --runtime crun --port 0 >"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  ready=""
  for _ in $(seq 1 300); do
    node_json=$(curl -sf --cacert "$SERVER_DIR/ca.crt" -H "Authorization: Bearer $TOKEN" \
      "$API/api/v1/nodes/$NODE" 2>/dev/null) || node_json=""
    if [ -n "$node_json" ] && echo "$node_json" | python3 -c '
import json, sys
n = json.load(sys.stdin)
sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", [])) else 1)'; then
      ready=1; break
    fi
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "node $NODE did not become Ready"; tail -20 "$WORK/agent.log"; exit 1; }
  # Other sessions on this machine sweep stray nb* bridges: say so if ours went.
  bridge_check() { ip link show "$BRIDGE" >/dev/null 2>&1 || echo "WARN bridge $BRIDGE vanished (removed by someone else?)" >&2; }
  sleep 2
  record agent_rss_start "$(rss_kib "$AGENT_PID")" KiB
  record server_rss_start "$(rss_kib "$SERVER_PID")" KiB

  common=(--api "$API" --dir "$SERVER_DIR" --node "$NODE" --agent-dir "$AGENT_DIR"
    --agent-pid "$AGENT_PID" --server-pid "$SERVER_PID")
  for fig in serial burst idle; do
    has "$fig" || continue
    wait_idle
    timeout 900 "$BENCH" pods "${common[@]}" --figures "$fig" --n "$N" --burst "$BURST" \
      --idle "$IDLE" --idle-secs "$IDLE_SECS" | record_bench
    record "agent_rss_after_$fig" "$(rss_kib "$AGENT_PID")" KiB
    bridge_check
  done
  record agent_rss_end "$(rss_kib "$AGENT_PID")" KiB
  record agent_rss_hwm "$(awk '/^VmHWM:/ {print $2}' "/proc/$AGENT_PID/status")" KiB
  grep -E ' (ERROR|WARN) ' "$WORK/agent.log" | tail -5 || true
fi

# --- summary -----------------------------------------------------------------------
echo "# cpu idle % seen before each part: ${IDLES% }"
python3 - "$RESULTS" <<'EOF'
import sys
v, unit = {}, {}
for line in open(sys.argv[1]):
    name, value, u = line.split()
    if u == "KiB":
        value, u = float(value) / 1024, "MiB"
    v[name], unit[name] = float(value), u
for name in v:
    print(f"RESULT {name} {v[name]:.4g} {unit[name]}")

def g(k, fmt="{:.1f}"):
    return fmt.format(v[k]) if k in v else "-"

rows = [
    ("pod start p50 (create -> Running, watch)", "≤ 150 ms", g("pod_start_p50"), g("floor_crun_start_p50"), g("floor_runc_start_p50")),
    ("pod start p90", "", g("pod_start_p90"), "", ""),
    ("pod start p99 / max", "≤ 400 ms", f"{g('pod_start_p99')} / {g('pod_start_max')}", f"{g('floor_crun_start_p99')} / {g('floor_crun_start_max')}", f"{g('floor_runc_start_p99')} / {g('floor_runc_start_max')}"),
    ("run to exit (`true`) p50 / p99", "", "", f"{g('floor_crun_run_p50')} / {g('floor_crun_run_p99')}", f"{g('floor_runc_run_p50')} / {g('floor_runc_run_p99')}"),
    ("create -> first status write p50", "", g("pod_first_status_p50"), "", ""),
    ("delete -> torn down p50 (bare: delete --force)", "", g("pod_teardown_p50"), g("floor_crun_start_delete_p50"), g("floor_runc_start_delete_p50")),
    (f"{g('burst_pods', '{:.0f}')} pods at once: all Running", "≤ 10,000 ms", g("burst_all_running", "{:.0f}"), "", ""),
    (f"agent CPU, {g('idle_pods', '{:.0f}')} idle pods", "< 2 % of a core", g("idle_agent_cpu", "{:.2f}") + " %", "", ""),
    (f"agent RSS, {g('idle_pods', '{:.0f}')} idle pods (peak)", "< 30 MiB", f"{g('idle_agent_rss')} ({g('agent_rss_peak')}) MiB", "", ""),
    ("one shim RSS / mean PSS", "", f"{g('shim_rss', '{:.2f}')} / {g('shim_pss_mean', '{:.2f}')} MiB", "", ""),
]
print()
print("| figure | target | nuage (agent, crun) | bare crun | bare runc |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()

def target(fig, key, ok, text):
    if key in v:
        print(f"TARGET {fig} {'PASS' if ok(v[key]) else 'FAIL'} {text.format(v[key])}")

target("pod_start_p50", "pod_start_p50", lambda x: x <= 150, "{:.1f} ms (want <= 150 ms)")
target("pod_start_p99", "pod_start_p99", lambda x: x <= 400, "{:.1f} ms (want <= 400 ms)")
target("burst_all_running", "burst_all_running", lambda x: x <= 10000, "{:.0f} ms for the burst (want <= 10000 ms)")
target("idle_agent_cpu", "idle_agent_cpu", lambda x: x < 2, "{:.2f} % of one core (want < 2 %)")
target("agent_rss", "idle_agent_rss", lambda x: x < 30, "{:.1f} MiB with the idle pods (want < 30 MiB)")
EOF
