#!/usr/bin/env bash
# Server settings: pg_cron preloaded and living in the 'postgres' database, as on Supabase;
# jobs run in background workers so they need no password; wal_level=logical, as Supabase
# runs it for Realtime (which decodes the WAL with wal2json); shared_buffers=256MB, what a
# Supabase Micro compute (1 GB, the smallest paid size) runs with. PostgreSQL's own default,
# 128MB, is less than any paid project has, and a queue with 1,000,000 finished rows no longer
# fits in it: with them retained, the bench's 100,000-order drain cost 1.15-1.22x per order
# at 128MB, 0.97-1.18x at 256MB (three processes each; docs/benchmark.md, issue 15).
#   scripts/server-options.sh            the local database of `make up` / `make demo`:
#                                        durable (PostgreSQL's defaults: fsync,
#                                        synchronous_commit and full_page_writes on)
#   scripts/server-options.sh throwaway  the test and bench clusters, deleted after the run:
#                                        no disk flushes (a crash may lose commits)
set -euo pipefail
echo "-c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_cron" \
    "-c cron.database_name=postgres -c cron.use_background_workers=on" \
    "-c max_worker_processes=32 -c max_connections=200 -c timezone=UTC" \
    "-c wal_level=logical -c shared_buffers=256MB"
case "${1:-durable}" in
durable) ;;
throwaway) echo "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" ;;
*)
    echo "usage: scripts/server-options.sh [durable|throwaway]" >&2
    exit 2
    ;;
esac
