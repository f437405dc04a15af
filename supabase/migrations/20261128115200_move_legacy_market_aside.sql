-- Adoption, step 2 (only on a database the Pauv app made): move its market tables and types
-- to schema pauv_legacy, so the next migrations create this package's tables beside them
-- and a later migration converts every row. Also drops what would clash with this package.
do $$
declare
    v_table text;
    v_function regprocedure;
    v_trigger record;
    v_report text;
begin
    if pauv.market_origin() <> 'legacy' then
        return;
    end if;

    -- Nothing may change between the check and the move: lock first, then check again.
    lock table public.issuer_details, public.issuer_trading, public.users, public.portfolio,
        public.queue, public.transactions, public.price_history
        in access exclusive mode;
    select pg_catalog.string_agg(p.problem || ': ' || p.examples, '; ')
    into v_report
    from pauv.legacy_adoption_problems() as p;
    if v_report is not null then
        raise exception 'Pauv adoption refused, nothing was changed: % (run make adopt again '
            'for the full report)', v_report using errcode = 'check_violation';
    end if;

    create schema pauv_legacy;
    comment on schema pauv_legacy is
    'The Pauv app''s market tables as they were before the adoption (read-only archive). '
    'Drop it with: drop schema pauv_legacy cascade; once you no longer need it.';
    revoke all on schema pauv_legacy from public;

    -- The app's sign-up trigger on auth.users has the name this package's one takes; the
    -- per-row Dashboard webhook would send one request per order (ours sends one per
    -- statement). Both go with the functions behind them.
    drop trigger if exists on_auth_user_created on auth.users;
    drop trigger if exists "process-queue-webhook" on public.queue;

    foreach v_table in array array['issuer_details', 'issuer_trading', 'users', 'portfolio',
        'queue', 'transactions', 'price_history', 'issuer_stats_cache']
    loop
        if pg_catalog.to_regclass('public.' || v_table) is not null then
            execute pg_catalog.format('alter table public.%I set schema pauv_legacy', v_table);
            execute pg_catalog.format(
                'revoke all on pauv_legacy.%I from public, anon, authenticated, service_role',
                v_table
            );
        end if;
    end loop;

    -- The enum names are free for the app's types; the archive keeps using them.
    for v_table in
        select t.typname from pg_catalog.pg_type as t
        where t.typnamespace = 'public'::regnamespace
            and t.typname in ('order_type', 'queue_status', 'transaction_status')
    loop
        execute pg_catalog.format('alter type public.%I set schema pauv_legacy', v_table);
    end loop;

    -- The archive's own triggers would write to the new tables (they name them without a
    -- schema): only the app's triggers are carried over (by the data migration), the rest
    -- is replaced by this package's.
    for v_trigger in
        select tg.tgname, tg.tgrelid::regclass as rel
        from pg_catalog.pg_trigger as tg
        inner join pg_catalog.pg_class as c on tg.tgrelid = c.oid
        where c.relnamespace = 'pauv_legacy'::regnamespace and not tg.tgisinternal
            and tg.tgfoid in (
                select f.oid from pg_catalog.pg_proc as f
                where f.pronamespace = 'public'::regnamespace and f.proname in (
                    'record_price_history', 'record_price_history_on_insert',
                    'protect_financial_columns', 'update_issuer_trading_updated_at',
                    'update_portfolio_updated_at', 'update_queue_updated_at',
                    'update_transactions_updated_at', 'update_users_updated_at'
                )
            )
    loop
        execute pg_catalog.format('drop trigger %I on %s', v_trigger.tgname, v_trigger.rel);
    end loop;

    -- Functions that clash with this package's names (the guide's calls must resolve to
    -- one function), that move money behind the engine's back, or that only served the
    -- dropped triggers. increment_user_balance comes back safe in a later migration.
    for v_function in
        select f.oid::regprocedure
        from pg_catalog.pg_proc as f
        where f.pronamespace = 'public'::regnamespace and f.proname in (
            'process_next_queue_order', 'process_all_pending_orders', 'process_order_batch',
            'refresh_issuer_stats_cache', 'get_ohlc_data', 'execute_buy_order',
            'execute_sell_order', 'calculate_buy_tokens', 'calculate_sell_usdp',
            'increment_user_balance', 'handle_new_user', 'record_price_history',
            'record_price_history_on_insert', 'protect_financial_columns',
            'update_issuer_trading_updated_at', 'update_portfolio_updated_at',
            'update_queue_updated_at', 'update_transactions_updated_at',
            'update_users_updated_at'
        )
    loop
        execute pg_catalog.format('drop function %s', v_function);
    end loop;

    insert into pauv.legacy_adoption (moved_aside_at) values (pg_catalog.now());
end;
$$;
