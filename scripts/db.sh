#!/usr/bin/env bash
# The main job's database: a local, durable PostgreSQL (PostgreSQL's default fsync,
# synchronous_commit and full_page_writes) prepared like a Supabase project, with every
# migration pushed by the real Supabase CLI.
#   scripts/db.sh up | down | status | url | down-command
#
# Safety: the data folder is only ever deleted or reused when it carries this checkout's
# marker file, and never while a server runs on it (its postmaster.pid names a live
# process), whoever owns that server. `down` only stops a server it can prove is this
# checkout's database: the marker names this checkout, and the postmaster.pid of its data
# folder names a live postgres process listening on the port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${PAUV_DB_PORT:-54322}"
# Outside the work tree: the server runs as 'postgres' and must reach its files even
# when the checkout sits in a folder only root can enter.
DATA_ROOT="${PAUV_DATA_DIR:-/tmp/pauv-local-$PORT}"
PGDATA_DIR="$DATA_ROOT/data"
SOCKET_DIR="$DATA_ROOT/socket"
MARKER="$DATA_ROOT/pauv-checkout"
URL="postgresql://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
# The hint printed with every state: the command that acts on this port.
if [ "$PORT" = 54322 ]; then DOWN_CMD="make down"; else DOWN_CMD="PAUV_DB_PORT=$PORT make down"; fi
if [ -n "${PAUV_DATA_DIR:-}" ]; then DOWN_CMD="PAUV_DATA_DIR=$PAUV_DATA_DIR $DOWN_CMD"; fi

# Something (any program, any user) accepts TCP connections on 127.0.0.1:$PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# The data folder was created by `scripts/db.sh up` of this checkout.
ours() { [ -f "$MARKER" ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$PAUV_ROOT" ]; }

# The pid of a live postgres process owning the data folder (any owner), else nothing.
# Fails (status 2) when the folder cannot be inspected (another user's, mode 0700).
live_postmaster() {
    local pidfile="$PGDATA_DIR/postmaster.pid" pid
    if [ -e "$PGDATA_DIR" ] && ! [ -r "$PGDATA_DIR" ] || { [ -e "$pidfile" ] && ! [ -r "$pidfile" ]; }; then
        return 2
    fi
    [ -f "$pidfile" ] || return 0
    pid=$(head -n 1 "$pidfile")
    if [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qE '^(postgres|postmaster)$' "/proc/$pid/comm" 2>/dev/null; then
        echo "$pid"
    fi
}

# The port the server of the data folder listens on (line 4 of postmaster.pid).
pid_port() { sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null; }

describe_pid() { ps -o user=,pid=,args= -p "$1" 2>/dev/null | head -c 200 || true; }

# Exit unless the data folder can be inspected (read its postmaster.pid).
refuse_if_uninspectable() {
    local status=0
    live_postmaster >/dev/null || status=$?
    if [ "$status" -eq 2 ]; then
        echo "Refusing: $DATA_ROOT belongs to another user and cannot be inspected; it may be a" >&2
        echo "running server's data. Nothing was changed. Choose another PAUV_DB_PORT or PAUV_DATA_DIR." >&2
        exit 1
    fi
}

# Exit unless the data folder may be touched: no live server on it, and it can be read.
refuse_if_live() {
    local pid
    refuse_if_uninspectable
    pid=$(live_postmaster)
    if [ -n "$pid" ]; then
        echo "Refusing: $PGDATA_DIR belongs to a running server (pid $pid, port $(pid_port)):" >&2
        echo "  $(describe_pid "$pid")" >&2
        echo "Nothing was deleted or changed. Stop that server first, or choose another" >&2
        echo "PAUV_DB_PORT / PAUV_DATA_DIR." >&2
        exit 1
    fi
}

# This checkout's server is running on $PORT: marker, live postmaster, right port.
running() {
    local pid
    ours || return 1
    pid=$(live_postmaster 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(pid_port)" = "$PORT" ] && port_in_use
}

# Stop this checkout's server as the user who owns its data folder (whoever started it).
stop_server() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$(stat -c %U "$PGDATA_DIR")" -- "$(pg_bindir)/pg_ctl" stop -D "$PGDATA_DIR" -m fast) >/dev/null
    else
        "$(pg_bindir)/pg_ctl" stop -D "$PGDATA_DIR" -m fast >/dev/null
    fi
}

start_server() {
    as_pg_user "$(pg_bindir)/pg_ctl" start -w -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" \
        -o "-p $PORT -k $SOCKET_DIR $("$PAUV_ROOT/scripts/server-options.sh" durable | tr '\n' ' ')" \
        >/dev/null
}

case "${1:-}" in
up)
    if running; then
        echo "Pauv database already running on port $PORT (data in $DATA_ROOT)."
        echo "Stop it with: $DOWN_CMD"
        echo "$URL"
        exit 0
    fi
    if [ -e "$DATA_ROOT" ]; then
        refuse_if_live
    fi
    if port_in_use; then
        echo "Refusing: port $PORT is already in use by another server (not this checkout's" >&2
        echo "database in $DATA_ROOT). Nothing was changed. Choose a free port: PAUV_DB_PORT=54400 make up" >&2
        exit 1
    fi
    if [ -e "$DATA_ROOT" ] && ! ours; then
        echo "Refusing: $DATA_ROOT exists but was not created by this checkout ($PAUV_ROOT);" >&2
        echo "nothing was deleted. Remove it yourself, or choose another PAUV_DATA_DIR / PAUV_DB_PORT." >&2
        exit 1
    fi
    if ours && [ -f "$PGDATA_DIR/PG_VERSION" ]; then
        # A stopped database of this checkout (a reboot, a crash): start it again with its
        # data; only migrations not applied yet are pushed.
        echo "Restarting the Pauv database in $DATA_ROOT on port $PORT (data kept) ..."
        start_server
        cd "$PAUV_ROOT"
        supabase_cli db push --db-url "$URL" --yes 2>&1 | grep -E '^(Applying migration|Finished|Remote database)' || true
    else
        rm -rf "$DATA_ROOT"
        make_pg_dir "$DATA_ROOT"
        echo "$PAUV_ROOT" >"$MARKER"
        make_pg_dir "$SOCKET_DIR"
        echo "Starting PostgreSQL $(pg_major) on port $PORT ..."
        as_pg_user "$(pg_bindir)/initdb" -D "$PGDATA_DIR" -U supabase_admin --auth=trust \
            -E UTF8 --locale=C.UTF-8 >"$DATA_ROOT/initdb.log" 2>&1 \
            || as_pg_user cat "$DATA_ROOT/initdb.log" >&2
        start_server
        "$PAUV_ROOT/scripts/prepare-db.sh" 127.0.0.1 "$PORT"
        echo "Loading supabase/seed.sql ..."
        psql -X -q -v ON_ERROR_STOP=1 "$URL" -f "$PAUV_ROOT/supabase/seed.sql"
    fi
    echo "Pauv database is up (durable: fsync, synchronous_commit, full_page_writes on)."
    echo "Stop it and delete its data with: $DOWN_CMD"
    echo "$URL"
    ;;
down)
    if [ -e "$DATA_ROOT" ] && ! ours; then
        echo "Not touching $DATA_ROOT: it was not created by this checkout ($PAUV_ROOT)."
        echo "Nothing was stopped or deleted."
        exit 0
    fi
    if [ -e "$DATA_ROOT" ]; then
        refuse_if_uninspectable
    fi
    if running; then
        stop_server
        echo "Stopped the Pauv database on port $PORT."
    else
        echo "No Pauv database of this checkout is running on port $PORT."
    fi
    if [ -e "$DATA_ROOT" ]; then
        refuse_if_live
        rm -rf "$DATA_ROOT"
        echo "Deleted $DATA_ROOT."
    fi
    ;;
status)
    if running; then
        echo "running: $URL (data in $DATA_ROOT; stop with: $DOWN_CMD)"
    else
        echo "not running (port $PORT, data folder $DATA_ROOT)"
        exit 1
    fi
    ;;
url)
    echo "$URL"
    ;;
down-command)
    echo "$DOWN_CMD"
    ;;
*)
    echo "usage: scripts/db.sh up|down|status|url|down-command" >&2
    exit 2
    ;;
esac
