#!/usr/bin/env bash
# Make a fresh cluster look like a Supabase project (roles, auth, extensions, pg_net and
# Vault stand-ins; superuser work the platform does), then push every migration with the
# real Supabase CLI as the non-superuser 'postgres' role.
#   scripts/prepare-db.sh HOST PORT
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HOST="$1"
PORT="$2"

for f in "$PAUV_ROOT"/tests/platform/*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U supabase_admin -d postgres -f "$f" >/dev/null
done

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
