#!/usr/bin/env bash
# services.sh -- a private redis-server and mariadbd for this checkout.
#
#   services.sh start    start both (idempotent), create the tier database
#                        and user, apply sql/ migrations, write .run/env
#   services.sh stop     stop both (by pid; stale pid files are fine)
#   services.sh status   say what runs; exit 0 only if both run
#   services.sh env      print the `export` lines for the running services
#
# Everything lives in $TIER_RUN_DIR (default <checkout>/.run): data, logs,
# pid files, unix sockets, the generated password, the chosen ports.  So two
# checkouts (two run dirs) never share a socket or a pid file, and both
# servers listen on 127.0.0.1 only.  Ports come from TIER_REDIS_PORT /
# TIER_MYSQL_PORT, else from the last start, else a free one is picked.
#
# For the multi-host test (scripts/netns.sh), which runs this inside a
# network namespace: TIER_SERVICES_HOST (default 127.0.0.1) is the address
# both servers listen on, TIER_SERVICES_CLIENTS (default none) a MySQL host
# pattern ('10.1.2.%') the tier user may also connect from, and
# TIER_MYSQL_BUFFER_POOL / TIER_MYSQL_LOG_SIZE (default 1G / 512M) size
# InnoDB.  Off loopback, Redis gets a generated password (redis.password,
# TIER_REDIS_PASSWORD in env): it refuses other hosts without one.
#
# Files written to the run dir:
#   env          `export TIER_...=` lines (mode 600); `. .run/env`
#   my.cnf       client defaults for the tier user (mode 600):
#                `mariadb --defaults-file=.run/my.cnf`
#   mysql.password, redis.port, mysql.port   remembered between starts
#   access/      what tierd needs to let only the right callers in
#                (docs/SECURITY.md), generated once like the password:
#                admin.token worker.token client.token  one bearer token
#                             each (mode 600); the env file points tierctl
#                             at admin.token, run.sh gives workers only
#                             worker.token
#                tokens       their BLAKE2b-256 hashes, tierd's --auth-tokens
#                ca.pem ca.key server.pem server.key  a private CA and a
#                             certificate for localhost / 127.0.0.1, for
#                             tls+tcp:// (tierd's --tls-cert/--tls-key,
#                             clients' --tls-ca)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${TIER_RUN_DIR:-$ROOT/.run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)

REDIS_DIR=$RUN/redis
REDIS_PID=$RUN/redis.pid
REDIS_LOG=$RUN/redis.log
REDIS_SOCK=$RUN/redis.sock
REDIS_PORT_FILE=$RUN/redis.port

MY_DATA=$RUN/mysql
MY_PID=$RUN/mysql.pid
MY_LOG=$RUN/mysql.log
MY_SOCK=$RUN/mysql.sock
MY_PORT_FILE=$RUN/mysql.port
MY_PW_FILE=$RUN/mysql.password

ENV_FILE=$RUN/env
CNF_FILE=$RUN/my.cnf
HOST=${TIER_SERVICES_HOST:-127.0.0.1}
CLIENTS=${TIER_SERVICES_CLIENTS:-}
DB=${TIER_MYSQL_DB:-tier}
STORAGE_ROOT=${TIER_STORAGE_ROOT:-$RUN/storage}

REDIS_TIMEOUT=${TIER_REDIS_START_TIMEOUT:-30}
# The first start resizes the redo log to 512M, which takes a while on slow
# disks; later starts take about a second.
MYSQL_TIMEOUT=${TIER_MYSQL_START_TIMEOUT:-180}

die() {
    echo "services.sh: $*" >&2
    exit 1
}
say() {
    echo "services.sh: $*" >&2
}

# --------------------------------------------------------------- processes

# is_ours PID PROGRAM DIR: PID is alive, is PROGRAM (by its command line) and
# works in DIR (both servers chdir to their data dir).  A pid file can be
# stale after a crash or reboot, and its pid can since belong to anything.
is_ours() {
    local pid=$1 prog=$2 dir=$3 cmd cwd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmd" == *"$prog"* ]] || return 1
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
    [[ "$cwd" == "$dir" ]]
}

# running_pid PIDFILE PROGRAM DIR: print the server's pid if it runs.  Falls
# back to scanning /proc when the pid file is missing or stale, so a server
# whose pid file was removed is still found (and not started twice on the
# same data dir).
running_pid() {
    local pidfile=$1 prog=$2 dir=$3 pid p
    if [[ -s "$pidfile" ]]; then
        pid=$(head -n1 "$pidfile" | tr -dc '0-9')
        if is_ours "$pid" "$prog" "$dir"; then
            echo "$pid"
            return 0
        fi
    fi
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        if is_ours "$pid" "$prog" "$dir"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# stop_pid NAME PID: TERM (both servers shut down cleanly on it: redis
# fsyncs its AOF, InnoDB flushes), then KILL after 60 s.
stop_pid() {
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 600; i++)); do
        [[ -d /proc/$pid ]] || return 0
        # A zombie child of ours counts as gone.
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
        sleep 0.1
    done
    say "$name (pid $pid) ignored TERM for 60 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------------- ports

port_busy() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        # Only listeners count: both servers set SO_REUSEADDR, so the
        # TIME_WAIT sockets a stopped server leaves behind do not stop a
        # restart on its remembered port.
        [[ -n $(ss -Hltn "( sport = :$p )" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

# pick_port AVOID: a port that is free now, below the ephemeral range
# (32768+) so outgoing connections do not take it later.
pick_port() {
    local avoid=${1:-0} p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [[ $p -eq $avoid ]] && continue
        port_busy "$p" || {
            echo "$p"
            return 0
        }
    done
    die "no free TCP port found in 20000-31999"
}

check_port() {
    [[ "$1" =~ ^[0-9]+$ ]] && (($1 > 0 && $1 < 65536)) || die "bad port '$1' ($2)"
}

# choose_port ENVVAL PORTFILE AVOID: the env var wins, then the remembered
# port if it is free, else a new one.  Prints the port and remembers it.
choose_port() {
    local envval=$1 file=$2 avoid=$3 p=""
    if [[ -n "$envval" ]]; then
        p=$envval
    elif [[ -s "$file" ]]; then
        p=$(tr -dc '0-9' <"$file")
        if [[ -z "$p" ]] || port_busy "$p"; then
            say "remembered port ${p:-?} in $file is taken; picking another" >&2
            p=""
        fi
    fi
    [[ -n "$p" ]] || p=$(pick_port "$avoid")
    echo "$p" >"$file"
    echo "$p"
}

check_sock_path() {
    # sun_path holds 108 bytes including the NUL.
    ((${#1} <= 107)) || die "socket path too long (${#1} > 107): $1; set TIER_RUN_DIR to a shorter path"
}

# ------------------------------------------------------------------- redis

# Off loopback only: Redis's protected mode refuses other hosts unless the
# default user has a password.
REDIS_PW_FILE=$RUN/redis.password
redis_password() {
    [[ "$HOST" == 127.* ]] && return 0
    if [[ ! -s "$REDIS_PW_FILE" ]]; then
        (
            umask 077
            head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | cut -c1-32 >"$REDIS_PW_FILE"
        )
    fi
    head -n1 "$REDIS_PW_FILE"
}

redis_ping() {
    local pw
    pw=$(redis_password)
    if [[ -n "$pw" ]]; then
        [[ $(REDISCLI_AUTH=$pw redis-cli -h "$HOST" -p "$1" ping 2>/dev/null) == PONG ]]
    else
        [[ $(redis-cli -h "$HOST" -p "$1" ping 2>/dev/null) == PONG ]]
    fi
}

start_redis() {
    local pid port i
    if pid=$(running_pid "$REDIS_PID" redis-server "$REDIS_DIR"); then
        port=$(tr -dc '0-9' <"$REDIS_PORT_FILE" 2>/dev/null || true)
        if [[ -n "${TIER_REDIS_PORT:-}" && "${TIER_REDIS_PORT}" != "$port" ]]; then
            die "redis already runs on port $port (pid $pid), not TIER_REDIS_PORT=$TIER_REDIS_PORT; stop first"
        fi
        redis_ping "$port" || die "redis (pid $pid) runs but does not answer on $HOST:$port; see $REDIS_LOG"
        say "redis already running (pid $pid, port $port)"
        echo "$port" >"$REDIS_PORT_FILE"
        return 0
    fi
    rm -f "$REDIS_PID" "$REDIS_SOCK"
    mkdir -p "$REDIS_DIR"
    check_sock_path "$REDIS_SOCK"
    port=$(choose_port "${TIER_REDIS_PORT:-}" "$REDIS_PORT_FILE" "${TIER_MYSQL_PORT:-0}")
    check_port "$port" TIER_REDIS_PORT
    port_busy "$port" && die "redis port $port is already in use"
    local auth=()
    [[ "$HOST" == 127.* ]] || auth=(--requirepass "$(redis_password)")
    redis-server --bind "$HOST" --port "$port" --dir "$REDIS_DIR" "${auth[@]}" \
        --appendonly yes --appendfsync everysec --save "" \
        --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
        --unixsocket "$REDIS_SOCK" --unixsocketperm 700 9>&- ||
        die "redis-server failed to start; see $REDIS_LOG"
    for ((i = 0; i < REDIS_TIMEOUT * 10; i++)); do
        if redis_ping "$port"; then
            say "redis up on $HOST:$port (pid $(cat "$REDIS_PID" 2>/dev/null || echo ?))"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$REDIS_LOG" >&2 || true
    die "redis did not answer PING on $HOST:$port within ${REDIS_TIMEOUT}s; see $REDIS_LOG"
}

# ----------------------------------------------------------------- mariadb

root_sql() {
    mariadb --no-defaults --protocol=socket --socket="$MY_SOCK" -uroot --batch "$@"
}

mysql_ping() {
    mariadb-admin --no-defaults --protocol=socket --socket="$MY_SOCK" -uroot \
        --connect-timeout=2 ping >/dev/null 2>&1
}

init_mysql() {
    mkdir -p "$MY_DATA"
    if [[ -n $(ls -A "$MY_DATA") ]]; then
        [[ -d "$MY_DATA/mysql" ]] ||
            die "$MY_DATA is not empty but holds no system tables (an interrupted init?); remove it and retry"
        return 0
    fi
    say "initialising MariaDB data dir $MY_DATA"
    mariadb-install-db --no-defaults --datadir="$MY_DATA" --user="$(id -un)" \
        --auth-root-authentication-method=normal --skip-test-db \
        >"$RUN/mysql-install.log" 2>&1 || {
        tail -n 30 "$RUN/mysql-install.log" >&2 || true
        rm -rf "$MY_DATA"
        die "mariadb-install-db failed; see $RUN/mysql-install.log"
    }
}

start_mysql() {
    local pid port i mpid
    if pid=$(running_pid "$MY_PID" mariadbd "$MY_DATA"); then
        port=$(tr -dc '0-9' <"$MY_PORT_FILE" 2>/dev/null || true)
        if [[ -n "${TIER_MYSQL_PORT:-}" && "${TIER_MYSQL_PORT}" != "$port" ]]; then
            die "mariadbd already runs on port $port (pid $pid), not TIER_MYSQL_PORT=$TIER_MYSQL_PORT; stop first"
        fi
        mysql_ping || die "mariadbd (pid $pid) runs but does not answer on $MY_SOCK; see $MY_LOG"
        say "mariadbd already running (pid $pid, port $port)"
        echo "$port" >"$MY_PORT_FILE"
        return 0
    fi
    rm -f "$MY_PID" "$MY_SOCK"
    check_sock_path "$MY_SOCK"
    init_mysql
    port=$(choose_port "${TIER_MYSQL_PORT:-}" "$MY_PORT_FILE" "$(cat "$REDIS_PORT_FILE" 2>/dev/null || echo 0)")
    check_port "$port" TIER_MYSQL_PORT
    port_busy "$port" && die "mysql port $port is already in use"
    # --no-defaults: no /etc/mysql config leaks in; every setting is here.
    # setsid: a Ctrl-C aimed at the calling script must not kill the server.
    setsid mariadbd --no-defaults --user="$(id -un)" \
        --datadir="$MY_DATA" --bind-address="$HOST" --port="$port" \
        --socket="$MY_SOCK" --pid-file="$MY_PID" --log-error="$MY_LOG" \
        --skip-log-bin --skip-name-resolve \
        --innodb-buffer-pool-size="${TIER_MYSQL_BUFFER_POOL:-1G}" \
        --innodb-log-file-size="${TIER_MYSQL_LOG_SIZE:-512M}" \
        --innodb-flush-log-at-trx-commit=1 \
        --max-connections=500 --max-allowed-packet=64M \
        --character-set-server=utf8mb4 \
        </dev/null >>"$MY_LOG" 2>&1 9>&- &
    mpid=$!
    for ((i = 0; i < MYSQL_TIMEOUT * 10; i++)); do
        if mysql_ping; then
            say "mariadbd up on $HOST:$port (pid $(cat "$MY_PID" 2>/dev/null || echo "$mpid"))"
            return 0
        fi
        if ! kill -0 "$mpid" 2>/dev/null; then
            tail -n 30 "$MY_LOG" >&2 || true
            die "mariadbd exited during startup; see $MY_LOG"
        fi
        sleep 0.1
    done
    tail -n 30 "$MY_LOG" >&2 || true
    die "mariadbd did not answer ping on $MY_SOCK within ${MYSQL_TIMEOUT}s; see $MY_LOG"
}

# The tier user's password: generated once, kept in the run dir (mode 600),
# reused on every start.  Alphanumeric, so it needs no quoting anywhere.
tier_password() {
    local pw=""
    if [[ -s "$MY_PW_FILE" ]]; then
        pw=$(head -n1 "$MY_PW_FILE")
        [[ "$pw" =~ ^[A-Za-z0-9]{16,}$ ]] || die "$MY_PW_FILE holds no valid password; remove it to generate a new one"
    else
        pw=$(head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | cut -c1-32)
        ((${#pw} >= 16)) || die "could not generate a password"
        (
            umask 077
            echo "$pw" >"$MY_PW_FILE"
        )
    fi
    chmod 600 "$MY_PW_FILE"
    echo "$pw"
}

# ------------------------------------------------------------- access

ACCESS=$RUN/access

# new_token ROLE: a bearer token for ROLE in access/ROLE.token (32 random
# bytes, base64url, "tier_" in front so secret scanners know it) and its
# hash line in access/tokens, unless both exist already.
new_token() {
    local role=$1 tok
    if [[ -s "$ACCESS/$role.token" ]] && grep -q "^$role " "$ACCESS/tokens" 2>/dev/null; then
        return 0
    fi
    tok=tier_$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')
    ((${#tok} == 48)) || die "could not generate a token"
    (
        umask 077
        echo "$tok" >"$ACCESS/$role.token"
        sed -i "/^$role /d" "$ACCESS/tokens"
        echo "$role $role $(printf '%s' "$tok" | b2sum -l 256 | cut -d' ' -f1)" >>"$ACCESS/tokens"
    )
}

# A private CA and a server certificate signed by it, once.  EC P-256: what
# mbedTLS (nng's TLS) verifies fastest.  mbedTLS 2.28 matches a certificate
# by DNS name only, so clients dial 127.0.0.1 with the server name
# "localhost" (TIER_TLS_SERVER_NAME in the env file).
new_certs() {
    [[ -s "$ACCESS/server.pem" && -s "$ACCESS/server.key" && -s "$ACCESS/ca.pem" ]] && return 0
    command -v openssl >/dev/null || die "openssl not installed (run scripts/deps.sh)"
    (
        umask 077
        cd "$ACCESS"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -out ca.pem -days 3650 -subj "/CN=tier private CA" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
            -out server.csr -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
            "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 825 -extfile server.ext 2>/dev/null
        rm -f server.csr server.ext ca.srl
    ) || die "could not make the TLS certificates in $ACCESS"
}

setup_access() {
    mkdir -p "$ACCESS"
    chmod 700 "$ACCESS"
    touch "$ACCESS/tokens"
    chmod 600 "$ACCESS/tokens"
    local role
    for role in admin worker client; do
        new_token "$role"
    done
    new_certs
}

setup_mysql() {
    local pw=$1
    [[ "$DB" =~ ^[A-Za-z0-9_]{1,64}$ ]] || die "bad TIER_MYSQL_DB '$DB' (letters, digits, _ only)"
    # `tier%` is a LIKE pattern: it also covers the tests' own tier_t_...
    # databases.  ALTER USER keeps an existing user in step with the file.
    root_sql <<SQL || die "could not create database/user (root via $MY_SOCK)"
CREATE DATABASE IF NOT EXISTS \`$DB\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'tier'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'tier'@'localhost' IDENTIFIED BY '$pw';
ALTER USER 'tier'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'tier'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`tier%\`.* TO 'tier'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`tier%\`.* TO 'tier'@'localhost';
GRANT ALL PRIVILEGES ON \`$DB\`.* TO 'tier'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$DB\`.* TO 'tier'@'localhost';
SQL
    [[ -n "$CLIENTS" ]] || return 0
    [[ "$CLIENTS" =~ ^[0-9.%]{1,60}$ ]] || die "bad TIER_SERVICES_CLIENTS '$CLIENTS' (digits, dots, %)"
    root_sql <<SQL || die "could not create the tier user for $CLIENTS"
CREATE USER IF NOT EXISTS 'tier'@'$CLIENTS' IDENTIFIED BY '$pw';
ALTER USER 'tier'@'$CLIENTS' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`tier%\`.* TO 'tier'@'$CLIENTS';
GRANT ALL PRIVILEGES ON \`$DB\`.* TO 'tier'@'$CLIENTS';
SQL
}

# ------------------------------------------------------------- env files

shquote() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

write_env() {
    local rport=$1 mport=$2 pw=$3 tmp
    tmp=$(mktemp "$RUN/.env.XXXXXX")
    {
        echo "# written by scripts/services.sh start; source it: . $(shquote "$ENV_FILE")"
        echo "export TIER_RUN_DIR=$(shquote "$RUN")"
        echo "export TIER_REDIS_HOST=$HOST"
        echo "export TIER_REDIS_PORT=$rport"
        [[ "$HOST" == 127.* ]] || echo "export TIER_REDIS_PASSWORD=$(redis_password)"
        echo "export TIER_MYSQL_HOST=$HOST"
        echo "export TIER_MYSQL_PORT=$mport"
        echo "export TIER_MYSQL_USER=tier"
        echo "export TIER_MYSQL_PASSWORD=$pw"
        echo "export TIER_MYSQL_DB=$DB"
        echo "export TIER_STORAGE_ROOT=$(shquote "$STORAGE_ROOT")"
        # tierd's side of access, and this shell's: it is the operator's.
        echo "export TIER_AUTH_TOKENS=$(shquote "$ACCESS/tokens")"
        echo "export TIER_TLS_CERT=$(shquote "$ACCESS/server.pem")"
        echo "export TIER_TLS_KEY=$(shquote "$ACCESS/server.key")"
        echo "export TIER_TLS_CA=$(shquote "$ACCESS/ca.pem")"
        echo "export TIER_TLS_SERVER_NAME=localhost"
        echo "export TIER_TOKEN_FILE=$(shquote "$ACCESS/admin.token")"
    } >"$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$ENV_FILE"

    tmp=$(mktemp "$RUN/.cnf.XXXXXX")
    {
        echo "# tier user's client defaults: mariadb --defaults-file=$CNF_FILE"
        echo "[client]"
        echo "host=$HOST"
        echo "port=$mport"
        echo "user=tier"
        echo "password=$pw"
        # [client] is read by every tool (mariadb-dump too), which reject
        # unknown options; `database` is for the interactive client only.
        echo "[mariadb-client]"
        echo "database=$DB"
    } >"$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$CNF_FILE"
}

# ------------------------------------------------------------------ verbs

# One verb at a time per run dir: two `start`s racing would both init the
# data dir or both start a server on it.  The servers must not inherit fd 9
# (they would hold the lock for their whole life): see `9>&-` above.
exec 9>"$RUN/.lock"
flock -w 300 9 || die "another services.sh holds $RUN/.lock"

cmd=${1:-}
case "$cmd" in
start)
    command -v redis-server >/dev/null || die "redis-server not installed (run scripts/deps.sh)"
    command -v mariadbd >/dev/null || die "mariadbd not installed (run scripts/deps.sh)"
    start_redis
    start_mysql
    pw=$(tier_password)
    setup_access
    setup_mysql "$pw"
    rport=$(cat "$REDIS_PORT_FILE")
    mport=$(cat "$MY_PORT_FILE")
    write_env "$rport" "$mport" "$pw"
    mkdir -p "$STORAGE_ROOT"
    TIER_MYSQL_HOST=$HOST TIER_MYSQL_PORT=$mport TIER_MYSQL_USER=tier \
        TIER_MYSQL_PASSWORD=$pw TIER_MYSQL_DB=$DB TIER_STORAGE_ROOT=$STORAGE_ROOT \
        TIER_RUN_DIR=$RUN bash "$ROOT/scripts/migrate.sh" --db "$DB" ||
        die "migrations failed"
    say "ready; environment in $ENV_FILE, client defaults in $CNF_FILE"
    ;;
stop)
    if pid=$(running_pid "$REDIS_PID" redis-server "$REDIS_DIR"); then
        stop_pid redis "$pid"
        say "redis stopped (pid $pid)"
    else
        say "redis not running"
    fi
    rm -f "$REDIS_PID" "$REDIS_SOCK"
    if pid=$(running_pid "$MY_PID" mariadbd "$MY_DATA"); then
        stop_pid mariadbd "$pid"
        say "mariadbd stopped (pid $pid)"
    else
        say "mariadbd not running"
    fi
    rm -f "$MY_PID" "$MY_SOCK"
    ;;
status)
    rc=0
    if pid=$(running_pid "$REDIS_PID" redis-server "$REDIS_DIR"); then
        echo "redis: running (pid $pid, $HOST:$(cat "$REDIS_PORT_FILE" 2>/dev/null || echo ?))"
    else
        echo "redis: stopped"
        rc=3
    fi
    if pid=$(running_pid "$MY_PID" mariadbd "$MY_DATA"); then
        echo "mariadbd: running (pid $pid, $HOST:$(cat "$MY_PORT_FILE" 2>/dev/null || echo ?))"
    else
        echo "mariadbd: stopped"
        rc=3
    fi
    exit $rc
    ;;
env)
    [[ -s "$ENV_FILE" ]] || die "no $ENV_FILE: run 'services.sh start' first"
    grep '^export ' "$ENV_FILE"
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
