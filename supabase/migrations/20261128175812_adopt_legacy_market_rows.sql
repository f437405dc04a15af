-- Adoption, last step (only when an earlier step moved the Pauv app's market to schema
-- pauv_legacy): convert every legacy row into this package's tables, rounding in the pool's
-- favour and recording each change, then carry the app's own triggers and foreign keys over.
-- Exact: multiplying by 10^-k never rounds, a numeric division may.
create function pauv.round_up(p_value numeric, p_places integer)
returns numeric
language sql
immutable
set search_path = ''
as $$
    select pg_catalog.round(
        pg_catalog.ceil(p_value * pg_catalog.power(10::numeric, p_places))
        * pg_catalog.power(10::numeric, -p_places),
        p_places
    )
$$;

comment on function pauv.round_up(numeric, integer) is
'p_value rounded up (towards +infinity) to p_places decimals, exactly (adoption only).';

create function pauv.adopt_legacy_market()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_row record;
    v_summary jsonb;
begin
    -- Readers wait for the converted market instead of seeing it half-filled.
    lock table public.users, public.issuer_details, public.issuer_trading, public.portfolio,
        public.queue, public.transactions, public.price_history, public.issuer_stats_cache,
        pauv.usdp_movements
        in access exclusive mode;
    -- The intake triggers (FIFO stamp, webhook) are for new orders, not adopted history.
    alter table public.queue disable trigger user;

    insert into public.issuer_details (
        id, ticker, name, bio, headline, tag, photo, user_id, is_hidden, created_at, updated_at
    )
    select
        d.id, d.ticker, d.name, d.bio, d.headline, d.tag, d.photo, d.user_id, d.is_hidden,
        coalesce(d.created_at, pg_catalog.now()), coalesce(d.updated_at, d.created_at, pg_catalog.now())
    from pauv_legacy.issuer_details as d;

    -- Users: balances rounded down to 6 decimals (never credit money that was not there);
    -- accounts the legacy trigger missed get a row with balance 0.
    create temporary table adopt_users on commit drop as
    select
        u.user_id, u.id, u.username, u.terms_accepted_at,
        u.usdp_balance as legacy_balance,
        pg_catalog.trunc(u.usdp_balance, 6) as balance,
        coalesce(u.created_at, pg_catalog.now()) as created_at,
        coalesce(u.updated_at, u.created_at, pg_catalog.now()) as updated_at
    from pauv_legacy.users as u;

    insert into public.users (user_id, id, username, usdp_balance, terms_accepted_at,
        created_at, updated_at)
    select a.user_id, a.id, a.username, a.balance, a.terms_accepted_at, a.created_at, a.updated_at
    from adopt_users as a;

    insert into pauv.adoption_adjustments (subject, user_id, column_name, before_value,
        after_value, reason)
    select 'user', a.user_id, 'usdp_balance', a.legacy_balance, a.balance,
        'more than 6 decimals: rounded down'
    from adopt_users as a
    where a.balance <> a.legacy_balance;

    with created as (
        insert into public.users (user_id)
        select au.id from auth.users as au
        where not exists (select from public.users as u where u.user_id = au.id)
        returning user_id
    )
    insert into pauv.adoption_adjustments (subject, user_id, column_name, before_value,
        after_value, reason)
    select 'user', c.user_id, 'usdp_balance', null, 0,
        'the account had no users row in the legacy database: created with balance 0'
    from created as c;

    insert into pauv.usdp_movements (user_id, amount, kind)
    select a.user_id, a.balance, 'opening_balance' from adopt_users as a where a.balance > 0;

    -- Holdings rounded down to 8 decimals; a closed position has no cost basis.
    create temporary table adopt_holdings on commit drop as
    select
        p.id, p.user_id, p.ticker, p.pv_amount as legacy_pv, p.avg_cost_basis as legacy_basis,
        pg_catalog.trunc(p.pv_amount, 8) as pv,
        case when pg_catalog.trunc(p.pv_amount, 8) = 0 then 0
            else pg_catalog.round(p.avg_cost_basis, 12) end as basis,
        coalesce(p.created_at, pg_catalog.now()) as created_at,
        coalesce(p.updated_at, p.created_at, pg_catalog.now()) as updated_at
    from pauv_legacy.portfolio as p;

    -- Supply is what the holders hold (legacy supply drifted under overlapping
    -- processors); the pool, rounded up to 6 decimals, must cover buying back that supply,
    -- else it is topped up to the curve value. What it holds beyond that stays its surplus.
    insert into pauv.adopted_pools (ticker, legacy_supply, legacy_pool, supply, pool,
        curve_value, surplus)
    select c.ticker, c.current_supply, c.total_usdp, c.supply, p.pool, c.curve_value,
        p.pool - c.curve_value
    from (
        select
            t.ticker, t.current_supply, t.total_usdp, h.supply,
            t.base_price * h.supply + 0.5 * t.price_step * h.supply * h.supply as curve_value
        from pauv_legacy.issuer_trading as t
        cross join lateral (
            select coalesce(sum(a.pv), 0) as supply from adopt_holdings as a
            where a.ticker = t.ticker
        ) as h
    ) as c
    cross join lateral (
        select pauv.round_up(greatest(c.total_usdp, c.curve_value), 6) as pool
    ) as p;

    insert into public.issuer_trading (ticker, id, base_price, price_step, current_supply,
        total_usdp, created_at, updated_at)
    select
        t.ticker, t.id, t.base_price, t.price_step, a.supply, a.pool,
        coalesce(t.created_at, pg_catalog.now()), coalesce(t.updated_at, t.created_at, pg_catalog.now())
    from pauv_legacy.issuer_trading as t
    inner join pauv.adopted_pools as a on t.ticker = a.ticker;

    insert into pauv.adoption_adjustments (subject, ticker, column_name, before_value,
        after_value, reason)
    select 'issuer', a.ticker, 'current_supply', a.legacy_supply, a.supply,
        case when pg_catalog.trunc(a.legacy_supply, 8) = a.supply
            then 'more than 8 decimals: set to the sum of the holdings'
            else pg_catalog.format('the legacy supply disagreed with the holdings by %s PV '
                '(lost updates of overlapping processors): set to the sum of the holdings',
                a.legacy_supply - a.supply)
        end
    from pauv.adopted_pools as a where a.supply <> a.legacy_supply
    union all
    select 'issuer', a.ticker, 'total_usdp', a.legacy_pool, a.pool,
        case when a.legacy_pool < a.curve_value
            then pg_catalog.format('the pool was %s USDP below the curve value %s of the '
                'supply: topped up so every token can be sold back', a.curve_value - a.legacy_pool,
                a.curve_value)
            else 'more than 6 decimals: rounded up'
        end
    from pauv.adopted_pools as a where a.pool <> a.legacy_pool
    union all
    select 'issuer', t.ticker, 'current_price', t.current_price, n.current_price,
        'the price follows the adopted supply: base_price + price_step * current_supply'
    from pauv_legacy.issuer_trading as t
    inner join public.issuer_trading as n on t.ticker = n.ticker
    where n.current_price <> t.current_price;

    insert into pauv.usdp_movements (ticker, amount, kind)
    select a.ticker, a.pool, 'opening_pool' from pauv.adopted_pools as a where a.pool > 0;

    insert into public.portfolio (id, user_id, ticker, pv_amount, avg_cost_basis,
        created_at, updated_at)
    select a.id, a.user_id, a.ticker, a.pv, a.basis, a.created_at, a.updated_at
    from adopt_holdings as a;

    insert into pauv.adoption_adjustments (subject, user_id, ticker, column_name,
        before_value, after_value, reason)
    select 'holding', a.user_id, a.ticker, 'pv_amount', a.legacy_pv, a.pv,
        'more than 8 decimals: rounded down'
    from adopt_holdings as a where a.pv <> a.legacy_pv;

    insert into pauv.adoption_adjustments (subject, ticker, column_name, before_value,
        after_value, rows_changed, reason)
    select 'holding', a.ticker, 'avg_cost_basis', sum(a.legacy_basis), sum(a.basis), count(*),
        'rounded to 12 decimals, 0 on a closed position (sums over the rows changed)'
    from adopt_holdings as a where a.basis <> a.legacy_basis
    group by a.ticker;

    -- Orders keep their FIFO order: new ids follow (date, created_at, legacy id). Pending
    -- amounts are rounded down (never spend more than asked), finished ones up (history).
    create temporary table adopt_orders on commit drop as
    select
        q.*,
        pg_catalog.row_number() over (order by q.date, q.created_at, q.id)
        + coalesce((select max(n.id) from public.queue as n), 0) as new_id,
        case when q.order_type::text = 'buy' then
            case when q.status::text = 'pending' then pg_catalog.trunc(q.amount_usdp, 6)
                else pauv.round_up(q.amount_usdp, 6) end
            else q.amount_usdp end as usdp,
        case when q.order_type::text = 'sell' then
            case when q.status::text = 'pending' then pg_catalog.trunc(q.amount_pv, 8)
                else pauv.round_up(q.amount_pv, 8) end
            else q.amount_pv end as pv
    from pauv_legacy.queue as q;

    insert into public.queue (
        id, legacy_id, user_id, ticker, order_type, amount_usdp, amount_pv, status, date,
        error_message, processed_at, created_at, updated_at
    )
overriding system value
    select
        o.new_id, o.id, o.user_id, o.ticker, o.order_type::text, o.usdp, o.pv, o.status::text,
        o.date,
        case when o.status::text = 'failed'
            then 'failed before the adoption (the legacy processor recorded no reason)' end,
        case when o.status::text <> 'pending' then coalesce(o.updated_at, o.date) end,
        coalesce(o.created_at, o.date), coalesce(o.updated_at, o.created_at, o.date)
    from adopt_orders as o
    order by o.new_id;

    insert into pauv.adoption_adjustments (subject, user_id, ticker, order_id, column_name,
        before_value, after_value, reason)
    select 'order', o.user_id, o.ticker, o.new_id,
        case when o.order_type::text = 'buy' then 'amount_usdp' else 'amount_pv' end,
        case when o.order_type::text = 'buy' then o.amount_usdp else o.amount_pv end,
        case when o.order_type::text = 'buy' then o.usdp else o.pv end,
        'pending order with more decimals than its side allows: rounded down'
    from adopt_orders as o
    where o.status::text = 'pending' and (o.usdp, o.pv) is distinct from (o.amount_usdp, o.amount_pv);

    insert into pauv.adoption_adjustments (subject, ticker, column_name, before_value,
        after_value, rows_changed, reason)
    select 'order', o.ticker, c.column_name, sum(c.before_value), sum(c.after_value), count(*),
        'finished order with more decimals than its side allows: rounded up (sums over the '
        'rows changed)'
    from adopt_orders as o
    cross join lateral (
        values ('amount_usdp', o.amount_usdp, o.usdp), ('amount_pv', o.amount_pv, o.pv)
    ) as c (column_name, before_value, after_value)
    where o.status::text <> 'pending' and c.after_value <> c.before_value
    group by o.ticker, c.column_name;

    perform pg_catalog.setval(
        pg_catalog.pg_get_serial_sequence('public.queue', 'id'),
        greatest((select max(q.id) from public.queue as q), 1)
    );

    -- Trades: history, kept in their order; amounts rounded up to the scale (never 0),
    -- prices to the 14 decimals a curve price can have.
    create temporary table adopt_trades on commit drop as
    select
        x.*,
        pg_catalog.row_number() over (order by x.date, x.created_at, x.id) as new_id,
        pauv.round_up(x.amount_usdp, 6) as usdp,
        pauv.round_up(x.pv_traded, 8) as pv,
        pauv.round_up(x.avg_price_paid, 12) as avg_price,
        pg_catalog.round(x.start_price, 14) as start_p,
        pg_catalog.round(x.end_price, 14) as end_p
    from pauv_legacy.transactions as x;

    insert into public.transactions (
        id, legacy_id, user_id, amount_usdp, ticker, order_type, status, avg_price_paid,
        pv_traded, start_price, end_price, date, queue_id, created_at
    )
overriding system value
    select
        x.new_id + coalesce((select max(n.id) from public.transactions as n), 0), x.id,
        x.user_id, x.usdp, x.ticker, x.order_type::text, 'completed', x.avg_price, x.pv,
        x.start_p, x.end_p, x.date, o.new_id, coalesce(x.created_at, x.date)
    from adopt_trades as x
    left join adopt_orders as o on x.queue_id = o.id
    order by x.new_id;

    insert into pauv.adoption_adjustments (subject, ticker, column_name, before_value,
        after_value, rows_changed, reason)
    select 'trades', x.ticker, c.column_name, sum(c.before_value), sum(c.after_value), count(*),
        'history rounded to the column''s scale (sums over the rows changed; every legacy row '
        'stays in pauv_legacy.transactions)'
    from adopt_trades as x
    cross join lateral (
        values
        ('amount_usdp', x.amount_usdp, x.usdp), ('pv_traded', x.pv_traded, x.pv),
        ('avg_price_paid', x.avg_price_paid, x.avg_price),
        ('start_price', x.start_price, x.start_p), ('end_price', x.end_price, x.end_p)
    ) as c (column_name, before_value, after_value)
    where c.after_value <> c.before_value
    group by x.ticker, c.column_name;

    perform pg_catalog.setval(
        pg_catalog.pg_get_serial_sequence('public.transactions', 'id'),
        greatest((select max(x.id) from public.transactions as x), 1)
    );

    -- Ticks keep their ids; they were never linked to a trade.
    insert into public.price_history (id, ticker, price, supply, timestamp)
overriding system value
    select h.id, h.ticker, pg_catalog.round(h.price, 14), pg_catalog.round(h.supply, 8), h.timestamp
    from pauv_legacy.price_history as h
    order by h.id;

    insert into pauv.adoption_adjustments (subject, ticker, column_name, before_value,
        after_value, rows_changed, reason)
    select 'ticks', h.ticker, c.column_name, sum(c.before_value), sum(c.after_value), count(*),
        'history rounded to the column''s scale (sums over the rows changed; every legacy row '
        'stays in pauv_legacy.price_history)'
    from pauv_legacy.price_history as h
    cross join lateral (
        values ('price', h.price, pg_catalog.round(h.price, 14)),
        ('supply', h.supply, pg_catalog.round(h.supply, 8))
    ) as c (column_name, before_value, after_value)
    where c.after_value <> c.before_value
    group by h.ticker, c.column_name;

    perform pg_catalog.setval(
        pg_catalog.pg_get_serial_sequence('public.price_history', 'id'),
        greatest((select max(h.id) from public.price_history as h), 1)
    );

    alter table public.queue enable trigger user;

    -- The app's own triggers on its tables (waitlist on sign-up, issuer links, ...) move to
    -- the adopted tables; the archive keeps none.
    for v_row in
        select tg.oid, tg.tgname, c.relname, pg_catalog.pg_get_triggerdef(tg.oid) as def
        from pg_catalog.pg_trigger as tg
        inner join pg_catalog.pg_class as c on tg.tgrelid = c.oid
        where c.relnamespace = 'pauv_legacy'::regnamespace and not tg.tgisinternal
    loop
        execute pg_catalog.replace(v_row.def, ' ON pauv_legacy.', ' ON public.');
        execute pg_catalog.format('drop trigger %I on pauv_legacy.%I', v_row.tgname, v_row.relname);
    end loop;

    -- Other tables' foreign keys into the market (issuer_links, issuer_invites, ...) point
    -- at the adopted tables again.
    for v_row in
        select k.conname, k.conrelid::regclass as rel, pg_catalog.pg_get_constraintdef(k.oid) as def
        from pg_catalog.pg_constraint as k
        inner join pg_catalog.pg_class as c on k.confrelid = c.oid
        inner join pg_catalog.pg_class as r on k.conrelid = r.oid
        where k.contype = 'f' and c.relnamespace = 'pauv_legacy'::regnamespace
            and r.relnamespace <> 'pauv_legacy'::regnamespace
    loop
        execute pg_catalog.format('alter table %s drop constraint %I', v_row.rel, v_row.conname);
        execute pg_catalog.format('alter table %s add constraint %I %s', v_row.rel, v_row.conname,
            pg_catalog.replace(v_row.def, 'REFERENCES pauv_legacy.', 'REFERENCES public.'));
    end loop;

    -- Realtime: the app's issuer_trading stays published (the archive leaves the
    -- publication); transactions is not re-added, as every trade would then be re-checked
    -- against RLS for every subscriber (docs/adoption.md).
    if exists (select from pg_catalog.pg_publication as p where p.pubname = 'supabase_realtime') then
        begin
            for v_row in
                select pt.tablename from pg_catalog.pg_publication_tables as pt
                where pt.pubname = 'supabase_realtime' and pt.schemaname = 'pauv_legacy'
            loop
                execute pg_catalog.format(
                    'alter publication supabase_realtime drop table pauv_legacy.%I', v_row.tablename
                );
                if v_row.tablename = 'issuer_trading' then
                    alter publication supabase_realtime add table public.issuer_trading;
                end if;
            end loop;
        exception when insufficient_privilege then
            raise warning 'could not update the supabase_realtime publication: %', sqlerrm
                using hint = 'As the publication''s owner run: alter publication supabase_realtime '
                'drop table pauv_legacy.issuer_trading, pauv_legacy.transactions; alter '
                'publication supabase_realtime add table public.issuer_trading;';
        end;
    end if;

    perform public.refresh_issuer_stats_cache();

    v_summary := pg_catalog.jsonb_build_object(
        'users', (select count(*) from public.users),
        'issuers', (select count(*) from public.issuer_trading),
        'holdings', (select count(*) from public.portfolio),
        'orders', (select count(*) from public.queue),
        'pending_orders', (select count(*) from public.queue as q where q.status = 'pending'),
        'trades', (select count(*) from public.transactions),
        'ticks', (select count(*) from public.price_history),
        'adjustments', (select count(*) from pauv.adoption_adjustments)
    );
    update pauv.legacy_adoption set adopted_at = pg_catalog.now(), summary = v_summary;
    return v_summary;
end;
$$;

comment on function pauv.adopt_legacy_market() is
'Adoption''s conversion of the legacy market in schema pauv_legacy into the package''s '
'tables (run once by its migration, then dropped).';

do $$
declare
    v_summary jsonb;
begin
    if exists (select from pauv.legacy_adoption as a where a.adopted_at is null) then
        v_summary := pauv.adopt_legacy_market();
        raise notice 'Pauv market adopted: %', v_summary;
    end if;
end;
$$;

drop function pauv.adopt_legacy_market();
drop function pauv.round_up(numeric, integer);
-- Only adoption needed these (they read the legacy tables' shape).
drop function pauv.legacy_adoption_problems();
drop function pauv.market_origin();
