-- The holdings' two foreign keys (portfolio -> users and issuer_trading) are replaced by
-- checks that prove the same, as the trade history's were (20261129112933): each key queued
-- a trigger event and ran a lookup for every inserted holding, and a drain inserts one per
-- first buy of a user in a ticker. Without them a 100,000-order drain went from about
-- 12,900 to 14,200 orders/s (issue 15). What each key guaranteed, and what guarantees it now:
--   * an inserted holding names an existing user and issuer, locked against deletion until
--     commit: a statement trigger checks all the statement's new rows at once, with the
--     same FOR KEY SHARE lock;
--   * so does a holding whose user or ticker an update changes: a row trigger that fires only
--     for an UPDATE that sets those columns and changes them. The engine's updates of amounts
--     do not set them, so they pay nothing (a statement trigger with a transition table
--     cannot be limited to columns, and would check every updated holding);
--   * a user or issuer a holding names cannot be deleted, nor its key changed: a row
--     trigger on users and issuer_trading refuses it, with the same SQLSTATE (23503);
--   * what no trigger sees (TRUNCATE, triggers disabled): public.audit_market_invariants()
--     reports any orphan holding (next migration).

alter table public.portfolio
drop constraint portfolio_user_id_fkey,
drop constraint portfolio_ticker_fkey;

-- Users are now named by two tables, so their lookup becomes one helper, as the issuers'
-- is (pauv.first_missing_issuer, 20261129112933, whose comments say why SECURITY DEFINER,
-- why FOR KEY SHARE and why PL/pgSQL), and the trade check uses it too.
create function pauv.first_missing_user(p_users uuid[])
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    return (
        select n.user_id
        from (select distinct x.user_id from unnest(p_users) as x (user_id)) as n
        left join lateral (
            select true as found
            from public.users as u
            where u.user_id = n.user_id
            for key share
        ) as l on true
        where l.found is null
        limit 1
    );
end;
$$;

comment on function pauv.first_missing_user(uuid[]) is
'The first of the users with no public.users row, NULL when all exist; locks every '
'existing one FOR KEY SHARE until commit (a foreign key''s check, for a set of rows).';

-- Whole body restated from 20261129112933; the users' lookup is the helper above.
create or replace function pauv.check_trade_references()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_missing text := coalesce(
        'user ' || pauv.first_missing_user(array(select t.user_id from new_trades as t)),
        'issuer ' || pauv.first_missing_issuer(array(select t.ticker from new_trades as t))
    );
begin
    if v_missing is not null then
        raise exception 'a trade names % that does not exist', v_missing
            using errcode = 'foreign_key_violation',
                hint = 'Every row of public.transactions names an existing user and issuer.';
    end if;
    return null;
end;
$$;

-- The holdings' checks: every row of the statement (insert), or the row whose user or
-- ticker changes (update); the same message and SQLSTATE either way.
create function pauv.check_holding_references()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_missing text := coalesce(
        'user ' || pauv.first_missing_user(array(select h.user_id from new_holdings as h)),
        'issuer ' || pauv.first_missing_issuer(array(select h.ticker from new_holdings as h))
    );
begin
    if v_missing is not null then
        raise exception 'a holding names % that does not exist', v_missing
            using errcode = 'foreign_key_violation',
                hint = 'Every row of public.portfolio names an existing user and issuer.';
    end if;
    return null;
end;
$$;

comment on function pauv.check_holding_references() is
'Statement trigger on public.portfolio (insert): every new row names an existing user and '
'issuer, locked FOR KEY SHARE until commit, as the foreign keys it replaces did.';

create function pauv.check_holding_new_key()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_missing text := coalesce(
        'user ' || pauv.first_missing_user(array[new.user_id]),
        'issuer ' || pauv.first_missing_issuer(array[new.ticker])
    );
begin
    if v_missing is not null then
        raise exception 'a holding names % that does not exist', v_missing
            using errcode = 'foreign_key_violation',
                hint = 'Every row of public.portfolio names an existing user and issuer.';
    end if;
    return new;
end;
$$;

comment on function pauv.check_holding_new_key() is
'Row trigger on public.portfolio (an update that changes user_id or ticker): the new user '
'and issuer exist, locked FOR KEY SHARE until commit, as the foreign keys it replaces did.';

create trigger portfolio_check_references_on_insert
after insert on public.portfolio
referencing new table as new_holdings
for each statement execute function pauv.check_holding_references();

create trigger portfolio_check_references_on_new_key
before update of user_id, ticker on public.portfolio
for each row
when (old.user_id is distinct from new.user_id or old.ticker is distinct from new.ticker)
execute function pauv.check_holding_new_key();

-- A BEFORE row trigger runs once the row to delete or update is locked, so it waits for a
-- writer whose check locked the row and then sees that writer's committed holdings.
create function pauv.refuse_orphaning_holdings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    -- The key of the row, read by name: one function serves two tables.
    v_key text := pg_catalog.to_jsonb(old) ->> case tg_table_name
        when 'users' then 'user_id' else 'ticker'
    end;
    v_named boolean;
begin
    if tg_table_name = 'users' then
        v_named := exists (select from public.portfolio as p where p.user_id = v_key::uuid);
    else
        v_named := exists (select from public.portfolio as p where p.ticker = v_key);
    end if;
    if v_named then
        raise exception 'cannot % % %: a holding names it',
            pg_catalog.lower(tg_op),
            case tg_table_name when 'users' then 'user' else 'issuer' end,
            v_key
            using errcode = 'foreign_key_violation',
                hint = 'A user or issuer with holdings stays; a closed position is a holding of 0.';
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end;
$$;

comment on function pauv.refuse_orphaning_holdings() is
'Row trigger: refuses to delete, or change the key of, a user or issuer that a holding names '
'(23503), as the foreign keys it replaces did.';

-- Named to sort after the trade history's guards (triggers of an event fire in name order):
-- a user with trades is refused for its trades, as before.
create trigger users_keep_trade_holdings
before delete on public.users
for each row execute function pauv.refuse_orphaning_holdings();

create trigger users_keep_trade_holdings_key
before update of user_id on public.users
for each row when (old.user_id is distinct from new.user_id)
execute function pauv.refuse_orphaning_holdings();

create trigger issuer_trading_keep_trade_holdings
before delete on public.issuer_trading
for each row execute function pauv.refuse_orphaning_holdings();

create trigger issuer_trading_keep_trade_holdings_key
before update of ticker on public.issuer_trading
for each row when (old.ticker is distinct from new.ticker)
execute function pauv.refuse_orphaning_holdings();
