#!/usr/bin/env bash
# Scheduler and controller figures of issue 5, on simulated nodes.
#
#   register  `nuage sim nodes --count $NODES` (32 CPU, 128Gi, 110 pods,
#             3 zones): time to register them, then the server's CPU over
#             $IDLE_SECS s while it keeps them alive (a Lease renewal per
#             node every 10 s) and its RSS
#   scale     a ReplicaSet of $PODS pods: create -> every pod bound
#             (scheduler) and Running (simulated nodes), pods bound per
#             second, the server's RSS at $PODS pods, then delete it all
#   rollout   a Deployment of $ROLLOUT pods made available, then a new
#             image: time until the rolling update is complete
#
# Everything runs in one `nuage server --no-agent` process (API, store,
# scheduler, controllers, simulated nodes): its RSS and CPU are the control
# plane's. It listens on 127.0.0.1 (port 0). No root needed.
#
# Builds release first (BUILD=0 skips it). Needs curl and python3.
# Env knobs: NODES=1000 PODS=10000 ROLLOUT=1000 IDLE_SECS=20
#   FIGURES="scale rollout"  SERVER_LOG=info  MIN_IDLE=85 WAIT_IDLE_S=30
#   KEEP=1 keeps the work dir (logs) after the run
#   PERF=1 records the server with `perf record -g` during each figure
#   (WORK/perf-<figure>.data; implies KEEP=1)
# Output: "RESULT <figure> <value> <unit>" lines, a table, and
# "TARGET <figure> PASS|FAIL ..." lines for issue 5's targets.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODES=${NODES:-1000}
PODS=${PODS:-10000}
ROLLOUT=${ROLLOUT:-1000}
IDLE_SECS=${IDLE_SECS:-20}
FIGURES=${FIGURES:-scale rollout}
SERVER_LOG=${SERVER_LOG:-info}

for b in curl python3 cargo; do
  command -v "$b" >/dev/null || { echo "missing $b"; exit 1; }
done
if [ "${BUILD:-1}" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p nuage -p nuage-bench)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-control.XXXXXX")
# Private copies: a rebuild during the run must not change what is measured.
cp "$ROOT/target/release/nuage" "$WORK/nuage"
cp "$ROOT/target/release/nuage-bench" "$WORK/nuage-bench"
NUAGE=$WORK/nuage; BENCH=$WORK/nuage-bench
NUAGE_SHA=$(sha256sum "$NUAGE" | cut -c1-12)
RESULTS=$WORK/results.txt; : > "$RESULTS"
DIR=$WORK/server
SERVER_PID=""

stop_pid() { # pid: SIGTERM, wait up to 15 s, then SIGKILL
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_pid "$SERVER_PID"
  if [ "${KEEP:-0}" = 1 ] || [ "${PERF:-0}" = 1 ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

IDLES=""
wait_idle() { # at most WAIT_IDLE_S s for MIN_IDLE % idle CPUs (the machine is shared)
  local idle="" i
  for i in $(seq 1 "${WAIT_IDLE_S:-30}"); do
    idle=$(python3 - <<'PY'
import time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f)
i0, t0 = snap(); time.sleep(1); i1, t1 = snap()
print(int(100 * (i1 - i0) / max(1, t1 - t0)))
PY
)
    [ "$idle" -ge "${MIN_IDLE:-85}" ] && break
  done
  IDLES+="$idle "
  echo "# cpu idle ${idle}%" >&2
}
record() { echo "$1 $2 $3" >> "$RESULTS"; echo "# $1 = $2 $3" >&2; }
record_bench() { local name value unit; while read -r name value unit; do record "$name" "$value" "$unit"; done; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$1/stat"; }
now_ms() { date +%s%3N; }

echo "# $(date -u +%FT%TZ) $(uname -r) nproc=$(nproc) | nuage $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (binary sha256 $NUAGE_SHA)"
echo "# NODES=$NODES PODS=$PODS ROLLOUT=$ROLLOUT IDLE_SECS=$IDLE_SECS FIGURES=\"$FIGURES\" work=$WORK"

# --- the control plane ------------------------------------------------------------
mkdir -p "$DIR"
RUST_LOG=$SERVER_LOG "$NUAGE" server --data-dir "$DIR" --listen 127.0.0.1:0 --aws-listen 127.0.0.1:0 \
  --no-agent >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
API=""
for _ in $(seq 1 300); do
  if [ -s "$DIR/endpoints.json" ]; then
    API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$DIR/endpoints.json" 2>/dev/null) || API=""
    if [ -n "$API" ] && [ "$(curl -sk -o /dev/null -w '%{http_code}' "$API/readyz")" = 200 ]; then break; fi
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  API=""; sleep 0.1
done
[ -n "$API" ] || { echo "nuage server did not start"; tail -20 "$WORK/server.log"; exit 1; }
sleep 1
record server_rss_start "$(rss_kib "$SERVER_PID")" KiB

# --- 1. simulated nodes -----------------------------------------------------------
wait_idle
t0=$(now_ms)
"$NUAGE" sim nodes --count "$NODES" --zones 3 --data-dir "$DIR" >&2
record sim_register_ms "$(( $(now_ms) - t0 ))" ms
record sim_nodes "$NODES" n
# Let the first round of Lease creations pass, then measure keeping them alive.
sleep 12
c0=$(cpu_ms "$SERVER_PID"); t0=$(now_ms)
sleep "$IDLE_SECS"
c1=$(cpu_ms "$SERVER_PID"); t1=$(now_ms)
record sim_idle_cpu "$(python3 -c "print(100 * ($c1 - $c0) / ($t1 - $t0))")" %
record sim_idle_rss "$(rss_kib "$SERVER_PID")" KiB
LEASES=$(curl -s --cacert "$DIR/ca.crt" -H "Authorization: Bearer $(cat "$DIR/admin-token")" \
  "$API/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases" \
  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
record sim_leases "$LEASES" n

# --- 2. scale and 3. rollout --------------------------------------------------------
for fig in scale rollout; do
  case " $FIGURES " in *" $fig "*) ;; *) continue ;; esac
  wait_idle
  PERF_PID=""
  if [ "${PERF:-0}" = 1 ]; then
    perf record -F 499 -g -p "$SERVER_PID" -o "$WORK/perf-$fig.data" >/dev/null 2>&1 &
    PERF_PID=$!
  fi
  timeout 1800 "$BENCH" schedule --api "$API" --dir "$DIR" --server-pid "$SERVER_PID" \
    --figures "$fig" --pods "$PODS" --rollout "$ROLLOUT" | record_bench
  if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; fi
done
record server_rss_end "$(rss_kib "$SERVER_PID")" KiB
record server_rss_hwm "$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")" KiB
grep -E ' (ERROR|WARN) ' "$WORK/server.log" | tail -5 || true

# --- summary -------------------------------------------------------------------------
echo "# cpu idle % seen before each part: ${IDLES% }"
python3 - "$RESULTS" <<'PY'
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
    (f"register {g('sim_nodes', '{:.0f}')} simulated nodes", "", g("sim_register_ms", "{:.0f}") + " ms"),
    ("server CPU keeping them alive (Leases every 10 s)", "", g("sim_idle_cpu", "{:.2f}") + " % of a core"),
    ("server RSS with the nodes, no pods", "", g("sim_idle_rss") + " MiB"),
    (f"ReplicaSet of {g('sched_pods', '{:.0f}')}: all pods created", "", g("sched_all_created", "{:.0f}") + " ms"),
    ("... all bound (scheduled)", "", g("sched_all_bound", "{:.0f}") + " ms"),
    ("... all Running", "", g("sched_all_running", "{:.0f}") + " ms"),
    ("**pods scheduled per second** (pods / create -> last bound)", "≥ 1,000/s", g("sched_pods_per_s", "{:.0f}")),
    ("binds per second between the first and the last bind", "", g("sched_bind_window_per_s", "{:.0f}")),
    ("pods created per second (ReplicaSet controller)", "", g("sched_created_per_s", "{:.0f}")),
    ("server CPU during the phase", "", g("sched_server_cpu_share", "{:.0f}") + " % of a core"),
    (f"**control plane RSS at {g('sched_pods', '{:.0f}')} pods** (peak in phase)", "< 300 MB", f"{g('sched_server_rss')} ({g('sched_server_rss_peak')}) MiB"),
    ("scale the ReplicaSet to 0: all pods gone", "", g("sched_scale_to_zero", "{:.0f}") + " ms"),
    ("server RSS after that", "", g("sched_server_rss_after_delete") + " MiB"),
    (f"Deployment of {g('deploy_pods', '{:.0f}')}: available", "", g("deploy_available", "{:.0f}") + " ms"),
    ("**rolling update to a new image, complete**", "", g("deploy_rollout", "{:.0f}") + " ms"),
    ("scale the Deployment to 0: all pods gone", "", g("deploy_scale_to_zero", "{:.0f}") + " ms"),
    ("server RSS peak over the run (VmHWM)", "", g("server_rss_hwm") + " MiB"),
]
print()
print("| figure | target | nuage |")
print("|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()

def target(fig, key, ok, text):
    if key in v:
        print(f"TARGET {fig} {'PASS' if ok(v[key]) else 'FAIL'} {text.format(v[key])}")

target("pods_scheduled_per_s", "sched_pods_per_s", lambda x: x >= 1000, "{:.0f} pods/s (want >= 1000)")
# 300 MB = 286.1 MiB
target("rss_at_pods", "sched_server_rss_peak", lambda x: x * 1048576 < 300e6, "{:.1f} MiB peak (want < 300 MB = 286.1 MiB)")
PY
