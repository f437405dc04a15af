#!/usr/bin/env bash
# The main job's database: a local throwaway PostgreSQL prepared like a Supabase
# project, with every migration pushed by the real Supabase CLI.
#   scripts/db.sh up | down | status | url
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${PAUV_DB_PORT:-54322}"
# Outside the work tree: the server runs as 'postgres' and must reach its files even
# when the checkout sits in a folder only root can enter.
DATA_ROOT="${PAUV_DATA_DIR:-/tmp/pauv-local-$PORT}"
PGDATA_DIR="$DATA_ROOT/data"
SOCKET_DIR="$DATA_ROOT/socket"
URL="postgresql://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"

running() {
    [ -f "$PGDATA_DIR/postmaster.pid" ] && as_pg_user "$(pg_bindir)/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

case "${1:-}" in
up)
    if running; then
        echo "Pauv database already running on port $PORT (data in $DATA_ROOT)."
        echo "Stop it with: make down"
        echo "$URL"
        exit 0
    fi
    rm -rf "$DATA_ROOT"
    make_pg_dir "$DATA_ROOT"
    make_pg_dir "$SOCKET_DIR"
    echo "Starting PostgreSQL $(pg_major) on port $PORT ..."
    as_pg_user "$(pg_bindir)/initdb" -D "$PGDATA_DIR" -U supabase_admin --auth=trust \
        -E UTF8 --locale=C.UTF-8 >"$DATA_ROOT/initdb.log" 2>&1 \
        || as_pg_user cat "$DATA_ROOT/initdb.log" >&2
    as_pg_user "$(pg_bindir)/pg_ctl" start -w -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" \
        -o "-p $PORT -k $SOCKET_DIR $("$PAUV_ROOT/scripts/server-options.sh")" >/dev/null
    "$PAUV_ROOT/scripts/prepare-db.sh" 127.0.0.1 "$PORT"
    echo "Loading supabase/seed.sql ..."
    psql -X -q -v ON_ERROR_STOP=1 "$URL" -f "$PAUV_ROOT/supabase/seed.sql"
    echo "Pauv database is up. Stop it with: make down"
    echo "$URL"
    ;;
down)
    if running; then
        as_pg_user "$(pg_bindir)/pg_ctl" stop -D "$PGDATA_DIR" -m fast >/dev/null
        echo "Stopped the Pauv database on port $PORT."
    else
        echo "No Pauv database running on port $PORT."
    fi
    rm -rf "$DATA_ROOT"
    ;;
status)
    if running; then echo "running: $URL"; else echo "not running"; exit 1; fi
    ;;
url)
    echo "$URL"
    ;;
*)
    echo "usage: scripts/db.sh up|down|status|url" >&2
    exit 2
    ;;
esac
