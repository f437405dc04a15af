#!/usr/bin/env bash
# `make adopt`: deploy this package onto a database that already has a migration history
# the package does not know (the Pauv app's live project: its 59 migrations), then align
# the history so a plain `supabase db push` is a no-op afterwards.
#   scripts/adopt.sh                  the linked project (supabase link first)
#   scripts/adopt.sh --db-url URL     any PostgreSQL (percent-encoded URL)
#
# The CLI refuses to push while the remote history holds versions without a local file.
# Deleting them first (migration repair --status reverted) would change the database even
# if the adoption's preflight then refused. So the push runs from a temporary copy of the
# project in which each unknown version has an empty placeholder file: the CLI accepts the
# history as it is, the first migration (the preflight) refuses or passes before anything
# changes, and only after a successful push are the unknown versions removed from history.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PAUV_ROOT"

if [ "${1:-}" = "--db-url" ] && [ -n "${2:-}" ]; then
    target=(--db-url "$2")
    where="the database at the given URL"
elif [ $# -eq 0 ]; then
    target=(--linked)
    where="the linked project"
else
    echo "usage: scripts/adopt.sh [--db-url URL]   (make adopt [DB_URL=URL])" >&2
    exit 2
fi

echo "Reading the migration history of $where ..."
if ! listing=$(supabase_cli migration list "${target[@]}" --output-format json 2>&1); then
    echo "$listing" >&2
    echo "Could not read the migration history (is the URL right, or the project linked?)." >&2
    exit 1
fi
unknown=$(printf '%s' "$listing" | python3 -c '
import json, sys
text = sys.stdin.read()
data = json.loads(text[text.index("{"):])
print(" ".join(m["remote"] for m in data["migrations"] if m["remote"] and not m["local"]))
')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/supabase"
cp -r supabase/config.toml supabase/migrations "$work/supabase/"
[ -d supabase/.temp ] && cp -r supabase/.temp "$work/supabase/"
for version in $unknown; do
    echo "-- placeholder for a version the remote history already holds" \
        > "$work/supabase/migrations/${version}_remote_history.sql"
done
if [ -n "$unknown" ]; then
    echo "The history holds $(wc -w <<<"$unknown") version(s) this package does not know;" \
        "they stay untouched unless the push succeeds."
fi

echo "Pushing the migrations ..."
if ! supabase_cli --workdir "$work" db push "${target[@]}" --include-all --yes; then
    cat >&2 <<'MSG'

make adopt: the push stopped (see the error above).
- If the first migration (check_legacy_adoption_preflight) refused, nothing was changed:
  fix the rows it names, then run make adopt again.
- If a later migration failed, the ones before it are applied and recorded: fix the cause
  and run make adopt again; it continues where it stopped (docs/adoption.md).
MSG
    exit 1
fi

if [ -n "$unknown" ]; then
    echo "Removing the $(wc -w <<<"$unknown") superseded version(s) from the history ..."
    # shellcheck disable=SC2086 # one argument per version
    supabase_cli migration repair "${target[@]}" --status reverted $unknown --yes >/dev/null
fi
echo "Checking that a plain push has nothing left to do ..."
supabase_cli db push "${target[@]}" --yes 2>&1 | tail -n 1
