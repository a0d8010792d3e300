#!/usr/bin/env bash
# netns.sh -- hosts made of Linux network namespaces, for the multi-host test
# (docs/CLUSTER.md, "Multi-host test").
#
#   netns.sh check               exit 0 if this machine can run it (root,
#                                `ip netns` works); else say why, exit 77
#   netns.sh run [--] CMD ...    set up (below), run CMD with NETNS_* in its
#                                environment, always tear down; exit with
#                                CMD's status (77 when the machine cannot)
#   netns.sh up                  set up and leave it running; prints the
#                                state file to export as NETNS_STATE
#   netns.sh down [STATE]        tear down (processes, namespaces, bridge)
#   netns.sh exec HOST CMD ...   run CMD inside HOST (db, h1, h2, h3)
#   netns.sh kill [--power] HOST SIGKILL every process in HOST, then its
#                                links down (--power: links first)
#   netns.sh restart HOST        links up again (the caller starts the
#                                processes again)
#   netns.sh ip HOST             print HOST's address
#
# exec/kill/restart/ip find the set-up through NETNS_STATE (a file of
# NETNS_* shell assignments), which `run` exports to CMD.
#
# What `up` makes, named <tag>-... with a tag of 4 random hex digits checked
# free (two runs never collide):
#   - a bridge <tag>-br in the root namespace, address 10.A.B.1/24 (A.B
#     random, the /24 checked unused by any route or address), so the test
#     process itself reaches every host;
#   - namespaces <tag>-db, <tag>-h1..h3, each with lo and eth0 (a veth whose
#     peer <tag>-<host> is on the bridge): db = .2, h1..h3 = .11 .. .13;
#   - in db: a private redis-server and mariadbd, started by
#     scripts/services.sh (run dir $NETNS_RUN/db, listening on db's address;
#     the tier user may connect from the /24), its tokens and certificates
#     in $NETNS_RUN/db/access;
#   - the shared storage: $NETNS_RUN/storage (the level directories).  The
#     hosts share the filesystem, which stands in for shared mounts.
# Everything lives in NETNS_RUN (mktemp -d under $TMPDIR or /tmp).  Tear
# down kills every process of every namespace (SIGKILL), deletes the
# namespaces and the bridge, and removes the run dir (its logs are kept in
# $NETNS_RUN/logs only when NETNS_KEEP=1 or CMD failed; say where).  A
# watchdog process tears down too when `run` itself is killed (ctest's
# timeout sends SIGKILL).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOSTS=(db h1 h2 h3)
SELF=$ROOT/scripts/netns.sh

say() { echo "netns.sh: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# ------------------------------------------------------------------ check

# can_run: why not, on stdout; exit 0 when it can.
can_run() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "not root (uid $(id -u)): network namespaces need root"
        return 1
    fi
    if ! command -v ip >/dev/null 2>&1; then
        echo "no 'ip' command (iproute2)"
        return 1
    fi
    local probe=tiernsprobe$$
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "'ip netns add' fails here (no CAP_SYS_ADMIN, or no netns support)"
        return 1
    fi
    if ! ip netns exec "$probe" ip link set lo up 2>/dev/null; then
        ip netns del "$probe" 2>/dev/null || true
        echo "'ip netns exec' fails here"
        return 1
    fi
    ip netns del "$probe"
    local tool
    for tool in redis-server mariadbd mariadb b2sum openssl; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "$tool not installed (scripts/deps.sh)"
            return 1
        }
    done
    return 0
}

# ------------------------------------------------------------------ state

load_state() {
    local f=${1:-${NETNS_STATE:-}}
    [[ -n "$f" && -r "$f" ]] || die "no state: set NETNS_STATE (netns.sh run/up writes it)"
    # shellcheck disable=SC1090
    . "$f"
}

ns_of() {
    case "$1" in
    db | h1 | h2 | h3) echo "$NETNS_TAG-$1" ;;
    *) die "unknown host '$1' (db, h1, h2, h3)" ;;
    esac
}

ip_of() {
    case "$1" in
    db) echo "$NETNS_NET.2" ;;
    h1) echo "$NETNS_NET.11" ;;
    h2) echo "$NETNS_NET.12" ;;
    h3) echo "$NETNS_NET.13" ;;
    *) die "unknown host '$1'" ;;
    esac
}

# ------------------------------------------------------------------ names

tag_free() {
    local t=$1
    ip netns list 2>/dev/null | awk '{print $1}' | grep "^$t-" >/dev/null && return 1
    ip -o link show 2>/dev/null | grep ": $t-" >/dev/null && return 1
    return 0
}

net_free() {
    local net=$1 got gw
    # Taken: an address in 10.A.B.0/24, a route starting there, or any route
    # other than the default one that reaches it (10.0.0.0/8 on a real
    # network, say): the bridge's /24 would shadow real hosts.
    ip -4 -o addr show 2>/dev/null | grep " $net\." >/dev/null && return 1
    ip -4 route show 2>/dev/null | awk '{print $1}' | grep "^$net\." >/dev/null && return 1
    got=$(ip -4 route get "$net.1" 2>/dev/null | head -n1) || return 0
    [[ -n "$got" ]] || return 0
    gw=$(ip -4 route show default 2>/dev/null | awk 'NR == 1 {print $3}')
    [[ -n "$gw" && "$got" == *" via $gw "* ]] && return 0
    return 1
}

pick_names() {
    local i t a b
    for ((i = 0; i < 100; i++)); do
        t=$(printf 'tmh%04x' $(((RANDOM * 32768 + RANDOM + $$) % 65536)))
        tag_free "$t" && break
        t=""
    done
    [[ -n "$t" ]] || die "no free namespace tag found"
    for ((i = 0; i < 100; i++)); do
        a=$((100 + RANDOM % 150))
        b=$((RANDOM % 256))
        net_free "10.$a.$b" && break
        a=""
    done
    [[ -n "$a" ]] || die "no free 10.x.y.0/24 found"
    NETNS_TAG=$t
    NETNS_NET=10.$a.$b
}

# -------------------------------------------------------------------- up

kill_ns_procs() {
    local ns=$1 pids i
    for ((i = 0; i < 50; i++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -n "$pids" ]] || return 0
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.1
    done
    say "processes left in $ns: $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
}

do_down() {
    local h ns
    for h in "${HOSTS[@]}"; do
        [[ -n "${NETNS_TAG:-}" ]] || break
        ns=$NETNS_TAG-$h
        if ip netns list 2>/dev/null | awk '{print $1}' | grep -x "$ns" >/dev/null; then
            kill_ns_procs "$ns"
            ip netns del "$ns" 2>/dev/null || say "could not delete namespace $ns"
        fi
        ip link del "$NETNS_TAG-$h" 2>/dev/null || true
    done
    [[ -z "${NETNS_TAG:-}" ]] || ip link del "$NETNS_TAG-br" 2>/dev/null || true
    if [[ -n "${NETNS_RUN:-}" && -d "$NETNS_RUN" ]]; then
        if [[ "${NETNS_KEEP:-0}" == 1 ]]; then
            # Logs only: the MySQL data dir is big and useless afterwards.
            rm -rf "$NETNS_RUN/db/mysql" "$NETNS_RUN/db/redis" "$NETNS_RUN/storage"
            say "kept the logs in $NETNS_RUN"
        else
            rm -rf "$NETNS_RUN"
        fi
    fi
}

do_up() {
    local h ns addr
    [[ -n "${NETNS_RUN:-}" ]] || NETNS_RUN=$(mktemp -d "${TMPDIR:-/tmp}/tier-netns.XXXXXX")
    chmod 755 "$NETNS_RUN"
    NETNS_STATE=$NETNS_RUN/state
    mkdir -p "$NETNS_RUN/storage" "$NETNS_RUN/logs"
    # Names are picked and claimed (the bridge and its /24) under a lock, so
    # two runs starting together cannot pick the same.  fd 8 is closed
    # before anything is started: no server may hold the lock.
    exec 8>/tmp/tier-netns.lock
    flock -w 60 8 || die "another netns.sh holds /tmp/tier-netns.lock"
    pick_names
    write_state
    ip link add "$NETNS_TAG-br" type bridge
    ip addr add "$NETNS_NET.1/24" dev "$NETNS_TAG-br"
    exec 8>&-
    ip link set "$NETNS_TAG-br" up
    for h in "${HOSTS[@]}"; do
        ns=$NETNS_TAG-$h
        addr=$(ip_of "$h")
        ip netns add "$ns"
        ip link add "$NETNS_TAG-$h" type veth peer name eth0 netns "$ns"
        ip link set "$NETNS_TAG-$h" master "$NETNS_TAG-br" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$addr/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$NETNS_NET.1"
    done
    say "bridge $NETNS_TAG-br $NETNS_NET.0/24; hosts: db=$NETNS_NET.2 h1..h3=$NETNS_NET.11-13"
    # The database host: services.sh inside it, on its own address.
    ip netns exec "$NETNS_TAG-db" env -u TIER_REDIS_PORT -u TIER_MYSQL_PORT \
        -u TIER_REDIS_PASSWORD TIER_RUN_DIR="$NETNS_RUN/db" \
        TIER_SERVICES_HOST="$NETNS_NET.2" TIER_SERVICES_CLIENTS="$NETNS_NET.%" \
        TIER_MYSQL_DB=tier_mh TIER_STORAGE_ROOT="$NETNS_RUN/storage" \
        TIER_MYSQL_BUFFER_POOL=256M TIER_MYSQL_LOG_SIZE=96M \
        bash "$ROOT/scripts/services.sh" start >"$NETNS_RUN/logs/services.log" 2>&1 || {
        tail -n 30 "$NETNS_RUN/logs/services.log" >&2
        die "services.sh start in $NETNS_TAG-db failed"
    }
    # Across the bridge, from the root namespace: the path every host takes.
    local i
    for ((i = 0; i < 50; i++)); do
        (exec 3<>"/dev/tcp/$NETNS_NET.2/$(cat "$NETNS_RUN/db/redis.port")") 2>/dev/null && break
        sleep 0.2
    done
    ((i < 50)) || die "redis in $NETNS_TAG-db does not answer across the bridge"
    write_state
}

write_state() {
    {
        echo "NETNS_TAG=$NETNS_TAG"
        echo "NETNS_NET=$NETNS_NET"
        echo "NETNS_RUN=$NETNS_RUN"
        echo "NETNS_STATE=$NETNS_STATE"
        echo "NETNS_DB_ENV=$NETNS_RUN/db/env"
        echo "NETNS_STORAGE=$NETNS_RUN/storage"
        echo "NETNS_ACCESS=$NETNS_RUN/db/access"
    } >"$NETNS_STATE.tmp"
    mv -f "$NETNS_STATE.tmp" "$NETNS_STATE"
}

# run's EXIT trap: stop the watchdog, tear down (keeping the logs when CMD
# failed), exit with CMD's status.
# shellcheck disable=SC2317  # called by the trap
run_finish() {
    trap - EXIT INT TERM
    if [[ -n "${cmd_pid:-}" ]]; then
        # Interrupted: CMD and what it started go first.
        kill -KILL -- "-$cmd_pid" 2>/dev/null || true
    fi
    if [[ -n "$watchdog" ]]; then
        kill "$watchdog" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && $rc -ne 77 ]]; then
        NETNS_KEEP=1
        # CI keeps only the output: the end of every host's logs.
        local f
        for f in "$NETNS_RUN"/logs/*.log; do
            [[ -s "$f" ]] || continue
            echo "---- ${f#"$NETNS_RUN"/} (last 15 lines)" >&2
            tail -n 15 "$f" >&2
        done
    fi
    do_down
    exit "$rc"
}

# --------------------------------------------------------------- verbs

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
check)
    if why=$(can_run); then
        echo "netns.sh: this machine can run the multi-host test"
        exit 0
    fi
    echo "SKIP: multi-host test: $why"
    exit 77
    ;;
run)
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || die "usage: netns.sh run [--] CMD ..."
    if ! why=$(can_run); then
        echo "SKIP: multi-host test: $why"
        exit 77
    fi
    NETNS_TAG="" NETNS_RUN=""
    rc=1
    watchdog="" cmd_pid=""
    trap run_finish EXIT
    trap 'rc=130; exit 130' INT
    trap 'rc=143; exit 143' TERM
    NETNS_RUN=$(mktemp -d "${TMPDIR:-/tmp}/tier-netns.XXXXXX")
    # The watchdog: tears the same names down if this script dies without
    # running its trap (SIGKILL from a ctest timeout).  It learns the names
    # from the state file, which do_up writes before it creates anything.
    setsid bash "$SELF" _watch $$ "$NETNS_RUN/state" </dev/null >/dev/null 2>&1 &
    watchdog=$!
    do_up
    export NETNS_TAG NETNS_NET NETNS_RUN NETNS_STATE
    export NETNS_DB_ENV=$NETNS_RUN/db/env NETNS_STORAGE=$NETNS_RUN/storage
    export NETNS_ACCESS=$NETNS_RUN/db/access NETNS_SCRIPT=$SELF
    # The db host's services are CMD's: TIER_MYSQL_*, TIER_REDIS_* (with
    # its password), the tokens.  They replace any of the caller's.
    set -a
    # shellcheck disable=SC1091
    . "$NETNS_RUN/db/env"
    set +a
    # CMD in a session of its own, so the trap and the watchdog can kill
    # it with everything it started (kill -- -PGID).
    set +e
    setsid "$@" &
    cmd_pid=$!
    echo "NETNS_CMD_PID=$cmd_pid" >>"$NETNS_STATE"
    wait "$cmd_pid"
    rc=$?
    cmd_pid=""
    set -e
    exit "$rc"
    ;;
_watch)
    parent=$1 state=$2
    while kill -0 "$parent" 2>/dev/null; do sleep 1; done
    sleep 1
    if [[ -r "$state" ]]; then
        load_state "$state"
        if [[ -n "${NETNS_CMD_PID:-}" ]]; then
            kill -KILL -- "-$NETNS_CMD_PID" 2>/dev/null || true
        fi
        NETNS_KEEP=1 do_down
    fi
    ;;
up)
    can_run >/dev/null || die "$(can_run || true)"
    do_up
    echo "$NETNS_STATE"
    ;;
down)
    load_state "${1:-}"
    do_down
    ;;
exec)
    load_state
    h=${1:?host}
    shift
    exec ip netns exec "$(ns_of "$h")" "$@"
    ;;
kill)
    load_state
    power=0
    if [[ "${1:-}" == --power ]]; then
        power=1
        shift
    fi
    h=${1:?host}
    ns=$(ns_of "$h")
    if ((power)); then
        # Links first, as when a machine loses power: its peers hear
        # nothing (no FIN, no RST) and keep half-open connections.
        ip -n "$ns" link set eth0 down
        ip link set "$NETNS_TAG-$h" down
        kill_ns_procs "$ns"
    else
        # Every process dies (its kernel closes its sockets, as on a crash
        # of the processes), then the host drops off the network: new
        # connections to it go unanswered.
        kill_ns_procs "$ns"
        ip -n "$ns" link set eth0 down
        ip link set "$NETNS_TAG-$h" down
    fi
    ;;
restart)
    load_state
    h=${1:?host}
    ns=$(ns_of "$h")
    kill_ns_procs "$ns"
    ip link set "$NETNS_TAG-$h" up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route replace default via "$NETNS_NET.1"
    ;;
ip)
    load_state
    ip_of "${1:?host}"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
