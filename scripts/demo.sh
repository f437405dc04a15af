#!/usr/bin/env bash
# The main job: a fresh local database (as `make up`), then a realistic market session
# played entirely in SQL, then a short report. Leaves the database running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PAUV_ROOT"
URL="$(scripts/db.sh url)"
HOURS="${PAUV_DEMO_HOURS:-6}"
# The processor stamps trades at most 1 day back (pauv.checked_now): the simulated hours,
# which start at the last full hour minus HOURS, must fit in that day.
if ! [[ "$HOURS" =~ ^[0-9]+$ ]] || ((HOURS < 1 || HOURS > 23)); then
    echo "PAUV_DEMO_HOURS must be a whole number of hours from 1 to 23, got '$HOURS'" \
        "(the order processor accepts trade times at most 1 day back)" >&2
    exit 2
fi
sql() { psql -X -q -v ON_ERROR_STOP=1 "$URL" "$@"; }

# A fresh market: this checkout's database (running, or stopped with its data) is deleted
# first; db.sh refuses, and stops the demo, if the folder or port is someone else's.
if scripts/db.sh status >/dev/null 2>&1; then
    echo "Restarting the local database so the demo starts from a fresh market ..."
fi
scripts/db.sh down >/dev/null
scripts/db.sh up

echo
echo "== Demo market session: 300 traders, $HOURS simulated hours, 4 rounds an hour =="
sql -f demo/01_fund_users.sql
start=$(sql -A -t -c "select date_trunc('hour', now()) - interval '$HOURS hours'")
for ((h = 0; h < HOURS; h++)); do
    echo "hour $((h + 1)) of $HOURS"
    for r in 0 1 2 3; do
        sql -f demo/02_place_orders.sql 2>&1 | sed "s/^psql:[^ ]* NOTICE:  //"
        # Drain as production does: bounded calls, one transaction each, until done;
        # the trades are stamped with the simulated time.
        at="'$start'::timestamptz + interval '$h hours' + interval '$((r * 15 + 7)) minutes'"
        while :; do
            more=$(sql -A -t -c "select r->>'has_more' from (select public.process_all_pending_orders(
                1000, 5, $at) as r) as x")
            [ "$more" = "true" ] || break
        done
    done
done
echo "  executed: $(sql -A -t -c "select count(*) from public.transactions") trades"

echo
echo "== Jobs, run by hand as pg_cron runs them =="
echo "hourly-price-snapshot: $(sql -A -t -c "select public.snapshot_hourly_prices()") candles written"
echo "refresh-issuer-stats-cache: $(sql -A -t -c "select public.refresh_issuer_stats_cache()") issuers refreshed"
# A short retention so the demo has something to clean; the scheduled job keeps 7 days.
echo "cleanup-old-queue-entries (retention 3 hours): $(sql -A -t -c \
    "select public.cleanup_old_queue_entries(interval '3 hours', 10000, now())")"

sql -f demo/03_report.sql

echo
echo "The database keeps running, with its pg_cron jobs active. Connect with:"
echo "  psql '$URL'"
echo "Stop it and delete its data with: $(scripts/db.sh down-command)"
echo "$URL"
