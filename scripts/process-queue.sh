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
    trap 'echo; echo "stopped"; exit 0' INT TERM
    echo "Processing the queue continuously; Ctrl-C to stop."
    while :; do
        read -r has_more summary <<<"$(drain_once)"
        case "$summary" in
        *'"total_processed": 0'*) sleep 1 ;;
        *) echo "$(date -u +%H:%M:%S) $summary" ;;
        esac
    done
    ;;
*)
    echo "usage: scripts/process-queue.sh all|continuous" >&2
    exit 2
    ;;
esac
