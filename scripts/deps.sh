#!/usr/bin/env bash
# deps.sh -- install the Debian 12 packages tier needs to build, test and run.
#
# Safe to run on every test run: it asks dpkg first and only touches apt
# (update + install) when something is missing, so on a ready machine it
# costs a fraction of a second.  Needs root (or sudo) only in that case.
set -euo pipefail

PKGS=(
    # build
    build-essential cmake pkg-config git clang-format
    libnng-dev libprotobuf-c-dev protobuf-c-compiler
    libhiredis-dev libmariadb-dev libmariadb-dev-compat libcriterion-dev libsodium-dev
    # sd_notify for the Type=notify units; man pages generated from --help
    libsystemd-dev help2man
    libinih-dev
    libjansson-dev libcurl4-openssl-dev
    # services and the scripts that drive them (services.sh, migrate.sh)
    redis-server redis-tools mariadb-server mariadb-client
    procps iproute2 coreutils openssl ca-certificates
    # tests and tooling (clang + its runtime: the libFuzzer targets, scripts/fuzz.sh)
    valgrind clang libclang-rt-14-dev
    # test_install: systemd-analyze verify (the units), readelf/nm (binutils)
    systemd binutils
    # the systemd test: a Debian root booted under systemd-nspawn
    systemd-container debootstrap
    # test_dashboard: a real headless browser driven by Playwright from npm
    # (tests/browser; npm ci fetches playwright-core, the browser is Debian's)
    chromium nodejs npm
)

missing=()
for p in "${PKGS[@]}"; do
    # "install ok installed" is the only state that means usable; half-
    # configured or removed-but-config-left packages count as missing.
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [[ "$st" == "install ok installed" ]]; then
        continue
    fi
    # Node.js may come from elsewhere (NodeSource's nodejs bundles npm and
    # conflicts with Debian's npm package): a working command is enough.
    if [[ "$p" == nodejs ]] && command -v node >/dev/null; then
        continue
    fi
    if [[ "$p" == npm ]] && command -v npm >/dev/null; then
        continue
    fi
    missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

echo "deps.sh: installing: ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "deps.sh: not root and no sudo; install these yourself: ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# The packages may start Debian's own system-wide redis/mariadb; harmless:
# services.sh runs private instances on other ports and sockets.
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
