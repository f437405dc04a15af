#!/usr/bin/env bash
# Make a fresh cluster look like a Supabase project (roles, auth, extensions, pg_net and
# Vault stand-ins; superuser work the platform does), then push every migration with the
# real Supabase CLI as the non-superuser 'postgres' role. With a third argument
# 'platform-only' it stops after the platform (for the legacy fixture: tests/legacy/).
#   scripts/prepare-db.sh HOST PORT [platform-only]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HOST="$1"
PORT="$2"
MODE="${3:-push}"
if [ "$MODE" != push ] && [ "$MODE" != platform-only ]; then
    echo "usage: $0 HOST PORT [platform-only]" >&2
    exit 2
fi

for f in "$PAUV_ROOT"/tests/platform/*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U supabase_admin -d postgres -f "$f" >/dev/null
done

if [ "$MODE" = platform-only ]; then
    exit 0
fi

cd "$PAUV_ROOT"
echo "Pushing migrations with the Supabase CLI ..."
url="postgresql://postgres@$HOST:$PORT/postgres?sslmode=disable"
if ! out=$(supabase_cli db push --db-url "$url" --yes 2>&1); then
    echo "$out" >&2
    echo "supabase db push failed (see above)." >&2
    exit 1
fi
# Show what was applied, not the CLI's interactive prompt.
echo "$out" | grep -E '^(Applying migration|Finished|Remote database)' || true
