#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl) are installed: the postgres
# destination's tests start a throw-away server with them (tests/destinations/conftest.py).
# Quiet when they are there; as root, installs the Debian package `postgresql` otherwise.
set -euo pipefail

found_initdb() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return 0
    fi
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
            return 0
        fi
    done
    return 1
}

if found_initdb; then
    exit 0
fi

install_command="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql"
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server binaries (initdb, pg_ctl) are missing; install them as root:" >&2
    echo "    sudo sh -c '$install_command'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server binaries (initdb, pg_ctl) are missing and apt-get is not available;" \
        "install a PostgreSQL server package with this system's package manager" >&2
    exit 1
fi

echo "installing PostgreSQL server binaries (Debian package postgresql)..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
if ! found_initdb; then
    echo "the postgresql package is installed but initdb/pg_ctl were not found" >&2
    exit 1
fi
