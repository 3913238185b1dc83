#!/usr/bin/env bash
# Control-plane figures of issue 3: nuage's Kubernetes API against etcd 3.4,
# the same workload, the same client, in the same run (127.0.0.1 only).
#
#   1. create throughput, c=1 and c=$CONC (wrk + Lua, as ../shared/bench/etcd.sh)
#        nuage: POST /api/v1/namespaces/default/configmaps, unique names,
#               64 B of data, bearer token, HTTPS
#        etcd:  POST /v3/kv/put of a new key, 64 B value (JSON gateway)
#   2. get and list latency with $PODS pods stored (wrk -c1 --latency)
#        nuage: GET one pod; GET the whole list (no limit)
#        etcd:  range of one key; range of the $PODS-key prefix, values of
#               the size nuage returns for one pod (gateway, and gRPC)
#   3. watch fan-out: $WATCHERS watchers, then one write at a time; time until
#      all have its event (nuage-bench watch-nuage / watch-etcd)
#   4. resident memory (VmRSS): idle after start; with $PODS pods stored after
#      loading them and one full list
#   5. start-up time until /readyz (etcd: /health) answers 200, on an
#      existing data dir and on a fresh one (nuage-bench startup)
#
# It builds nothing. Build first (from the workspace root):
#   cargo build --release -p nuage -p nuage-bench
# Needs: etcd (etcd-server 3.4), wrk, curl, python3.
#
# Env knobs:
#   RUNS=3          fresh servers per run for figure 1; the median is reported
#   DURATION=5s     wrk -d of each create case
#   LAT_DURATION=5s wrk -d of each get/list case
#   CONC=32         connections of the concurrent create case and the loaders
#   THREADS=1       wrk -t
#   PODS=10000      pods (and etcd keys) stored for figures 2 and 4
#   WATCHERS=1000   watchers for figure 3
#   WRITES=50       measured writes for figure 3 (after 3 warm-up writes)
#   ETCD_WATCH_CONNS="10 1000"  gRPC connections the etcd watchers share, one
#                   case each (nuage's watchers always have one HTTPS connection each)
#   START_RUNS=10   starts per start-up case
#   NUAGE_STORE=sqlite   or etcd: nuage keeps its state in an etcd of its own
#   FIGURES="create getlist watch startup"   which parts to run
#   MIN_IDLE=85 WAIT_IDLE_S=30   wait (bounded) for idle CPUs before each part
#   NUAGE=target/release/nuage BENCH=target/release/nuage-bench
# Output: one "RESULT <system>.<figure> <value> <unit>" line per figure, and
# "TARGET <figure> <PASS|FAIL> ..." for issue 3's targets.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NUAGE=${NUAGE:-$ROOT/target/release/nuage}
BENCH=${BENCH:-$ROOT/target/release/nuage-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
LAT_DURATION=${LAT_DURATION:-5s}
CONC=${CONC:-32}
THREADS=${THREADS:-1}
PODS=${PODS:-10000}
WATCHERS=${WATCHERS:-1000}
WRITES=${WRITES:-50}
ETCD_WATCH_CONNS=${ETCD_WATCH_CONNS:-10 1000}
START_RUNS=${START_RUNS:-10}
NUAGE_STORE=${NUAGE_STORE:-sqlite}
FIGURES=${FIGURES:-create getlist watch startup}

for b in etcd wrk curl python3; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install etcd-server wrk curl)"; exit 1; }
done
for b in "$NUAGE" "$BENCH"; do
  [ -x "$b" ] || { echo "missing $b: cargo build --release -p nuage -p nuage-bench"; exit 1; }
done
case $NUAGE_STORE in sqlite|etcd) ;; *) echo "NUAGE_STORE must be sqlite or etcd"; exit 1 ;; esac
# 1,000 watchers are 1,000 sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-cp.XXXXXX")
# Run private copies: a rebuild during the run must not change the binary.
cp "$NUAGE" "$WORK/nuage"; cp "$BENCH" "$WORK/nuage-bench"
NUAGE_SHA=$(sha256sum "$NUAGE" | cut -c1-12)
NUAGE=$WORK/nuage; BENCH=$WORK/nuage-bench
RESULTS="$WORK/results.txt"   # "run system.figure value unit" lines
: > "$RESULTS"
PIDS=()

# --- processes ---------------------------------------------------------------
stop_pid() { # pid: SIGTERM, wait up to 15 s, then SIGKILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
}
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Other work on this 2-core machine skews every figure: wait (bounded) for the
# CPUs to be mostly idle, and record what was seen (as etcd.sh does).
IDLES=""
wait_idle() {
  IDLES+="$(python3 - "${MIN_IDLE:-85}" "${WAIT_IDLE_S:-30}" <<'PYEOF'
import sys, time
def idle(sec=1.0):
    def snap():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = snap(); time.sleep(sec); i1, t1 = snap()
    return 100.0 * (i1 - i0) / max(1, t1 - t0)
want, limit = float(sys.argv[1]), float(sys.argv[2])
end = time.time() + limit
while True:
    v = idle()
    if v >= want or time.time() >= end:
        break
print(f"{v:.0f}")
PYEOF
) "
}

# etcd's flags, as etcd.sh starts it.
etcd_args() { # dir client_port peer_port
  echo --name bench --data-dir "$1" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "bench=http://127.0.0.1:$3" --initial-cluster-state new \
    --logger zap --log-outputs "$1.log" --log-level warn
}
# A fresh etcd. Sets ETCD_PID, ETCD_URL.
start_etcd() { # dir
  local cp pp i
  cp=$(free_port); pp=$(free_port)
  # shellcheck disable=SC2046
  etcd $(etcd_args "$1" "$cp" "$pp") 2>>"$1.stderr" &
  ETCD_PID=$!; PIDS+=("$ETCD_PID")
  ETCD_URL="http://127.0.0.1:$cp"
  for i in $(seq 1 150); do
    curl -sf "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    sleep 0.2
  done
  echo "etcd did not become healthy"; tail -20 "$1.log" "$1.stderr"; exit 1
}

# A fresh nuage server. Sets NUAGE_PID, NUAGE_DIR, NUAGE_LOG, API (https://...), TOKEN.
start_nuage() { # dir
  local store=sqlite i
  NUAGE_DIR=$1
  if [ "$NUAGE_STORE" = etcd ]; then
    start_etcd "$1-store"
    store="etcd://${ETCD_URL#http://}"
  fi
  mkdir -p "$NUAGE_DIR"
  "$NUAGE" server --data-dir "$NUAGE_DIR" --listen 127.0.0.1:0 --aws-listen 127.0.0.1:0 \
    --no-agent --store "$store" >"$NUAGE_DIR.log" 2>&1 &
  NUAGE_LOG=$NUAGE_DIR.log
  NUAGE_PID=$!; PIDS+=("$NUAGE_PID")
  for i in $(seq 1 300); do
    if [ -s "$NUAGE_DIR/endpoints.json" ]; then
      API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$NUAGE_DIR/endpoints.json" 2>/dev/null) || API=""
      if [ -n "$API" ] && [ "$(curl -sk -o /dev/null -w '%{http_code}' "$API/readyz")" = 200 ]; then
        TOKEN=$(cat "$NUAGE_DIR/admin-token")
        return 0
      fi
    fi
    kill -0 "$NUAGE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "nuage server did not start"; tail -20 "$NUAGE_DIR.log"; exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

record() { # run name value unit
  echo "$1 $2 $3 $4" >> "$RESULTS"
  echo "# run $1: $2 = $3 $4" >&2
}
# nuage-bench prints "name value unit": record each as system.name.
record_bench() { # run system
  local name value unit
  while read -r name value unit; do record "$1" "$2.$name" "$value" "$unit"; done
}

# --- wrk ---------------------------------------------------------------------
# wrk --latency -> "rps p50_ms p99_ms bad total"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/,"",v); return v/1000 }
      if (v ~ /ms$/) { sub(/ms$/,"",v); return v+0 }
      if (v ~ /s$/)  { sub(/s$/,"",v);  return v*1000 }
      return v
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    /^bad / { lua++ }
    /Non-2xx or 3xx responses:/ { status = $NF }
    /Socket errors:/ { sock++ }
    / requests in / { total = $1 }
    END { printf "%s %s %s %d %d\n", rps, p50, p99, (lua > status ? lua : status) + sock, total }'
}
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime
# run name conns duration lua url server-pid -> records name_ops, _p50, _p99,
# and the server's CPU time per request (_cpu: user + system, in ms)
wrk_case() {
  local rps p50 p99 bad total c0 c1
  c0=$(cpu_ticks "$7")
  timeout 120 wrk -t"$THREADS" -c"$3" -d"$4" --timeout 30s --latency -s "$5" "$6" > "$WORK/wrk.out"
  c1=$(cpu_ticks "$7")
  read -r rps p50 p99 bad total < <(parse_wrk < "$WORK/wrk.out")
  if [ "$bad" != 0 ]; then
    echo "WARN run $1 $2: $bad bad responses or socket errors:" >&2
    grep -E '^bad |Non-2xx|Socket errors' "$WORK/wrk.out" | sort | uniq -c | head -5 >&2
    case $2 in nuage.*)
      grep -E 'ERROR|WARN' "$NUAGE_LOG" | grep -v 'Illegal SNI' | tail -5 >&2 || true ;;
    esac
  fi
  record "$1" "$2_ops" "$rps" ops/s
  record "$1" "$2_p50" "$p50" ms
  record "$1" "$2_p99" "$p99" ms
  record "$1" "$2_cpu" "$(python3 -c "print(round(($c1 - $c0) * 1000 / $CLK_TCK / max(1, $total), 4))")" ms/op
}

VAL64=$(python3 -c 'print("v"*64)')
VAL64B=$(python3 -c 'import base64; print(base64.b64encode(b"v"*64).decode())')
b64() { printf '%s' "$1" | base64 -w0; }

# nuage create: a ConfigMap with a name unique per case, thread and request.
create_lua() { # case token
  cat <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function request()
  n = n + 1
  local name = string.format("$1-%d-%d", tid, n)
  return wrk.format(nil, nil, nil,
    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"' .. name .. '"},"data":{"v":"$VAL64"}}')
end
function response(status, headers, body)
  if status ~= 201 then print("bad status", status, body) end
end
EOF
}
# etcd put of a new key: etcd.sh's put.lua, with a per-case key prefix.
put_lua() { # case-number
  cat <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function request()
  n = n + 1
  local key = string.format("%02d%02d%012d", $1, tid, n)   -- 16 chars -> 12-byte key
  return wrk.format(nil, nil, nil, '{"key":"' .. key .. '","value":"$VAL64B"}')
end
function response(status, headers, body)
  if status ~= 200 then print("bad status", status, body) end
end
EOF
}
get_lua() { # token
  cat <<EOF
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer $1"
EOF
}
range_lua() { # json body
  cat <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$1'
EOF
}

NUAGE_VERSION="$("$NUAGE" --version 2>/dev/null || echo nuage) (HEAD $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), binary sha256 $NUAGE_SHA)"
echo "# $(date -u +%FT%TZ) $(uname -r) nproc=$(nproc) | $NUAGE_VERSION store=$NUAGE_STORE | etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}') | $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "# RUNS=$RUNS DURATION=$DURATION LAT_DURATION=$LAT_DURATION CONC=$CONC THREADS=$THREADS PODS=$PODS WATCHERS=$WATCHERS WRITES=$WRITES ETCD_WATCH_CONNS=\"$ETCD_WATCH_CONNS\" START_RUNS=$START_RUNS MIN_IDLE=${MIN_IDLE:-85} WAIT_IDLE_S=${WAIT_IDLE_S:-30}"
has() { case " $FIGURES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- 1. create throughput ----------------------------------------------------
if has create; then
  for run in $(seq 1 "$RUNS"); do
    D="$WORK/create$run"; mkdir -p "$D"
    start_etcd "$D/etcd"; E_URL=$ETCD_URL; E_PID=$ETCD_PID
    start_nuage "$D/nuage"
    k=0
    for c in 1 "$CONC"; do
      k=$((k + 1))
      create_lua "c$c" "$TOKEN" > "$D/create-c$c.lua"
      put_lua "$k" > "$D/put-c$c.lua"
    done
    create_lua warm "$TOKEN" > "$D/warm.lua"; put_lua 99 > "$D/warm-put.lua"
    wait_idle
    timeout 30 wrk -t1 -c4 -d1s -s "$D/warm.lua" "$API/api/v1/namespaces/default/configmaps" >/dev/null
    timeout 30 wrk -t1 -c4 -d1s -s "$D/warm-put.lua" "$E_URL/v3/kv/put" >/dev/null
    for c in 1 "$CONC"; do
      wrk_case "$run" "nuage.create_c$c" "$c" "$DURATION" "$D/create-c$c.lua" "$API/api/v1/namespaces/default/configmaps" "$NUAGE_PID"
      wrk_case "$run" "etcd.create_c$c" "$c" "$DURATION" "$D/put-c$c.lua" "$E_URL/v3/kv/put" "$E_PID"
    done
    stop_all
    rm -rf "$D"
  done
fi

# --- 2 and 4. get / list latency and memory with $PODS pods ------------------
if has getlist; then
  D="$WORK/getlist"; mkdir -p "$D"
  start_etcd "$D/etcd"; E_URL=$ETCD_URL; E_PID=$ETCD_PID
  start_nuage "$D/nuage"
  sleep 2
  record 1 nuage.rss_idle "$(rss_kib "$NUAGE_PID")" KiB
  record 1 etcd.rss_idle "$(rss_kib "$E_PID")" KiB
  wait_idle
  "$BENCH" load-pods --api "$API" --dir "$NUAGE_DIR" --n "$PODS" --conc "$CONC" > "$D/load.out"
  record_bench 1 nuage < "$D/load.out"
  POD_BYTES=$(awk '$1 == "pod_bytes" {printf "%d", $2}' "$D/load.out")
  "$BENCH" etcd-load --endpoint "$E_URL" --prefix /registry/pods/default/p- --n "$PODS" \
    --value-size "$POD_BYTES" --conc "$CONC" | record_bench 1 etcd
  sleep 1
  record 1 nuage.rss_after_load "$(rss_kib "$NUAGE_PID")" KiB
  record 1 etcd.rss_after_load "$(rss_kib "$E_PID")" KiB
  # One full list each, checked, then the memory figure.
  count='import json,sys; b=sys.stdin.buffer.read(); print(len(json.loads(b)[sys.argv[1]]), len(b))'
  read -r n bytes < <(curl -sf --cacert "$NUAGE_DIR/ca.crt" -H "Authorization: Bearer $TOKEN" \
      "$API/api/v1/namespaces/default/pods" | python3 -c "$count" items)
  [ "$n" = "$PODS" ] || { echo "nuage list returned $n pods, not $PODS"; exit 1; }
  record 1 nuage.list_bytes "$bytes" B
  PREFIX_B64=$(b64 /registry/pods/default/); END_B64=$(b64 /registry/pods/default0)
  ONE_B64=$(b64 "/registry/pods/default/p-$((PODS / 2))")
  read -r n bytes < <(curl -sf -X POST -d "{\"key\":\"$PREFIX_B64\",\"range_end\":\"$END_B64\"}" \
      "$E_URL/v3/kv/range" | python3 -c "$count" kvs)
  [ "$n" = "$PODS" ] || { echo "etcd range returned $n keys, not $PODS"; exit 1; }
  record 1 etcd.list_bytes "$bytes" B
  sleep 1
  record 1 nuage.rss_loaded "$(rss_kib "$NUAGE_PID")" KiB
  record 1 etcd.rss_loaded "$(rss_kib "$E_PID")" KiB
  record 1 nuage.data_dir_du "$(du -sk "$NUAGE_DIR" | awk '{print $1}')" KiB
  record 1 etcd.data_dir_du "$(du -sk "$D/etcd" | awk '{print $1}')" KiB

  get_lua "$TOKEN" > "$D/get.lua"
  range_lua "{\"key\":\"$ONE_B64\"}" > "$D/range1.lua"
  range_lua "{\"key\":\"$ONE_B64\",\"serializable\":true}" > "$D/range1s.lua"
  range_lua "{\"key\":\"$PREFIX_B64\",\"range_end\":\"$END_B64\"}" > "$D/rangeall.lua"
  wait_idle
  wrk_case 1 nuage.get 1 "$LAT_DURATION" "$D/get.lua" "$API/api/v1/namespaces/default/pods/p-$((PODS / 2))" "$NUAGE_PID"
  wrk_case 1 etcd.get 1 "$LAT_DURATION" "$D/range1.lua" "$E_URL/v3/kv/range" "$E_PID"
  wrk_case 1 etcd.get_serializable 1 "$LAT_DURATION" "$D/range1s.lua" "$E_URL/v3/kv/range" "$E_PID"
  wrk_case 1 nuage.list 1 "$LAT_DURATION" "$D/get.lua" "$API/api/v1/namespaces/default/pods" "$NUAGE_PID"
  wrk_case 1 etcd.list 1 "$LAT_DURATION" "$D/rangeall.lua" "$E_URL/v3/kv/range" "$E_PID"
  "$BENCH" etcd-range --endpoint "$E_URL" --key /registry/pods/default/ --prefix --n 50 \
    --name list_grpc | record_bench 1 etcd
  "$BENCH" etcd-range --endpoint "$E_URL" --key "/registry/pods/default/p-$((PODS / 2))" --n 500 \
    --name get_grpc | record_bench 1 etcd
  record 1 nuage.rss_peak "$(hwm_kib "$NUAGE_PID")" KiB
  record 1 etcd.rss_peak "$(hwm_kib "$E_PID")" KiB
  record 1 nuage.rss_after_lists "$(rss_kib "$NUAGE_PID")" KiB
  record 1 etcd.rss_after_lists "$(rss_kib "$E_PID")" KiB
  stop_all
  rm -rf "$D"
fi

# --- 3. watch fan-out --------------------------------------------------------
if has watch; then
  D="$WORK/watch"; mkdir -p "$D"
  start_etcd "$D/etcd"; E_URL=$ETCD_URL; E_PID=$ETCD_PID
  start_nuage "$D/nuage"
  wait_idle
  timeout 300 "$BENCH" watch-nuage --api "$API" --dir "$NUAGE_DIR" --watchers "$WATCHERS" \
    --writes "$WRITES" --server-pid "$NUAGE_PID" | record_bench 1 nuage
  record 1 nuage.rss_after_watch "$(rss_kib "$NUAGE_PID")" KiB
  for n in $ETCD_WATCH_CONNS; do
    wait_idle
    timeout 300 "$BENCH" watch-etcd --endpoint "$E_URL" --watchers "$WATCHERS" --writes "$WRITES" \
      --conns "$n" --server-pid "$E_PID" | record_bench 1 "etcd.conns$n"
    record 1 "etcd.conns$n.rss_after_watch" "$(rss_kib "$E_PID")" KiB
  done
  stop_all
  rm -rf "$D"
fi

# --- 5. start-up time --------------------------------------------------------
if has startup; then
  D="$WORK/startup"; mkdir -p "$D"
  P=$(free_port); PA=$(free_port)
  nuage_cmd=("$NUAGE" server --data-dir "$D/nuage" --listen "127.0.0.1:$P" --aws-listen "127.0.0.1:$PA" --no-agent)
  if [ "$NUAGE_STORE" = etcd ]; then
    start_etcd "$D/nuage-store"
    nuage_cmd+=(--store "etcd://${ETCD_URL#http://}")
  fi
  wait_idle
  timeout 600 "$BENCH" startup --name startup_first --url "https://127.0.0.1:$P/readyz" --runs "$START_RUNS" \
    --wipe "$D/nuage" -- "${nuage_cmd[@]}" | record_bench 1 nuage
  timeout 600 "$BENCH" startup --name startup_existing --url "https://127.0.0.1:$P/readyz" --runs "$START_RUNS" \
    -- "${nuage_cmd[@]}" | record_bench 1 nuage
  CP=$(free_port); PP=$(free_port)
  # shellcheck disable=SC2046
  timeout 600 "$BENCH" startup --name startup_first --url "http://127.0.0.1:$CP/health" --runs "$START_RUNS" \
    --wipe "$D/etcd" -- etcd $(etcd_args "$D/etcd" "$CP" "$PP") | record_bench 1 etcd
  # shellcheck disable=SC2046
  timeout 600 "$BENCH" startup --name startup_existing --url "http://127.0.0.1:$CP/health" --runs "$START_RUNS" \
    -- etcd $(etcd_args "$D/etcd" "$CP" "$PP") | record_bench 1 etcd
  stop_all
  rm -rf "$D"
fi

# --- summary -----------------------------------------------------------------
echo "# cpu idle % seen before each part: ${IDLES% }"
python3 - "$RESULTS" "$CONC" "$PODS" <<'EOF'
import statistics, sys
from collections import OrderedDict
rows = OrderedDict()
for line in open(sys.argv[1]):
    run, name, value, unit = line.split()
    rows.setdefault(name, (unit, []))[1].append(float(value))
conc, pods = sys.argv[2], sys.argv[3]
med = {}
for name, (unit, vals) in rows.items():
    m = statistics.median(vals)
    med[name] = m
    if unit == "KiB":
        unit, m, vals = "MiB", m / 1024, [v / 1024 for v in vals]
    runs = f" runs=[{' '.join(f'{v:.4g}' for v in vals)}]" if len(vals) > 1 else ""
    print(f"RESULT {name} {m:.4g} {unit}{runs}")

def ratio(a, b):
    return med[a] / med[b] if a in med and b in med and med[b] else None

def target(fig, ok, text):
    print(f"TARGET {fig} {'PASS' if ok else 'FAIL'} {text}")

r = ratio(f"nuage.create_c{conc}_ops", f"etcd.create_c{conc}_ops")
if r is not None:
    n = med[f"nuage.create_c{conc}_ops"]
    print(f"RESULT ratio.create_c{conc}_nuage_over_etcd {r:.3g} x")
    target(f"create_c{conc}", r >= 1.0 and n >= 5000, f"nuage {n:.0f}/s = {r:.2f}x etcd (want >= 1.0x and >= 5000/s)")
r1 = ratio("nuage.create_c1_ops", "etcd.create_c1_ops")
if r1 is not None:
    print(f"RESULT ratio.create_c1_nuage_over_etcd {r1:.3g} x")
if "nuage.list_p50" in med:
    for p in ("p50", "p99"):
        v = med[f"nuage.list_{p}"]
        target(f"list_{p}", v < 150, f"nuage list of {pods} pods {p} {v:.1f} ms (want < 150 ms)")
if "nuage.watch_fanout_p99" in med:
    target("watch_fanout", med["nuage.watch_fanout_p99"] < 50, f"nuage p99 {med['nuage.watch_fanout_p99']:.1f} ms (want < 50 ms)")
if "nuage.rss_idle" in med:
    target("rss_idle", med["nuage.rss_idle"] / 1024 < 20, f"nuage {med['nuage.rss_idle'] / 1024:.1f} MiB (want < 20 MiB)")
for case in ("existing", "first"):
    for p in ("p50", "p99"):
        k = f"nuage.startup_{case}_{p}"
        if k in med:
            target(f"startup_{case}_{p}", med[k] < 50, f"nuage start to /readyz 200, {'existing' if case == 'existing' else 'fresh'} data dir, {p} {med[k]:.1f} ms (want < 50 ms{'' if case == 'existing' else '; first start: reported only'})")
EOF
