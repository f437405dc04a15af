#!/usr/bin/env bash
# The queue processor by hand, against the local database (or PAUV_DB_URL): the local
# equivalent of the guide's `npm run process-queue:all` / `process-queue:continuous`.
#   scripts/process-queue.sh all          drain everything pending, then exit (130 when
#                                         interrupted, 1 when a call fails)
#   scripts/process-queue.sh continuous   keep draining until interrupted (Ctrl-C); a failed
#                                         call is reported and retried a second later
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
URL="${PAUV_DB_URL:-$("$PAUV_ROOT/scripts/db.sh" url)}"
MODE="${1:-all}"

result="$(mktemp)"
trap 'rm -f "$result"' EXIT
# Once the INT trap is set, the loop runs no command substitution: a Ctrl-C that arrives
# while bash (5.2 here) expands one can make the trap fail ("interrupt trap: unexpected EOF
# while looking for matching `)'") or run in the substitution's subshell, and the loop
# never stops. Times come from printf's builtin %(...)T, in UTC.
export TZ=UTC
stopping=false
trap 'stopping=true' INT TERM

# One call = one transaction of bounded work, as the edge function makes them. Sets
# has_more and summary; returns psql's status.
#
# The call runs in the background and is waited for. psql handles SIGINT itself (it cancels
# a running call, and otherwise just exits), and when a child handles SIGINT and exits
# normally, bash, waiting for it in the foreground, discards the signal without running
# its trap: a Ctrl-C at the wrong moment was lost and the loop went on. `wait` returns at
# once on a trapped signal (status above 128); the loop waits again until psql is gone.
call_once() {
    psql -X -q -A -t -F ' ' "$URL" -c \
        "select r->>'has_more', r from (select public.process_all_pending_orders() as r) as x" \
        >"$result" &
    local call=$! status
    while :; do
        status=0
        wait "$call" || status=$?
        if [ "$status" -le 128 ] || ! kill -0 "$call" 2>/dev/null; then
            break
        fi
    done
    has_more=
    summary=
    read -r has_more summary <"$result" || true
    return "$status"
}

# A second's pause between calls with nothing to do. A Ctrl-C kills the sleep (status 130),
# which must not end the script under `set -e` before it says it stopped.
pause() {
    $stopping || sleep 1 || true
}

case "$MODE" in
all)
    while :; do
        status=0
        call_once || status=$?
        if $stopping; then
            echo "stopped" >&2
            exit 130
        fi
        if [ "$status" -ne 0 ]; then
            echo "process-queue: the call failed (psql's error above)" >&2
            exit 1
        fi
        echo "$summary"
        [ "$has_more" = "true" ] || break
    done
    ;;
continuous)
    echo "Processing the queue continuously; Ctrl-C to stop."
    while ! $stopping; do
        if ! call_once; then
            $stopping || printf '%(%H:%M:%S)T %s\n' -1 \
                "the call failed (psql's error above); retrying in 1 s" >&2
            pause
            continue
        fi
        case "$summary" in
        *'"total_processed": 0'*) pause ;;
        *) printf '%(%H:%M:%S)T %s\n' -1 "$summary" ;;
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
