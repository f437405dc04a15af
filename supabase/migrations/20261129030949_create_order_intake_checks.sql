-- What an order must pass to enter the queue, shared by place_order and the direct INSERT
-- of the Pauv app's order API, so both paths give the same errors. The per-user intake lock
-- is a row each placement updates: under REPEATABLE READ or SERIALIZABLE an advisory lock
-- serialised placements but each still counted from a snapshot older than the orders it
-- waited for (16 racing placements all passed the 5-pending limit); updating a row makes
-- the later placement fail with 40001 instead, and under READ COMMITTED it simply waits.
create table pauv.order_intake_locks (
    user_id uuid primary key references public.users (user_id) on delete cascade,
    intakes bigint not null default 1
);

comment on table pauv.order_intake_locks is
'One row per user who placed an order; every placement updates it first, so placements of '
'one user are serial and none decides from a snapshot older than another''s commit.';
comment on column pauv.order_intake_locks.intakes is
'Placements so far (the update is the lock; the count is a by-product).';

revoke all on pauv.order_intake_locks from public, anon, authenticated, service_role;

-- Validates an order's own fields; returns the amount at its shortest scale (same value).
-- Messages show amounts trimmed too: a padded input must not make a 16 KB error.
create function pauv.check_order_input(p_ticker text, p_order_type text, p_amount numeric)
returns numeric
language plpgsql
stable
set search_path = ''
set enable_seqscan = off
as $$
begin
    if p_order_type is null or p_order_type not in ('buy', 'sell') then
        raise exception 'order_type must be ''buy'' or ''sell'', got %', coalesce(p_order_type, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount is null or p_amount = 'NaN' or p_amount in ('Infinity', '-Infinity') then
        raise exception 'amount must be a finite number, got %', coalesce(p_amount::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount < 0.01 or p_amount > 1000000 then
        raise exception 'amount must be between 0.01 and 1000000, got %', pg_catalog.trim_scale(p_amount)
            using errcode = 'invalid_parameter_value';
    end if;
    if p_order_type = 'buy' and p_amount <> round(p_amount, 6) then
        raise exception 'a buy amount is USDP with at most 6 decimals, got %',
            pg_catalog.trim_scale(p_amount)
            using errcode = 'invalid_parameter_value';
    end if;
    if p_order_type = 'sell' and p_amount <> round(p_amount, 8) then
        raise exception 'a sell amount is PV with at most 8 decimals, got %',
            pg_catalog.trim_scale(p_amount)
            using errcode = 'invalid_parameter_value';
    end if;
    if not exists (select from public.issuer_trading as t where t.ticker = p_ticker) then
        raise exception 'unknown ticker %', coalesce(p_ticker, 'null') using errcode = 'no_data_found';
    end if;
    return pg_catalog.trim_scale(p_amount);
end;
$$;

comment on function pauv.check_order_input(text, text, numeric) is
'Refuses a bad order type (22023), an amount that is not finite, outside 0.01..1000000 or '
'with more decimals than its side (22023), an unknown ticker (P0002); returns the amount at '
'its shortest scale.';

-- SECURITY DEFINER: the lock table is internal; direct inserts run as service_role.
create function pauv.lock_order_intake(p_user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- An update first: the common case, and a HOT update is cheaper than an upsert. A row
    -- exists only for a user who exists (it goes with the users row).
    update pauv.order_intake_locks as l set intakes = l.intakes + 1 where l.user_id = p_user_id;
    if not found then
        if not exists (select from public.users as u where u.user_id = p_user_id) then
            raise exception 'unknown user %: no account row', coalesce(p_user_id::text, 'null')
                using errcode = 'no_data_found';
        end if;
        insert into pauv.order_intake_locks as l (user_id) values (p_user_id)
        on conflict (user_id) do update set intakes = l.intakes + 1;
    end if;
end;
$$;

comment on function pauv.lock_order_intake(uuid) is
'Takes the user''s intake lock until commit (P0002 for an unknown user): placements of one '
'user are serial, and one deciding from a stale snapshot fails with 40001.';

-- Call with the user's intake lock held.
create function pauv.check_pending_order_limit(p_user_id uuid)
returns void
language plpgsql
stable
set search_path = ''
set enable_seqscan = off
as $$
begin
    if (
        select count(*) from public.queue as q
        where q.user_id = p_user_id and q.status = 'pending'
    ) >= 5 then
        raise exception 'at most 5 pending orders per user: cancel one or wait for it to execute'
            using errcode = 'PA003';
    end if;
end;
$$;

comment on function pauv.check_pending_order_limit(uuid) is
'Refuses (PA003) a user''s sixth pending order; call it holding pauv.lock_order_intake.';

-- place_order as before, its checks now the shared ones, under the intake lock row, and
-- the amount stored at its shortest scale.
create or replace function pauv.place_order(
    p_ticker text,
    p_order_type text,
    p_amount numeric,
    p_client_order_id text default null
)
returns public.queue
language plpgsql
security definer
set search_path = ''
set enable_seqscan = off
as $$
declare
    v_user_id uuid := auth.uid();
    v_amount numeric;
    v_order public.queue;
    v_held numeric;
    v_reserved numeric;
begin
    if v_user_id is null then
        raise exception 'sign in to place orders' using errcode = 'insufficient_privilege';
    end if;
    if p_client_order_id is not null and char_length(p_client_order_id) not between 1 and 64 then
        raise exception 'client_order_id must have 1 to 64 characters'
            using errcode = 'invalid_parameter_value';
    end if;
    v_amount := pauv.check_order_input(p_ticker, p_order_type, p_amount);

    -- Not the users row: the processor updates it, and placing must not wait for a whole
    -- processing batch.
    perform pauv.lock_order_intake(v_user_id);

    if p_client_order_id is not null then
        select q.* into v_order
        from public.queue as q
        where q.user_id = v_user_id and q.client_order_id = p_client_order_id;
        if found then
            return v_order;
        end if;
    end if;

    perform pauv.check_pending_order_limit(v_user_id);

    -- One statement, one snapshot: the processor moves an order out of 'pending' and its
    -- money in the same commit, so holdings net of pending orders stay consistent.
    select
        case
            when p_order_type = 'buy' then u.usdp_balance
            else coalesce((
                select p.pv_amount from public.portfolio as p
                where p.user_id = v_user_id and p.ticker = p_ticker
            ), 0)
        end,
        coalesce((
            select sum(case when p_order_type = 'buy' then q.amount_usdp else q.amount_pv end)
            from public.queue as q
            where
                q.user_id = v_user_id and q.status = 'pending' and q.order_type = p_order_type
                and (p_order_type = 'buy' or q.ticker = p_ticker)
        ), 0)
    into v_held, v_reserved
    from public.users as u
    where u.user_id = v_user_id;

    if p_order_type = 'buy' and v_held - v_reserved < v_amount then
        raise exception 'insufficient balance: % USDP available after pending buys, % requested',
            v_held - v_reserved, v_amount
            using errcode = 'PA001';
    end if;
    if p_order_type = 'sell' and v_held - v_reserved < v_amount then
        raise exception 'insufficient holdings: % % available after pending sells, % requested',
            v_held - v_reserved, p_ticker, v_amount
            using errcode = 'PA002';
    end if;

    insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv, client_order_id)
    values (
        v_user_id,
        p_ticker,
        p_order_type,
        case when p_order_type = 'buy' then v_amount end,
        case when p_order_type = 'sell' then v_amount end,
        p_client_order_id
    )
    returning * into v_order;
    return v_order;
end;
$$;

grant execute on function pauv.check_order_input(text, text, numeric) to service_role;
grant execute on function pauv.lock_order_intake(uuid) to service_role;
grant execute on function pauv.check_pending_order_limit(uuid) to service_role;
