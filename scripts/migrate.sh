#!/usr/bin/env bash
# migrate.sh [--db NAME] -- apply sql/NNN_name.sql to a database, in order,
# each exactly once.
#
# Connects as TIER_MYSQL_USER (default tier) to TIER_MYSQL_HOST:TIER_MYSQL_PORT
# with TIER_MYSQL_PASSWORD, which reaches the client through a temporary
# defaults file (mode 600), never the command line.  The database (default
# $TIER_MYSQL_DB, else tier) is created if missing.  Applied versions are
# recorded in schema_version; a version found there is skipped, so running
# this twice changes nothing the second time.
#
# Each migration runs in one client run together with its schema_version
# insert; the client stops at the first error and the version stays
# unrecorded.  MariaDB commits DDL implicitly, so a half-applied file is
# possible: migrations are therefore written to be re-runnable
# (IF NOT EXISTS / IF EXISTS), and a failed one is simply applied again.
#
# Level paths are built from the storage root, TIER_STORAGE_ROOT (default
# $TIER_RUN_DIR/storage, else <checkout>/.run/storage), handed to the SQL as
# the session variable @storage_root.  After migrating, the directory of
# every level is created.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SQL_DIR=$ROOT/sql

die() {
    echo "migrate.sh: $*" >&2
    exit 1
}

DB=${TIER_MYSQL_DB:-tier}
while (($#)); do
    case "$1" in
    --db)
        [[ $# -ge 2 ]] || die "--db needs a name"
        DB=$2
        shift 2
        ;;
    --db=*)
        DB=${1#--db=}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (usage: migrate.sh [--db NAME])" ;;
    esac
done

# Names go into SQL unquoted-by-the-server, so keep them to a safe alphabet.
[[ "$DB" =~ ^[A-Za-z0-9_]{1,64}$ ]] || die "bad database name '$DB' (letters, digits, _ only)"

HOST=${TIER_MYSQL_HOST:-127.0.0.1}
PORT=${TIER_MYSQL_PORT:-}
USER_=${TIER_MYSQL_USER:-tier}
[[ -n "$PORT" ]] || die "TIER_MYSQL_PORT is not set (run scripts/services.sh start and . .run/env)"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad TIER_MYSQL_PORT '$PORT'"
[[ -v TIER_MYSQL_PASSWORD ]] || die "TIER_MYSQL_PASSWORD is not set"

STORAGE_ROOT=${TIER_STORAGE_ROOT:-${TIER_RUN_DIR:-$ROOT/.run}/storage}
[[ "$STORAGE_ROOT" == /* ]] || die "TIER_STORAGE_ROOT must be an absolute path, not '$STORAGE_ROOT'"
# "/x/" and "/x" give the same level paths.
while [[ "$STORAGE_ROOT" == */ && "$STORAGE_ROOT" != / ]]; do
    STORAGE_ROOT=${STORAGE_ROOT%/}
done
[[ "$STORAGE_ROOT" == / ]] && STORAGE_ROOT=""

# Option-file value quoting: inside "..." the client unescapes \\ and \".
cnfquote() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

CNF=$(mktemp "${TMPDIR:-/tmp}/tier-migrate.XXXXXX.cnf")
trap 'rm -f "$CNF"' EXIT
chmod 600 "$CNF"
{
    echo "[client]"
    echo "host=$(cnfquote "$HOST")"
    echo "port=$PORT"
    echo "user=$(cnfquote "$USER_")"
    echo "password=$(cnfquote "$TIER_MYSQL_PASSWORD")"
} >"$CNF"

# --defaults-file first: it replaces every other option file, so nothing
# from ~/.my.cnf or /etc/mysql changes what happens here.
sql() {
    mariadb --defaults-file="$CNF" --protocol=tcp --connect-timeout=10 \
        --batch --skip-column-names --default-character-set=utf8mb4 "$@"
}

sql -e "CREATE DATABASE IF NOT EXISTS \`$DB\` CHARACTER SET utf8mb4" ||
    die "cannot create database '$DB' on $HOST:$PORT as $USER_"
sql --database="$DB" <<'SQL' || die "cannot create schema_version in '$DB'"
CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT NOW(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
SQL

applied=" $(sql --database="$DB" -e "SELECT version FROM schema_version ORDER BY version" | tr '\n' ' ') "

# The storage root travels as hex so no quoting rule of the server (sql_mode
# NO_BACKSLASH_ESCAPES or not) can change its meaning.
if [[ -n "$STORAGE_ROOT" ]]; then
    root_hex=$(printf '%s' "$STORAGE_ROOT" | od -An -v -tx1 | tr -d ' \n')
    set_root="SET @storage_root = CONVERT(0x$root_hex USING utf8mb4);"
else
    set_root="SET @storage_root = '';"
fi

shopt -s nullglob
files=("$SQL_DIR"/[0-9][0-9][0-9]_*.sql)
((${#files[@]})) || die "no migrations in $SQL_DIR"
seen=" "
count=0
for f in "${files[@]}"; do
    base=$(basename "$f" .sql)
    ver=$((10#${base%%_*}))
    name=${base#*_}
    [[ "$seen" != *" $ver "* ]] || die "two migrations numbered $ver"
    seen+="$ver "
    [[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || die "bad migration file name $f"
    if [[ "$applied" == *" $ver "* ]]; then
        continue
    fi
    echo "migrate.sh: $DB: applying $(basename "$f")" >&2
    {
        echo "$set_root"
        cat "$f"
        # A file may leave a custom delimiter behind.
        printf '\nDELIMITER ;\n'
        echo "INSERT INTO schema_version (version, name) VALUES ($ver, '$name');"
    } | sql --database="$DB" || die "$(basename "$f") failed on database '$DB'; nothing recorded for it"
    count=$((count + 1))
done
echo "migrate.sh: $DB: $count migration(s) applied" >&2

# The level directories; the workers move files between them.
if sql --database="$DB" -e "SELECT 1 FROM information_schema.tables
        WHERE table_schema = DATABASE() AND table_name = 'level'" | grep -q 1; then
    while IFS= read -r path; do
        [[ "$path" == /* ]] || continue
        mkdir -p -- "$path" || die "cannot create level directory $path"
    done < <(sql --database="$DB" --raw -e "SELECT path FROM level")
fi
