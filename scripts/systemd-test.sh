#!/usr/bin/env bash
# systemd-test.sh -- tier under a real systemd: the installed units, booted.
#
#   bash scripts/systemd-test.sh [BUILD_DIR]      (as root; ctest runs it)
#
# test_install checks the units on paper (systemd-analyze verify) and the
# notify protocol against a fake socket; this boots a real systemd in a
# container and runs the units as an operator would:
#
#   1. a minimal Debian 12 root (debootstrap, cached in $TIER_RUN_DIR/nspawn
#      so later runs take seconds) with tier's runtime libraries;
#   2. `cmake --install` of the build into it (DESTDIR), the tier user from
#      the installed sysusers file, /etc/tier/tierd.conf + tierd.env and a
#      worker.env for this checkout's private Redis and MariaDB (a database
#      of its own), tierd.service and tier-worker@w1.service enabled;
#   3. systemd-nspawn -b boots it (host network, so the host reaches tierd
#      on loopback);
#   4. checks, from the host and inside the container: tierd.service is
#      active with its sd_notify status, tierctl health answers, the worker
#      unit is active and heartbeats, a view report moves a file, /metrics
#      counts the move, `systemctl reload` (SIGHUP) keeps it running, and
#      `systemctl stop` stops it cleanly;
#   5. powers the container off and drops the database.
#
# Exit 0 when all holds, 1 when something does not.  Exit 77 (skipped, said
# loudly) only when this machine cannot boot a container at all (no
# systemd-nspawn namespaces, or no Debian mirror for debootstrap): that is
# the environment, not tier.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
BUILD=$(cd "$BUILD" && pwd)
RUN=${TIER_RUN_DIR:-$ROOT/.run}
CACHE=$RUN/nspawn/root-cache
NSROOT=$RUN/nspawn/root
MACHINE=tier-systemd-test-$$
DB=tier_t_systemd_$$
LOG=$RUN/nspawn/boot-$$.log
MIRROR=${TIER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RPC_PORT=${TIER_SYSTEMD_TEST_PORT:-$((20000 + $$ % 20000))}
CTL=$BUILD/bin/tierctl

say() { echo "systemd-test: $*" >&2; }
fail() {
    say "FAIL: $*"
    [ -f "$LOG" ] && tail -n 40 "$LOG" >&2 || true
    in_ct journalctl --no-pager -n 60 2>/dev/null >&2 || true
    exit 1
}
skip() {
    say "SKIPPED: $* (this machine cannot boot a container; nothing about tier was tested)"
    exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root"
command -v systemd-nspawn >/dev/null || skip "no systemd-nspawn (package systemd-container)"
command -v debootstrap >/dev/null || skip "no debootstrap"
[ -f "$RUN/env" ] || fail "no $RUN/env: run scripts/services.sh start first"
# shellcheck disable=SC1091
. "$RUN/env"
mkdir -p "$RUN/nspawn"

# ---------------------------------------------------------------- the root

LIBS=systemd,systemd-sysv,dbus,procps,libnng1,libprotobuf-c1,libhiredis0.14,libmariadb3,libsodium23,libinih1,libjansson4,libsystemd0
# procps: the units' ExecReload runs kill (present on any standard Debian).
if [ ! -x "$CACHE/usr/lib/systemd/systemd" ] || [ ! -x "$CACHE/usr/bin/kill" ]; then
    say "debootstrap bookworm (once; cached in $CACHE)"
    rm -rf "$CACHE.tmp"
    debootstrap --variant=minbase --include="$LIBS" bookworm "$CACHE.tmp" "$MIRROR" \
        >"$RUN/nspawn/debootstrap.log" 2>&1 ||
        skip "debootstrap failed (see $RUN/nspawn/debootstrap.log)"
    rm -rf "$CACHE"
    mv "$CACHE.tmp" "$CACHE"
fi
rm -rf "$NSROOT"
cp -a "$CACHE" "$NSROOT"

DESTDIR=$NSROOT cmake --install "$BUILD" --prefix /usr >"$RUN/nspawn/install.log" 2>&1 ||
    fail "cmake --install (see $RUN/nspawn/install.log)"
chroot "$NSROOT" systemd-sysusers >/dev/null
chroot "$NSROOT" id tier >/dev/null || fail "the sysusers file did not create user tier"

# -------------------------------------------------------------- configuration

TIER_MYSQL_DB=$DB TIER_STORAGE_ROOT=/srv/tier bash "$ROOT/scripts/migrate.sh" --db "$DB" \
    >/dev/null 2>&1 || fail "migrations of $DB"
cleanup() {
    pid=$(pgrep -f "systemd-nspawn.*$MACHINE" || true)
    if [ -n "$pid" ]; then
        in_ct systemctl poweroff >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    mariadb --defaults-file="$RUN/my.cnf" -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true
    rm -rf "$NSROOT"
}
trap cleanup EXIT

mkdir -p "$NSROOT"/srv/tier/{bronze,silver,gold} "$NSROOT/etc/tier"
chroot "$NSROOT" chown -R tier:tier /srv/tier
cat >"$NSROOT/etc/tier/tierd.conf" <<EOF
listen = tcp://127.0.0.1:$RPC_PORT
push = tcp://127.0.0.1:$((RPC_PORT + 1))
http_listen = http://127.0.0.1:$((RPC_PORT + 2))
no_auth = 1
mysql_host = 127.0.0.1
mysql_port = $TIER_MYSQL_PORT
mysql_user = tier
mysql_db = $DB
redis_host = 127.0.0.1
redis_port = $TIER_REDIS_PORT
redis_prefix = systemd$$:
storage_root = /srv/tier
EOF
printf 'TIER_MYSQL_PASSWORD=%s\n' "$TIER_MYSQL_PASSWORD" >"$NSROOT/etc/tier/tierd.env"
printf 'TIER_URL=tcp://127.0.0.1:%s\nTIER_PULL=tcp://127.0.0.1:%s\n' "$RPC_PORT" \
    "$((RPC_PORT + 1))" >"$NSROOT/etc/tier/worker.env"
chroot "$NSROOT" chown root:tier /etc/tier/tierd.env
chmod 640 "$NSROOT/etc/tier/tierd.env"
WANTS=$NSROOT/etc/systemd/system/multi-user.target.wants
mkdir -p "$WANTS"
ln -sf /usr/lib/systemd/system/tierd.service "$WANTS/tierd.service"
ln -sf /usr/lib/systemd/system/tier-worker@.service "$WANTS/tier-worker@w1.service"
echo "$MACHINE" >"$NSROOT/etc/hostname"

# ---------------------------------------------------------------- boot

# --register=no --keep-unit: no machined or host bus needed (the host need
# not run systemd itself).
systemd-nspawn -D "$NSROOT" -M "$MACHINE" -b --console=pipe --register=no --keep-unit \
    >"$LOG" 2>&1 </dev/null &
NSPAWN=$!

# The container's init, to run commands inside with nsenter.
INIT=
for _ in $(seq 1 100); do
    kill -0 "$NSPAWN" 2>/dev/null || skip "systemd-nspawn exited at once: $(tail -n 3 "$LOG" | tr '\n' ' ')"
    # Its systemd: comm "systemd" (not "systemd-nspawn") in another pid
    # namespace than ours.
    for p in $(pgrep -x systemd || true); do
        if [ "$(readlink "/proc/$p/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]; then
            INIT=$p
            break
        fi
    done
    [ -n "$INIT" ] && break
    sleep 0.2
done
[ -n "$INIT" ] || skip "no init in the container"
in_ct() { nsenter -t "$INIT" -a "$@"; }

state() { in_ct systemctl show "$1" -p ActiveState --value 2>/dev/null || true; }
wait_active() {
    for _ in $(seq 1 150); do
        [ "$(state "$1")" = active ] && return 0
        sleep 0.2
    done
    fail "$1 is $(state "$1"), not active: $(in_ct systemctl status "$1" --no-pager 2>&1 | tail -n 15)"
}

# ---------------------------------------------------------------- checks

wait_active tierd.service
status=$(in_ct systemctl show tierd.service -p StatusText --value)
[[ "$status" == *"serving on tcp://127.0.0.1:$RPC_PORT"* ]] ||
    fail "tierd's sd_notify status is \"$status\""
say "tierd.service active (Type=notify): $status"
[ "$(in_ct systemctl show tierd.service -p WatchdogUSec --value)" = 30s ] ||
    fail "no watchdog on tierd.service"
"$CTL" --url "tcp://127.0.0.1:$RPC_PORT" --timeout 3000 health >/dev/null ||
    fail "tierctl health from the host"

wait_active tier-worker@w1.service
for _ in $(seq 1 100); do
    "$CTL" --url "tcp://127.0.0.1:$RPC_PORT" --json workers 2>/dev/null | grep -q '"w1"' && break
    sleep 0.2
done
"$CTL" --url "tcp://127.0.0.1:$RPC_PORT" workers | grep -q '^w1 ' || fail "worker w1 never heartbeat"
say "tier-worker@w1.service active, heartbeating"

# A move, done by the worker unit.
head -c 4096 /dev/urandom >"$NSROOT/srv/tier/bronze/s.mp4"
chroot "$NSROOT" chown tier:tier /srv/tier/bronze/s.mp4
"$CTL" --url "tcp://127.0.0.1:$RPC_PORT" add s.mp4 --cid 1 >/dev/null || fail "tierctl add"
"$CTL" --url "tcp://127.0.0.1:$RPC_PORT" views 1 1500 >/dev/null || fail "tierctl views"
"$CTL" --url "tcp://127.0.0.1:$RPC_PORT" wait 1 --max-wait 30 >/dev/null || fail "the move did not settle"
[ -f "$NSROOT/srv/tier/silver/s.mp4" ] || fail "s.mp4 is not on silver"
curl -s "http://127.0.0.1:$((RPC_PORT + 2))/metrics" |
    grep -q 'tier_moves_total{from="bronze",to="silver"} 1' || fail "/metrics does not count the move"
say "a report moved s.mp4 bronze -> silver through the units; /metrics counts it"

# Reload (SIGHUP) keeps it up; stop is clean.
in_ct systemctl reload tierd.service || fail "systemctl reload tierd"
sleep 0.5
[ "$(state tierd.service)" = active ] || fail "tierd not active after reload"
in_ct systemctl stop tier-worker@w1.service tierd.service || fail "systemctl stop"
result=$(in_ct systemctl show tierd.service -p Result --value)
[ "$result" = success ] || fail "tierd stopped with result $result"
say "reload kept it active; stop was clean (Result=success)"
say "PASS"
