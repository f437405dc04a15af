-- Who may do what, read from the catalog: schema, table, column, sequence and function
-- privileges of anon, authenticated and service_role (and PUBLIC). 02-rls.sql covers
-- which rows they see, 03-api-role-attempts.sql what actually happens when they try.
begin;
select plan(51);

-- Functions: the allow-list. Every function in public and pauv must be listed here with
-- exactly the roles that may execute it; PUBLIC never may. Entries for functions that
-- do not exist yet (later migrations) are checked once they exist. A signature is what
-- to_regprocedure() reads, so its argument types must exist (builtins always do).
create temporary table function_allow_list (
    signature text primary key,
    allowed_roles text[] not null
) on commit drop;

insert into function_allow_list (signature, allowed_roles) values
-- Foundation: trigger functions (called by triggers, never by a role) and money moves.
('pauv.set_updated_at()', '{}'),
('pauv.check_trade_references()', '{}'),
('pauv.check_tick_references()', '{}'),
('pauv.first_missing_issuer(text[])', '{}'),
('pauv.first_missing_user(uuid[])', '{}'),
('pauv.refuse_orphaning_trade_history()', '{}'),
('pauv.check_holding_references()', '{}'),
('pauv.check_holding_new_key()', '{}'),
('pauv.refuse_orphaning_holdings()', '{}'),
('pauv.create_user_row()', '{}'),
('pauv.move_usdp(uuid, numeric, integer)', '{service_role}'),
('public.deposit_usdp(uuid, numeric)', '{service_role}'),
('public.withdraw_usdp(uuid, numeric)', '{service_role}'),
-- The Pauv app's payment call, kept by name and made safe (through the ledger).
('public.increment_user_balance(uuid, numeric)', '{service_role}'),
-- The Pauv app's other calls, kept by name: market reads for everyone, its batch
-- processor for the service.
('public.get_latest_price(text)', '{anon,authenticated,service_role}'),
('public.get_price_change(text, interval)', '{anon,authenticated,service_role}'),
('public.get_all_issuer_stats()', '{anon,authenticated,service_role}'),
('public.get_issuer_stats(text)', '{anon,authenticated,service_role}'),
(
    'public.get_chart_data_adaptive(text, timestamptz, timestamptz, integer)',
    '{anon,authenticated,service_role}'
),
('public.process_order_batch(integer)', '{service_role}'),
-- Order matching (2026112813xxxx, on main): users place and cancel their own orders
-- through SECURITY INVOKER wrappers in public that call SECURITY DEFINER functions in
-- pauv; the processor, the curve math and the audit are for the service only. The
-- queue's BEFORE INSERT trigger takes a per-ticker lock as whoever inserts.
-- Issue 16: place_order gained p_min_receive; close_position sells a whole holding.
('public.place_order(text, text, numeric, text, numeric)', '{authenticated}'),
('pauv.place_order(text, text, numeric, text, numeric)', '{authenticated}'),
('public.close_position(text, text, numeric)', '{authenticated}'),
('pauv.close_position(text, text, numeric)', '{authenticated}'),
('pauv.begin_order_intake(uuid, text)', '{}'),
('public.cancel_order(bigint)', '{authenticated}'),
('pauv.cancel_order(bigint)', '{authenticated}'),
('pauv.ticker_lock_id(text)', '{service_role}'),
-- What may enter the queue (20261129xxxxxx): place_order and a direct INSERT (the
-- trigger runs as whoever inserts, service_role) share the checks; the per-user intake
-- lock writes an internal table, hence SECURITY DEFINER, for the service only.
('pauv.admit_queue_order()', '{service_role}'),
('pauv.check_order_input(text, text, numeric)', '{anon,authenticated,service_role}'),
('pauv.lock_order_intake(uuid)', '{service_role}'),
('pauv.check_pending_order_limit(uuid)', '{service_role}'),
('pauv.check_min_receive(text, numeric)', '{service_role}'),
-- The curve math and the table-free order checks are pure: everyone may run them, for
-- quote_order (SECURITY INVOKER), which anyone may call.
('pauv.buy_quantity(numeric, numeric, numeric)', '{anon,authenticated,service_role}'),
('pauv.sell_payout(numeric, numeric, numeric)', '{anon,authenticated,service_role}'),
('public.quote_order(text, text, numeric)', '{anon,authenticated,service_role}'),
-- Realtime (issue 16): a trigger function, executable by nobody.
('pauv.broadcast_order_fills()', '{}'),
('pauv.process_ticker_orders(text, integer, timestamptz, timestamptz)', '{service_role}'),
-- Issue 15: processors claim a ticker with their own lock and take its intake lock only
-- for an instant (the horizon); both run as the processor's caller.
('pauv.claim_ticker(text)', '{service_role}'),
('pauv.ticker_intake_horizon(text)', '{service_role}'),
('public.process_next_queue_order(timestamptz)', '{service_role}'),
('public.process_all_pending_orders(integer, numeric, timestamptz)', '{service_role}'),
('public.audit_market_invariants()', '{service_role}'),
-- Scheduled jobs (2026112814xxxx): the jobs' functions are for the service (pg_cron runs
-- them as postgres, the owner); charts are market data for everyone, their volumes
-- summed by a SECURITY DEFINER function in pauv because transactions rows are private.
('public.refresh_issuer_stats_cache(timestamptz)', '{service_role}'),
('pauv.percent_change(numeric, numeric)', '{service_role}'),
(
    'pauv.compute_candles(text, interval, timestamptz, timestamptz)',
    '{anon,authenticated,service_role}'
),
('public.snapshot_hourly_prices(interval, timestamptz)', '{service_role}'),
(
    'public.get_ohlc_data(text, text, timestamptz, timestamptz, timestamptz)',
    '{anon,authenticated,service_role}'
),
('public.cleanup_old_queue_entries(interval, integer, timestamptz)', '{service_role}'),
('pauv.run_cleanup_old_queue_entries(interval, integer, integer)', '{service_role}'),
('pauv.sweep_pending_orders(numeric)', '{service_role}'),
('pauv.purge_cron_job_run_details(interval, timestamptz)', '{}'),
('pauv.schedule_jobs()', '{}'),
-- The check of every p_now argument (issue 11 item 6): SECURITY INVOKER, reads nothing;
-- get_ohlc_data, which everyone may call, calls it.
(
    'pauv.checked_now(timestamptz, interval, interval)',
    '{anon,authenticated,service_role}'
),
-- Webhook (2026112815xxxx and later): the trigger function and its helpers run as their
-- owner, called by no role; the process-queue function reports its drains through two
-- service-only RPCs (SECURITY INVOKER wrappers in public over DEFINER ones in pauv).
('pauv.notify_process_queue()', '{}'),
('pauv.send_process_queue_wake(jsonb)', '{}'),
('pauv.process_queue_wake_configured()', '{}'),
('pauv.lock_process_queue_wake(boolean)', '{}'),
('pauv.begin_process_queue_drain()', '{service_role}'),
('pauv.end_process_queue_drain(uuid, text)', '{service_role}'),
('public.begin_process_queue_drain()', '{service_role}'),
('public.end_process_queue_drain(uuid, text)', '{service_role}');

select is_empty(
    $$select p.pronamespace::regnamespace || '.' || p.proname
             || '(' || oidvectortypes(p.proargtypes) || ')'
      from pg_proc as p
      where p.pronamespace in ('public'::regnamespace, 'pauv'::regnamespace)
        and not exists (
            select from pg_depend as d
            where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
        )
        and p.oid not in (
            select to_regprocedure(a.signature) from function_allow_list as a
            where to_regprocedure(a.signature) is not null
        )
      order by 1$$,
    'every function in public and pauv is in the allow-list of this test'
);

select is_empty(
    $$select a.signature, r.role_name,
             has_function_privilege(r.role_name, to_regprocedure(a.signature), 'execute')
                 as can_execute
      from function_allow_list as a
      cross join (values ('public'), ('anon'), ('authenticated'), ('service_role'))
          as r (role_name)
      where to_regprocedure(a.signature) is not null
        and has_function_privilege(r.role_name, to_regprocedure(a.signature), 'execute')
            is distinct from (r.role_name = any(a.allowed_roles))
      order by 1, 2$$,
    'EXECUTE on every existing function is granted to exactly the roles of the allow-list'
);

select is_empty(
    $$select p.pronamespace::regnamespace || '.' || p.proname
             || '(' || oidvectortypes(p.proargtypes) || ')'
      from pg_proc as p
      where p.pronamespace in ('public'::regnamespace, 'pauv'::regnamespace)
        and has_function_privilege('public', p.oid, 'execute')
      order by 1$$,
    'no function in public or pauv is executable by PUBLIC'
);

select is_empty(
    $$select p.pronamespace::regnamespace || '.' || p.proname
             || '(' || oidvectortypes(p.proargtypes) || ')'
      from pg_proc as p
      where p.pronamespace = 'public'::regnamespace and p.prosecdef
      order by 1$$,
    'no SECURITY DEFINER function in public (they belong in pauv)'
);

select is_empty(
    $$select p.pronamespace::regnamespace || '.' || p.proname
             || '(' || oidvectortypes(p.proargtypes) || ')'
      from pg_proc as p
      where p.pronamespace in ('public'::regnamespace, 'pauv'::regnamespace)
        and p.prosecdef
        and not coalesce('search_path=""' = any(p.proconfig), false)
      order by 1$$,
    'every SECURITY DEFINER function pins search_path to the empty string'
);

select function_privs_are(
    'public', 'deposit_usdp', array['uuid', 'numeric'], 'anon', '{}'::text[],
    'anon cannot execute deposit_usdp'
);
select function_privs_are(
    'public', 'deposit_usdp', array['uuid', 'numeric'], 'authenticated', '{}'::text[],
    'authenticated cannot execute deposit_usdp'
);
select function_privs_are(
    'public', 'deposit_usdp', array['uuid', 'numeric'], 'service_role', array['EXECUTE'],
    'service_role can execute deposit_usdp'
);
select function_privs_are(
    'public', 'withdraw_usdp', array['uuid', 'numeric'], 'anon', '{}'::text[],
    'anon cannot execute withdraw_usdp'
);
select function_privs_are(
    'public', 'withdraw_usdp', array['uuid', 'numeric'], 'authenticated', '{}'::text[],
    'authenticated cannot execute withdraw_usdp'
);
select function_privs_are(
    'public', 'withdraw_usdp', array['uuid', 'numeric'], 'service_role', array['EXECUTE'],
    'service_role can execute withdraw_usdp'
);

-- Schemas: the API roles use public, and pauv only to reach the functions the public
-- wrappers call (no relation in pauv is theirs, below). Nobody but the owner creates objects
-- in either.
select schema_privs_are('public', 'anon', array['USAGE'], 'anon: usage on public');
select schema_privs_are(
    'public', 'authenticated', array['USAGE'], 'authenticated: usage on public'
);
select schema_privs_are('public', 'service_role', array['USAGE'], 'service_role: usage on public');
select schema_privs_are(
    'pauv', 'anon', array['USAGE'],
    'anon: usage on pauv, to reach compute_candles (charts) and the pure functions of quote_order'
);
select schema_privs_are(
    'pauv', 'authenticated', array['USAGE'],
    'authenticated: usage on pauv, to reach place_order and cancel_order'
);
select schema_privs_are('pauv', 'service_role', array['USAGE'], 'service_role: usage on pauv');
select ok(
    not has_schema_privilege('public', 'pauv', 'usage, create'), 'PUBLIC: nothing on pauv'
);

-- Tables: the role x table matrix. Market data is readable by everyone, private rows
-- by signed-in users (RLS narrows them to their own), and only service_role writes.
select table_privs_are(
    'public', 'issuer_details', 'anon', array['SELECT'], 'anon: select on issuer_details'
);
select table_privs_are(
    'public', 'issuer_trading', 'anon', array['SELECT'], 'anon: select on issuer_trading'
);
select table_privs_are(
    'public', 'price_history', 'anon', array['SELECT'], 'anon: select on price_history'
);
select table_privs_are('public', 'users', 'anon', '{}'::text[], 'anon: nothing on users');
select table_privs_are('public', 'portfolio', 'anon', '{}'::text[], 'anon: nothing on portfolio');
select table_privs_are('public', 'queue', 'anon', '{}'::text[], 'anon: nothing on queue');
select table_privs_are(
    'public', 'transactions', 'anon', '{}'::text[], 'anon: nothing on transactions'
);

select table_privs_are(
    'public', 'issuer_details', 'authenticated', array['SELECT'],
    'authenticated: select on issuer_details'
);
select table_privs_are(
    'public', 'issuer_trading', 'authenticated', array['SELECT'],
    'authenticated: select on issuer_trading'
);
select table_privs_are(
    'public', 'price_history', 'authenticated', array['SELECT'],
    'authenticated: select on price_history'
);
select table_privs_are(
    'public', 'users', 'authenticated', array['SELECT'], 'authenticated: select on users'
);
select table_privs_are(
    'public', 'portfolio', 'authenticated', array['SELECT'], 'authenticated: select on portfolio'
);
select table_privs_are(
    'public', 'queue', 'authenticated', array['SELECT'], 'authenticated: select on queue'
);
select table_privs_are(
    'public', 'transactions', 'authenticated', array['SELECT'],
    'authenticated: select on transactions'
);

select table_privs_are(
    'public', 'issuer_details', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on issuer_details'
);
select table_privs_are(
    'public', 'issuer_trading', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on issuer_trading'
);
select table_privs_are(
    'public', 'price_history', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on price_history'
);
select table_privs_are(
    'public', 'users', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on users'
);
select table_privs_are(
    'public', 'portfolio', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on portfolio'
);
select table_privs_are(
    'public', 'queue', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on queue'
);
select table_privs_are(
    'public', 'transactions', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'service_role: select, insert, update, delete on transactions'
);

-- What table_privs_are does not see: column grants, PUBLIC, and relations added later.
select is_empty(
    $$select c.oid::regclass::text, r.role_name
      from pg_class as c
      cross join (values ('anon'), ('authenticated')) as r (role_name)
      where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
        and (has_any_column_privilege(r.role_name, c.oid, 'insert, update')
             or has_table_privilege(r.role_name, c.oid, 'delete, truncate'))
      order by 1, 2$$,
    'anon and authenticated can write no table or column in public'
);
select ok(
    not has_column_privilege('authenticated', 'public.users', 'usdp_balance', 'insert, update'),
    'authenticated cannot write users.usdp_balance'
);
select is_empty(
    $$select c.oid::regclass::text
      from pg_class as c
      where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
        and has_any_column_privilege(
            'public', c.oid, 'select, insert, update, references'
        )
      order by 1$$,
    'PUBLIC has no privilege on any relation in public'
);
select is_empty(
    $$select c.oid::regclass::text, r.role_name
      from pg_class as c
      cross join (values ('public'), ('anon'), ('authenticated')) as r (role_name)
      where c.relnamespace = 'pauv'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
        and (has_any_column_privilege(r.role_name, c.oid, 'select, insert, update, references')
             or has_table_privilege(r.role_name, c.oid, 'delete, truncate, trigger'))
      order by 1, 2$$,
    'no relation in pauv grants anything to PUBLIC, anon or authenticated'
);
-- The invariant audit (service_role) sums the deposit ledger: read access, nothing more.
select table_privs_are(
    'pauv', 'usdp_movements', 'service_role', array['SELECT'],
    'service_role: select only on pauv.usdp_movements (for audit_market_invariants)'
);
select is_empty(
    $$select c.oid::regclass::text, r.role_name
      from pg_class as c
      cross join (values ('public'), ('anon'), ('authenticated'), ('service_role'))
          as r (role_name)
      where c.relnamespace in ('public'::regnamespace, 'pauv'::regnamespace)
        and c.relkind = 'S'
        and has_sequence_privilege(r.role_name, c.oid, 'usage, select, update')
      order by 1, 2$$,
    'no API role may use, read or setval() a sequence (identity columns need none)'
);

-- The money columns, named: the service writes them, the API roles never do.
select ok(
    has_column_privilege('service_role', 'public.users', 'usdp_balance', 'update'),
    'service_role can update users.usdp_balance'
);
select ok(
    not has_column_privilege('anon', 'public.users', 'usdp_balance', 'select'),
    'anon cannot even read users.usdp_balance'
);
select ok(
    not has_table_privilege('authenticated', 'public.issuer_trading', 'insert, update, delete'),
    'authenticated cannot write issuer_trading (the pool)'
);
select ok(
    not has_table_privilege('authenticated', 'public.portfolio', 'insert, update, delete'),
    'authenticated cannot write portfolio'
);
select ok(
    not has_table_privilege('authenticated', 'public.queue', 'insert, update, delete'),
    'authenticated cannot write queue directly'
);
select ok(
    not has_table_privilege('authenticated', 'public.transactions', 'insert, update, delete'),
    'authenticated cannot write transactions'
);

select finish();
rollback;
