-- The trade history's four foreign keys (transactions -> users and issuer_trading,
-- price_history -> issuer_trading and transactions) are replaced by checks that prove the
-- same once per statement instead of once per row. Each foreign key queued a trigger event
-- and ran a lookup for every row, four per executed order: without them a hot ticker
-- drained 17,400 instead of 13,700 orders/s (issue 15). What each key guaranteed, and what
-- guarantees it now:
--   * a trade or tick that is written names existing rows, locked against deletion until
--     commit: a statement trigger checks all the statement's new rows at once, with the
--     same FOR KEY SHARE lock;
--   * a named row cannot be deleted, nor its key changed: a row trigger on users,
--     issuer_trading and transactions refuses it, with the same SQLSTATE (23503);
--   * what no trigger sees (TRUNCATE, triggers disabled): public.audit_market_invariants()
--     reports any orphan (next migration).

alter table public.transactions
drop constraint transactions_user_id_fkey,
drop constraint transactions_ticker_fkey;

alter table public.price_history
drop constraint price_history_ticker_fkey,
drop constraint price_history_transaction_id_fkey;

-- SECURITY DEFINER: the lock a foreign key's check takes needs UPDATE on the named table
-- and must see every row whatever the writer's RLS, as a foreign key's does. Each named
-- row is locked FOR KEY SHARE, so it cannot be deleted before this transaction ends; a row
-- deleted by a transaction that committed while this one waited is not returned, and counts
-- as missing. LIMIT 1 stops at the first missing row, where the statement fails anyway.
create function pauv.first_missing_issuer(p_tickers text[])
returns text
-- PL/pgSQL, not SQL: its plan is cached for the session, where a SQL function that cannot
-- be inlined is planned again on every call (0.1 ms, twice per run of orders).
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    return (
        select n.ticker
        from (select distinct x.ticker from unnest(p_tickers) as x (ticker)) as n
        left join lateral (
            select true as found
            from public.issuer_trading as i
            where i.ticker = n.ticker
            for key share
        ) as l on true
        where l.found is null
        limit 1
    );
end;
$$;

comment on function pauv.first_missing_issuer(text[]) is
'The first of the tickers with no issuer_trading row, NULL when all exist; locks every '
'existing one FOR KEY SHARE until commit (a foreign key''s check, for a set of rows).';

-- The same checks for users and trades, inline: each is named by one table only.
create function pauv.check_trade_references()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_missing text;
begin
    select coalesce(
        (
            select pg_catalog.format('user %s', n.user_id)
            from (select distinct t.user_id from new_trades as t) as n
            left join lateral (
                select true as found
                from public.users as u
                where u.user_id = n.user_id
                for key share
            ) as l on true
            where l.found is null
            limit 1
        ),
        'issuer ' || pauv.first_missing_issuer(array(select t.ticker from new_trades as t))
    )
    into v_missing;
    if v_missing is not null then
        raise exception 'a trade names % that does not exist', v_missing
            using errcode = 'foreign_key_violation',
                hint = 'Every row of public.transactions names an existing user and issuer.';
    end if;
    return null;
end;
$$;

comment on function pauv.check_trade_references() is
'Statement trigger on public.transactions (insert, update): every new row names an existing '
'user and issuer, locked FOR KEY SHARE until commit, as the foreign keys it replaces did.';

create function pauv.check_tick_references()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_missing text;
begin
    select coalesce(
        'issuer ' || pauv.first_missing_issuer(array(select t.ticker from new_ticks as t)),
        (
            select pg_catalog.format('trade %s', n.transaction_id)
            from (
                select distinct t.transaction_id from new_ticks as t
                where t.transaction_id is not null
            ) as n
            left join lateral (
                select true as found
                from public.transactions as x
                where x.id = n.transaction_id
                for key share
            ) as l on true
            where l.found is null
            limit 1
        )
    )
    into v_missing;
    if v_missing is not null then
        raise exception 'a price tick names % that does not exist', v_missing
            using errcode = 'foreign_key_violation',
                hint = 'Every row of public.price_history names an existing issuer, and a trade '
                'when transaction_id is set.';
    end if;
    return null;
end;
$$;

comment on function pauv.check_tick_references() is
'Statement trigger on public.price_history (insert, update): every new row names an existing '
'issuer and, when transaction_id is set, trade, locked FOR KEY SHARE until commit, as the '
'foreign keys it replaces did.';

-- Transition tables need one trigger per event.
create trigger transactions_check_references_on_insert
after insert on public.transactions
referencing new table as new_trades
for each statement execute function pauv.check_trade_references();

create trigger transactions_check_references_on_update
after update on public.transactions
referencing new table as new_trades
for each statement execute function pauv.check_trade_references();

create trigger price_history_check_references_on_insert
after insert on public.price_history
referencing new table as new_ticks
for each statement execute function pauv.check_tick_references();

create trigger price_history_check_references_on_update
after update on public.price_history
referencing new table as new_ticks
for each statement execute function pauv.check_tick_references();

-- A BEFORE row trigger runs once the row to delete or update is locked, so it waits for a
-- writer whose check locked the row and then sees that writer's committed history.
-- Deletes and key changes of these rows are rare (an account or issuer removed by hand).
create function pauv.refuse_orphaning_trade_history()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    -- The key of the row, read by name: one function serves three tables.
    v_key text := pg_catalog.to_jsonb(old) ->> case tg_table_name
        when 'users' then 'user_id' when 'issuer_trading' then 'ticker' else 'id'
    end;
    v_named boolean;
begin
    if tg_table_name = 'users' then
        v_named := exists (select from public.transactions as x where x.user_id = v_key::uuid);
    elsif tg_table_name = 'issuer_trading' then
        v_named := exists (select from public.transactions as x where x.ticker = v_key)
            or exists (select from public.price_history as h where h.ticker = v_key);
    else
        v_named := exists (
            select from public.price_history as h where h.transaction_id = v_key::bigint
        );
    end if;
    if v_named then
        raise exception 'cannot % % %: the trade history names it',
            pg_catalog.lower(tg_op),
            case tg_table_name when 'users' then 'user' when 'issuer_trading' then 'issuer'
                else 'trade' end,
            v_key
            using errcode = 'foreign_key_violation',
                hint = 'Trades and price ticks are kept for good, with the users, issuers and '
                'trades they name.';
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end;
$$;

comment on function pauv.refuse_orphaning_trade_history() is
'Row trigger: refuses to delete, or change the key of, a user, issuer or trade that the trade '
'history names (23503), as the foreign keys it replaces did.';

create trigger users_keep_trade_history
before delete on public.users
for each row execute function pauv.refuse_orphaning_trade_history();

create trigger users_keep_trade_history_key
before update of user_id on public.users
for each row when (old.user_id is distinct from new.user_id)
execute function pauv.refuse_orphaning_trade_history();

create trigger issuer_trading_keep_trade_history
before delete on public.issuer_trading
for each row execute function pauv.refuse_orphaning_trade_history();

create trigger issuer_trading_keep_trade_history_key
before update of ticker on public.issuer_trading
for each row when (old.ticker is distinct from new.ticker)
execute function pauv.refuse_orphaning_trade_history();

create trigger transactions_keep_trade_history
before delete on public.transactions
for each row execute function pauv.refuse_orphaning_trade_history();

create trigger transactions_keep_trade_history_key
before update of id on public.transactions
for each row when (old.id is distinct from new.id)
execute function pauv.refuse_orphaning_trade_history();
