#!/usr/bin/env bash
# Install everything the database, its tests and its tools need on a fresh Debian
# machine: PostgreSQL server + pg_cron + pgTAP + plpgsql_check + wal2json (the decoder
# Supabase Realtime reads the WAL with), the Python venv, npm tools.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PAUV_ROOT"

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The server major to use: the one installed, else the one Debian offers.
major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
if [ -z "$major" ]; then
    sudo_if_needed apt-get update -qq
    major=$(apt-cache depends postgresql | sed -n 's/.*Depends: postgresql-\([0-9]\+\)$/\1/p' | head -n 1)
fi
wanted="postgresql-$major postgresql-$major-cron postgresql-$major-pgtap postgresql-$major-plpgsql-check postgresql-$major-wal2json"
missing=""
for pkg in $wanted; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! cmp -s requirements-dev.txt .venv/.requirements; then
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
    cp requirements-dev.txt .venv/.requirements
fi

if [ ! -x node_modules/.bin/supabase ] || [ ! -x node_modules/.bin/deno ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
