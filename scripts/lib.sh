#!/usr/bin/env bash
# Shared helpers for the local throwaway PostgreSQL: where the binaries are and how
# to run them, since PostgreSQL refuses to start as root.
set -euo pipefail

PAUV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PAUV_ROOT

# The installed PostgreSQL major (15 on Debian 12, 17 on Debian 13): never hard-coded.
pg_major() {
    local major
    major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
    if [ -z "$major" ]; then
        echo "PostgreSQL is not installed: run 'make deps' first." >&2
        return 1
    fi
    echo "$major"
}

pg_bindir() { echo "/usr/lib/postgresql/$(pg_major)/bin"; }

# Run a PostgreSQL server binary as an unprivileged user when we are root, from / so a
# checkout in a folder only root may enter is not in the way (all paths are absolute).
as_pg_user() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Give the unprivileged server user a directory it owns.
make_pg_dir() {
    mkdir -p "$1"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$1"
    fi
}

supabase_cli() { "$PAUV_ROOT/node_modules/.bin/supabase" "$@"; }
