-- Adopting the Pauv app's live database in place starts here, before any other migration
-- changes anything: on a database whose market tables the Pauv app made, refuse with every
-- row that could not be converted (the migration then rolls back whole); elsewhere, nothing.
create schema if not exists pauv;

-- 'none': no market tables yet (a fresh project); 'package': this package made them;
-- 'legacy': the Pauv app's own migrations made them (see docs/adoption.md).
create function pauv.market_origin()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_ours boolean := false;
begin
    if pg_catalog.to_regclass('public.issuer_details') is null then
        return 'none';
    end if;
    if pg_catalog.to_regclass('supabase_migrations.schema_migrations') is not null then
        execute 'select exists (select from supabase_migrations.schema_migrations '
            'where version = ''20261128120300'')'
        into v_ours;
    end if;
    return case when v_ours then 'package' else 'legacy' end;
end;
$$;

comment on function pauv.market_origin() is
'Who made the market tables: none (fresh project), package (these migrations) or legacy '
'(the Pauv app''s own migrations, adopted in place). Dropped once the adoption is done.';

-- Every reason the adoption could not convert the legacy market, one row per kind of
-- problem, with up to five example rows and what the operator should do.
create function pauv.legacy_adoption_problems()
returns table (problem text, rows_found bigint, examples text, what_to_do text)
language plpgsql
stable
set search_path = ''
as $$
begin
    return query
    with expected (table_name, column_name, data_type) as (
        values
        ('issuer_details', 'id', 'uuid'), ('issuer_details', 'name', 'text'),
        ('issuer_details', 'ticker', 'text'), ('issuer_details', 'bio', 'text'),
        ('issuer_details', 'headline', 'text'), ('issuer_details', 'tag', 'text'),
        ('issuer_details', 'photo', 'text'),
        ('issuer_details', 'created_at', 'timestamp with time zone'),
        ('issuer_details', 'updated_at', 'timestamp with time zone'),
        ('issuer_details', 'user_id', 'uuid'), ('issuer_details', 'is_hidden', 'boolean'),
        ('issuer_trading', 'id', 'uuid'), ('issuer_trading', 'ticker', 'text'),
        ('issuer_trading', 'current_supply', 'numeric'),
        ('issuer_trading', 'base_price', 'numeric'),
        ('issuer_trading', 'price_step', 'numeric'),
        ('issuer_trading', 'current_price', 'numeric'),
        ('issuer_trading', 'total_usdp', 'numeric'),
        ('issuer_trading', 'created_at', 'timestamp with time zone'),
        ('issuer_trading', 'updated_at', 'timestamp with time zone'),
        ('users', 'id', 'uuid'), ('users', 'user_id', 'uuid'), ('users', 'username', 'text'),
        ('users', 'usdp_balance', 'numeric'),
        ('users', 'created_at', 'timestamp with time zone'),
        ('users', 'updated_at', 'timestamp with time zone'),
        ('users', 'terms_accepted_at', 'timestamp with time zone'),
        ('portfolio', 'id', 'uuid'), ('portfolio', 'user_id', 'uuid'),
        ('portfolio', 'ticker', 'text'), ('portfolio', 'pv_amount', 'numeric'),
        ('portfolio', 'avg_cost_basis', 'numeric'),
        ('portfolio', 'created_at', 'timestamp with time zone'),
        ('portfolio', 'updated_at', 'timestamp with time zone'),
        ('queue', 'id', 'uuid'), ('queue', 'user_id', 'uuid'), ('queue', 'amount_usdp', 'numeric'),
        ('queue', 'amount_pv', 'numeric'), ('queue', 'ticker', 'text'),
        ('queue', 'order_type', 'public.order_type'), ('queue', 'status', 'public.queue_status'),
        ('queue', 'date', 'timestamp with time zone'),
        ('queue', 'created_at', 'timestamp with time zone'),
        ('queue', 'updated_at', 'timestamp with time zone'),
        ('transactions', 'id', 'uuid'), ('transactions', 'user_id', 'uuid'),
        ('transactions', 'amount_usdp', 'numeric'), ('transactions', 'ticker', 'text'),
        ('transactions', 'order_type', 'public.order_type'),
        ('transactions', 'status', 'public.transaction_status'),
        ('transactions', 'avg_price_paid', 'numeric'), ('transactions', 'pv_traded', 'numeric'),
        ('transactions', 'start_price', 'numeric'), ('transactions', 'end_price', 'numeric'),
        ('transactions', 'date', 'timestamp with time zone'),
        ('transactions', 'queue_id', 'uuid'),
        ('transactions', 'created_at', 'timestamp with time zone'),
        ('transactions', 'updated_at', 'timestamp with time zone'),
        ('price_history', 'id', 'bigint'), ('price_history', 'ticker', 'text'),
        ('price_history', 'price', 'numeric'), ('price_history', 'supply', 'numeric'),
        ('price_history', 'timestamp', 'timestamp with time zone'),
        ('issuer_stats_cache', 'id', 'uuid'), ('issuer_stats_cache', 'ticker', 'text'),
        ('issuer_stats_cache', 'current_price', 'numeric'),
        ('issuer_stats_cache', 'price_1h_change', 'numeric'),
        ('issuer_stats_cache', 'price_24h_change', 'numeric'),
        ('issuer_stats_cache', 'price_7d_change', 'numeric'),
        ('issuer_stats_cache', 'volume_24h', 'numeric'),
        ('issuer_stats_cache', 'holders', 'integer'),
        ('issuer_stats_cache', 'market_cap', 'numeric'),
        ('issuer_stats_cache', 'circulating_supply', 'numeric'),
        ('issuer_stats_cache', 'cached_at', 'timestamp with time zone')
    ),

    actual as (
        select c.relname::text as table_name, a.attname::text as column_name,
            pg_catalog.format_type(a.atttypid, a.atttypmod) as data_type
        from pg_catalog.pg_attribute as a
        inner join pg_catalog.pg_class as c on a.attrelid = c.oid
        where c.relnamespace = 'public'::regnamespace and a.attnum > 0 and not a.attisdropped
            and c.relname in (select distinct e.table_name from expected as e)
    )

    select 'a market table is missing or is not a table'::text, 1::bigint, t.t,
        'adoption knows the Pauv app''s schema (docs/adoption.md); restore the table or '
        'adopt by hand'::text
    from pg_catalog.unnest(array['issuer_trading', 'users', 'portfolio', 'queue',
        'transactions', 'price_history']) as t (t)
    where pg_catalog.to_regclass('public.' || t.t) is null
    union all
    select 'unknown column or column type on a market table', count(*),
        pg_catalog.string_agg(
            pg_catalog.format('%s.%s %s', x.table_name, x.column_name, x.data_type), ', '
        ),
        'these columns are not in the Pauv app''s schema, so their data would not be carried '
        'over: move the data elsewhere and drop the columns, then push again'
    from actual as x
    where not exists (
        select from expected as e
        where (e.table_name, e.column_name, e.data_type)
        = (x.table_name, x.column_name, x.data_type)
    )
    having count(*) > 0
    union all
    select 'a foreign key of another table points into the market tables other than at '
        'issuer_details (ticker) or (id)', count(*),
        pg_catalog.string_agg(k.conrelid::regclass::text || ' ' || k.conname, ', '),
        'drop the constraint before adopting and re-create it afterwards'
    from pg_catalog.pg_constraint as k
    where k.contype = 'f'
        and k.confrelid in (select pg_catalog.to_regclass('public.' || e.table_name)
            from expected as e)
        and k.conrelid not in (select pg_catalog.to_regclass('public.' || e.table_name)
            from expected as e)
        and not (k.confrelid = 'public.issuer_details'::regclass
            and pg_catalog.array_length(k.confkey, 1) = 1
            and (
                select a.attname from pg_catalog.pg_attribute as a
                where a.attrelid = k.confrelid and a.attnum = k.confkey[1]
            ) in ('ticker', 'id'))
    having count(*) > 0
    union all
    select 'a view reads a market table', count(distinct v.oid),
        pg_catalog.string_agg(distinct v.oid::regclass::text, ', '),
        'the market tables are rebuilt: drop the view before adopting and re-create it after'
    from pg_catalog.pg_depend as d
    inner join pg_catalog.pg_rewrite as r on d.objid = r.oid
    inner join pg_catalog.pg_class as v on r.ev_class = v.oid
    where d.classid = 'pg_rewrite'::regclass
        and d.refobjid in (select pg_catalog.to_regclass('public.' || e.table_name)
            from expected as e)
        and v.oid <> d.refobjid
    having count(distinct v.oid) > 0;

    -- The data checks read the columns checked above: only when the shape is known.
    if found then
        return;
    end if;

    return query
    with bad (problem, row_key, what_to_do) as (
        select 'an order is being processed (status processing)', 'queue ' || q.id::text,
            'a legacy processor is running: stop the app''s queue processing until no order '
            'is processing, then push again'
        from public.queue as q where q.status::text = 'processing'
        union all
        select 'ticker is not 1-12 upper-case letters or digits', 'issuer_details ' || d.ticker,
            'rename the ticker (issuer_details and every row of it) or delete the issuer'
        from public.issuer_details as d where d.ticker !~ '^[A-Z0-9]{1,12}$'
        union all
        select 'issuer name is blank', 'issuer_details ' || d.ticker, 'give the issuer a name'
        from public.issuer_details as d where pg_catalog.btrim(d.name) = ''
        union all
        select 'base_price and price_step must be > 0 with at most 6 decimals',
            'issuer_trading ' || t.ticker,
            'set base_price / price_step to the curve the issuer really trades on'
        from public.issuer_trading as t
        where not (t.base_price > 0 and t.price_step > 0 and t.base_price < 1e15
            and t.price_step < 1e15 and t.base_price = pg_catalog.round(t.base_price, 6)
            and t.price_step = pg_catalog.round(t.price_step, 6))
        union all
        select 'supply or pool is negative or not below 1e15', 'issuer_trading ' || t.ticker,
            'correct current_supply / total_usdp by hand'
        from public.issuer_trading as t
        where not (t.current_supply between 0 and 1e15 and t.total_usdp between 0 and 1e15)
        union all
        select 'balance is not below 1e15', 'users ' || u.user_id::text,
            'correct the balance by hand'
        from public.users as u where u.usdp_balance >= 1e15
        union all
        select 'holding or cost basis out of range', 'portfolio ' || p.user_id::text || ' '
            || p.ticker, 'correct pv_amount / avg_cost_basis by hand'
        from public.portfolio as p
        where not (p.pv_amount between 0 and 1e15 and p.avg_cost_basis between 0 and 1e15)
        union all
        select 'rows of an issuer that is not listed (no issuer_trading row)',
            r.source || ' ' || r.ticker,
            'list the issuer (insert into issuer_trading) or delete these rows'
        from (
            select 'portfolio' as source, p.ticker from public.portfolio as p
            union
            select 'queue', q.ticker from public.queue as q
            union
            select 'transactions', x.ticker from public.transactions as x
            union
            select 'price_history', h.ticker from public.price_history as h
        ) as r
        where not exists (select from public.issuer_trading as t where t.ticker = r.ticker)
        union all
        select 'order amount invalid: the side''s amount must be > 0 and below 1e15 (pending '
            'orders: still > 0 at 6 decimals for USDP, 8 for PV), the other side''s 0 or null',
            'queue ' || q.id::text,
            'fail or delete the order (finished) or cancel it (pending)'
        from public.queue as q
        where case q.order_type::text
            when 'buy' then not (
                q.amount_usdp > 0 and q.amount_usdp < 1e15 and coalesce(q.amount_pv, 0) = 0
                and (q.status::text <> 'pending' or pg_catalog.trunc(q.amount_usdp, 6) > 0)
            )
            else not (
                q.amount_pv > 0 and q.amount_pv < 1e15 and coalesce(q.amount_usdp, 0) = 0
                and (q.status::text <> 'pending' or pg_catalog.trunc(q.amount_pv, 8) > 0)
            )
        end
        union all
        select 'trade is not a completed trade with positive amounts and prices',
            'transactions ' || x.id::text,
            'only completed trades can be adopted: delete or correct this row'
        from public.transactions as x
        where not (x.status::text = 'completed' and x.amount_usdp > 0 and x.pv_traded > 0
            and x.avg_price_paid > 0 and x.start_price > 0 and x.end_price > 0
            and x.amount_usdp < 1e15 and x.pv_traded < 1e15)
        union all
        select 'several trades for one order', 'queue ' || x.queue_id::text,
            'an order executes once: keep its real trade, set queue_id null on the others'
        from public.transactions as x
        where x.queue_id is not null
        group by x.queue_id
        having count(*) > 1
        union all
        select 'a trade of an order that is not completed, or a completed order without a trade',
            'queue ' || q.id::text,
            'set the order''s status to what really happened (completed with one trade, else '
            'failed without one)'
        from public.queue as q
        where (q.status::text = 'completed')
            <> exists (select from public.transactions as x where x.queue_id = q.id)
        union all
        select 'price tick with a price <= 0 or a negative supply',
            'price_history ' || h.id::text, 'delete the tick'
        from public.price_history as h
        where not (h.price > 0 and h.supply >= 0 and h.price < 1e15 and h.supply < 1e15)
    ),

    numbered as (
        select
            b.problem, b.row_key, b.what_to_do,
            pg_catalog.row_number() over (partition by b.problem order by b.row_key) as n
        from bad as b
    )

    select
        n.problem,
        count(*),
        pg_catalog.string_agg(n.row_key, ', ' order by n.row_key) filter (where n.n <= 5),
        n.what_to_do
    from numbered as n
    group by n.problem, n.what_to_do
    order by n.problem;
end;
$$;

comment on function pauv.legacy_adoption_problems() is
'Every reason the Pauv app''s market tables could not be adopted: one row per kind of '
'problem with a count, up to five example rows and what to do. No rows: adoptable.';

revoke all on function pauv.market_origin() from public;
revoke all on function pauv.legacy_adoption_problems() from public;

-- Refuse before anything changes. The CLI shows only an error's message, so the message
-- carries the problems and what to do; the whole migration (this schema too) rolls back.
do $$
declare
    v_report text;
begin
    if pauv.market_origin() <> 'legacy' then
        return;
    end if;
    select pg_catalog.string_agg(pg_catalog.format(
        E'\n- %s: %s row(s), e.g. %s. What to do: %s.',
        p.problem, p.rows_found, p.examples, p.what_to_do
    ), '')
    into v_report
    from pauv.legacy_adoption_problems() as p;
    if v_report is not null then
        raise exception 'Pauv adoption refused, nothing was changed. The existing market '
            'cannot be converted as it is:%', v_report || E'\nFix these rows, then run '
            'make adopt again (docs/adoption.md).'
            using errcode = 'check_violation';
    end if;
end;
$$;
