#!/usr/bin/env bash
# Server settings shared by the main job and the test cluster: pg_cron preloaded and
# living in the 'postgres' database, as on Supabase; jobs run in background workers so
# they need no password.
echo "-c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_cron" \
    "-c cron.database_name=postgres -c cron.use_background_workers=on" \
    "-c max_worker_processes=32 -c max_connections=200 -c timezone=UTC" \
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
