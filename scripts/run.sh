#!/usr/bin/env bash
# run.sh -- the main job: set up everything and run tier on this machine.
#
#   bash scripts/run.sh          install packages, build, start Redis and
#                                MariaDB (private to this checkout), start
#                                tierd and two tier-workers, register the
#                                seed's sample files; leaves them running
#   bash scripts/run.sh stop     stop workers, tierd and the services
#   bash scripts/run.sh status   what is running
#
# Processes, logs and pid files live in $TIER_RUN_DIR (default .run/);
# tierd listens on $TIER_LISTEN (default tls+tcp://127.0.0.1:7400) and pushes
# move jobs on $TIER_PUSH (default tls+tcp://127.0.0.1:7401), with the
# tokens and certificates services.sh made in .run/access (docs/SECURITY.md):
# tierctl in a shell that sourced .run/env is admin, the workers get only
# the worker token.  Run it as root on Debian 12; it is idempotent: running
# it again restarts tierd and workers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TIER_RUN_DIR=${TIER_RUN_DIR:-$ROOT/.run}
BUILD=${TIER_BUILD_DIR:-$ROOT/build}
export TIER_LISTEN=${TIER_LISTEN:-tls+tcp://127.0.0.1:7400}
export TIER_PUSH=${TIER_PUSH:-tls+tcp://127.0.0.1:7401}
# HTTP: the JSON gateway, /metrics and the dashboard; workers' /metrics on
# the ports after it.
export TIER_HTTP_LISTEN=${TIER_HTTP_LISTEN:-http://127.0.0.1:7480}
HTTP_PORT=${TIER_HTTP_LISTEN##*:}
export TIER_URL=$TIER_LISTEN
WORKERS=${TIER_WORKERS:-2}

say() { echo "run.sh: $*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

# Stops the process in pid file $1 (if it is still the program $2).
stop_pidfile() {
    local f=$1 prog=$2 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && grep -qa "$prog" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

stop_all() {
    for f in "$TIER_RUN_DIR"/worker-*.pid; do
        [ -e "$f" ] && stop_pidfile "$f" tier-worker
    done
    stop_pidfile "$TIER_RUN_DIR/tierd.pid" tierd
    bash "$ROOT/scripts/services.sh" stop
}

start_bg() { # pidfile logfile command...
    local pidf=$1 log=$2
    shift 2
    nohup "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidf"
}

case "${1:-start}" in
stop)
    stop_all
    say "stopped"
    exit 0
    ;;
status)
    bash "$ROOT/scripts/services.sh" status || true
    for f in "$TIER_RUN_DIR"/tierd.pid "$TIER_RUN_DIR"/worker-*.pid; do
        [ -e "$f" ] && echo "$(basename "$f" .pid): pid $(cat "$f")"
    done
    exit 0
    ;;
start) ;;
*) die "usage: run.sh [start|stop|status]" ;;
esac

bash "$ROOT/scripts/deps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
bash "$ROOT/scripts/services.sh" start
# shellcheck disable=SC1091
. "$TIER_RUN_DIR/env"

stop_pidfile "$TIER_RUN_DIR/tierd.pid" tierd
for f in "$TIER_RUN_DIR"/worker-*.pid; do
    [ -e "$f" ] && stop_pidfile "$f" tier-worker
done

# SetLevels accepts level directories only under the storage root; tokens
# and certificates as services.sh made them (all also in the environment via
# .run/env; given here so the choices are visible).
start_bg "$TIER_RUN_DIR/tierd.pid" "$TIER_RUN_DIR/tierd.log" "$BUILD/bin/tierd" \
    --storage-root "$TIER_STORAGE_ROOT" --auth-tokens "$TIER_AUTH_TOKENS" \
    --tls-cert "$TIER_TLS_CERT" --tls-key "$TIER_TLS_KEY" --http "$TIER_HTTP_LISTEN"
for _ in $(seq 1 100); do
    "$BUILD/bin/tierctl" --timeout 500 health >/dev/null 2>&1 && break
    kill -0 "$(cat "$TIER_RUN_DIR/tierd.pid")" 2>/dev/null || die "tierd exited: see $TIER_RUN_DIR/tierd.log"
    sleep 0.1
done
"$BUILD/bin/tierctl" health || die "tierd is not healthy: see $TIER_RUN_DIR/tierd.log"

for i in $(seq 1 "$WORKERS"); do
    start_bg "$TIER_RUN_DIR/worker-$i.pid" "$TIER_RUN_DIR/worker-$i.log" \
        env -u TIER_TOKEN -u TIER_TOKEN_FILE "$BUILD/bin/tier-worker" --tierd "$TIER_LISTEN" \
        --pull "$TIER_PUSH" --id "worker-$i" --token-file "$TIER_RUN_DIR/access/worker.token" \
        --http "http://127.0.0.1:$((HTTP_PORT + i))"
done

# The seed's sample contents a.mp4 ... g.mp4 (cids 1..7), new on the default
# level (bronze).  Registered once; `tierctl add` refuses a taken cid.
BRONZE="$TIER_STORAGE_ROOT/bronze"
mkdir -p "$BRONZE"
cid=1
for f in a b c d e f g; do
    name="$f.mp4"
    if ! "$BUILD/bin/tierctl" content "$cid" >/dev/null 2>&1; then
        [ -e "$BRONZE/$name" ] || head -c 4096 /dev/urandom >"$BRONZE/$name"
        "$BUILD/bin/tierctl" add "$name" --cid "$cid" >/dev/null
    fi
    cid=$((cid + 1))
done

cat <<EOM

tier is running:
  tierd        $TIER_LISTEN  (log $TIER_RUN_DIR/tierd.log)
  http         $TIER_HTTP_LISTEN  (/v1/<Method> JSON, /metrics, the dashboard at /)
  tier-worker  x$WORKERS        (logs $TIER_RUN_DIR/worker-*.log)
  storage      $TIER_STORAGE_ROOT/{bronze,silver,gold}
  contents     cids 1..7 = a.mp4 .. g.mp4 on bronze

try (this shell's tierctl is admin: .run/env points it at the admin token):
  . $TIER_RUN_DIR/env
  export TIER_URL=$TIER_LISTEN PATH=$BUILD/bin:\$PATH
  tierctl levels
  tierctl views 7 1964        # the seed's example: g.mp4 moves bronze -> silver
  tierctl content 7
  tierctl history 7
  tierctl comment post news 7 alice "first!"
  tierctl top --from -60m --to now

stop everything:  bash scripts/run.sh stop
EOM
