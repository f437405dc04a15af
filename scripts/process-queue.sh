#!/usr/bin/env bash
# The queue processor by hand, against the local database (or PAUV_DB_URL): the local
# equivalent of the guide's `npm run process-queue:all` / `process-queue:continuous`.
#   scripts/process-queue.sh all          drain everything pending, then exit
#   scripts/process-queue.sh continuous   keep draining until interrupted (Ctrl-C)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
URL="${PAUV_DB_URL:-$("$PAUV_ROOT/scripts/db.sh" url)}"
MODE="${1:-all}"

# One call = one transaction of bounded work, as the edge function makes them.
drain_once() {
    psql -X -q -A -t -F ' ' "$URL" -c \
        "select r->>'has_more', r from (select public.process_all_pending_orders() as r) as x"
}

case "$MODE" in
all)
    while :; do
        read -r has_more summary <<<"$(drain_once)"
        echo "$summary"
        [ "$has_more" = "true" ] || break
    done
    ;;
continuous)
    stopping=false
    trap 'stopping=true' INT TERM
    result="$(mktemp)"
    trap 'rm -f "$result"' EXIT
    echo "Processing the queue continuously; Ctrl-C to stop."
    while ! $stopping; do
        # Each call runs in the background and is waited for. A Ctrl-C that arrives while
        # a foreground psql runs is handled by psql itself (it cancels the call and exits
        # normally), and bash then discards the signal and never runs the trap: the loop
        # went on forever. `wait` returns at once on a trapped signal; the loop waits
        # again until psql is gone, so it stops only after the call ended.
        drain_once >"$result" &
        call=$!
        while kill -0 "$call" 2>/dev/null; do wait "$call" || true; done
        read -r _ summary <"$result" || true
        case "$summary" in
        *'"total_processed": 0'*) $stopping || sleep 1 ;;
        *) echo "$(date -u +%H:%M:%S) $summary" ;;
        esac
    done
    echo
    echo "stopped"
    ;;
*)
    echo "usage: scripts/process-queue.sh all|continuous" >&2
    exit 2
    ;;
esac
