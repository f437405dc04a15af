-- Row level security: which rows each API role sees. Two users with their own balances,
-- holdings, orders and trades; each sees only its own, anon and authenticated see all
-- market data, service_role sees everything.
begin;
select plan(30);

-- The policies, exactly: one SELECT policy per table, own rows or everything.
select is_empty(
    $$select c.oid::regclass::text from pg_class as c
      where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
        and not c.relrowsecurity
      order by 1$$,
    'RLS is enabled on every table in public'
);
select results_eq(
    $$select p.tablename::text collate "default", p.policyname::text collate "default",
             p.permissive, p.roles::text[] collate "default", p.cmd, p.qual collate "default",
             p.with_check collate "default"
      from pg_policies as p
      where p.schemaname = 'public'
        and p.tablename in (
            'issuer_details', 'issuer_trading', 'price_history', 'users', 'portfolio', 'queue',
            'transactions'
        )
      order by p.tablename, p.policyname$$,
    $$values
        ('issuer_details', 'issuer_details_readable_by_everyone', 'PERMISSIVE',
         array['anon', 'authenticated'], 'SELECT', 'true', null::text),
        ('issuer_trading', 'issuer_trading_readable_by_everyone', 'PERMISSIVE',
         array['anon', 'authenticated'], 'SELECT', 'true', null),
        ('portfolio', 'portfolio_select_own', 'PERMISSIVE',
         array['authenticated'], 'SELECT', '(user_id = ( SELECT auth.uid() AS uid))', null),
        ('price_history', 'price_history_readable_by_everyone', 'PERMISSIVE',
         array['anon', 'authenticated'], 'SELECT', 'true', null),
        ('queue', 'queue_select_own', 'PERMISSIVE',
         array['authenticated'], 'SELECT', '(user_id = ( SELECT auth.uid() AS uid))', null),
        ('transactions', 'transactions_select_own', 'PERMISSIVE',
         array['authenticated'], 'SELECT', '(user_id = ( SELECT auth.uid() AS uid))', null),
        ('users', 'users_select_own', 'PERMISSIVE',
         array['authenticated'], 'SELECT', '(user_id = ( SELECT auth.uid() AS uid))', null)$$,
    'the market tables have exactly one SELECT policy each: own rows, or all market data'
);

-- Two users, two issuers, and some of everything, written as the owner.
insert into auth.users (id, email) values
('a1111111-1111-4111-8111-111111111111', 'rls-ada@example.test'),
('b2222222-2222-4222-8222-222222222222', 'rls-bob@example.test');
select is(
    public.deposit_usdp('a1111111-1111-4111-8111-111111111111', 100), 100::numeric,
    'Ada signed up and got 100 USDP'
);
select is(
    public.deposit_usdp('b2222222-2222-4222-8222-222222222222', 50), 50::numeric,
    'Bob signed up and got 50 USDP'
);

insert into public.issuer_details (ticker, name) values ('RLSX', 'Rls X'), ('RLSY', 'Rls Y');
-- Supply and pool consistent with the holdings below: 15 X (pool >= 16.125), 2 Y (>= 2.02).
insert into public.issuer_trading (ticker, current_supply, total_usdp) values
('RLSX', 15, 16.125),
('RLSY', 2, 2.02);
insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis) values
('a1111111-1111-4111-8111-111111111111', 'RLSX', 10, 1.05),
('a1111111-1111-4111-8111-111111111111', 'RLSY', 2, 1.01),
('b2222222-2222-4222-8222-222222222222', 'RLSX', 5, 1.125);
insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv) values
('a1111111-1111-4111-8111-111111111111', 'RLSX', 'buy', 10, null),
('a1111111-1111-4111-8111-111111111111', 'RLSY', 'buy', 20, null),
('a1111111-1111-4111-8111-111111111111', 'RLSY', 'sell', null, 1),
('b2222222-2222-4222-8222-222222222222', 'RLSX', 'buy', 5, null);
insert into public.transactions (
    user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded, start_price, end_price
) values
('a1111111-1111-4111-8111-111111111111', 10.5, 'RLSX', 'buy', 1.05, 10, 1.00, 1.10),
('b2222222-2222-4222-8222-222222222222', 5.625, 'RLSX', 'buy', 1.125, 5, 1.10, 1.15),
('b2222222-2222-4222-8222-222222222222', 2.02, 'RLSY', 'buy', 1.01, 2, 1.00, 1.02);
insert into public.price_history (ticker, price, supply) values
('RLSX', 1.10, 10),
('RLSX', 1.15, 15),
('RLSY', 1.02, 2);

-- What the owner sees of the market data, to compare with what anon sees.
select set_config(
    'pauv_test.market_rows',
    format(
        '%s/%s/%s',
        (select count(*) from public.issuer_details),
        (select count(*) from public.issuer_trading),
        (select count(*) from public.price_history)
    ),
    true
);

-- Signed in as Ada.
set local role authenticated;
select set_config(
    'request.jwt.claims',
    '{"sub": "a1111111-1111-4111-8111-111111111111", "role": "authenticated"}',
    true
);

select results_eq(
    'select user_id, usdp_balance::numeric from public.users',
    $$values ('a1111111-1111-4111-8111-111111111111'::uuid, 100::numeric)$$,
    'Ada sees her users row only'
);
select results_eq(
    'select ticker, pv_amount::numeric, avg_cost_basis from public.portfolio order by ticker',
    $$values ('RLSX', 10::numeric, 1.05), ('RLSY', 2, 1.01)$$,
    'Ada sees her two holdings only'
);
select results_eq(
    $$select ticker, order_type, amount_usdp::numeric, amount_pv::numeric, status
      from public.queue
      order by id$$,
    $$values ('RLSX', 'buy', 10::numeric, null::numeric, 'pending'),
             ('RLSY', 'buy', 20, null, 'pending'),
             ('RLSY', 'sell', null, 1, 'pending')$$,
    'Ada sees her three orders only'
);
select results_eq(
    'select ticker, amount_usdp::numeric, pv_traded::numeric from public.transactions order by id',
    $$values ('RLSX', 10.5::numeric, 10::numeric)$$,
    'Ada sees her one trade only'
);
select is_empty(
    $$select 'users' from public.users
      where user_id = 'b2222222-2222-4222-8222-222222222222'
      union all
      select 'portfolio' from public.portfolio
      where user_id = 'b2222222-2222-4222-8222-222222222222'
      union all
      select 'queue' from public.queue where user_id = 'b2222222-2222-4222-8222-222222222222'
      union all
      select 'transactions' from public.transactions
      where user_id = 'b2222222-2222-4222-8222-222222222222'$$,
    'Ada gets none of Bob''s rows even when she asks for them by id'
);
select results_eq(
    $$select d.ticker, d.name, t.current_price, t.total_usdp::numeric
      from public.issuer_details as d
      join public.issuer_trading as t on t.ticker = d.ticker
      where d.ticker in ('RLSX', 'RLSY') order by d.ticker$$,
    $$values ('RLSX', 'Rls X', 1.15::numeric, 16.125::numeric),
             ('RLSY', 'Rls Y', 1.02, 2.02)$$,
    'Ada reads the issuers and their curve state'
);
select is(
    format(
        '%s/%s/%s',
        (select count(*) from public.issuer_details),
        (select count(*) from public.issuer_trading),
        (select count(*) from public.price_history)
    ),
    current_setting('pauv_test.market_rows'),
    'Ada sees every row of the market data (issuers, curves, price ticks)'
);

-- Signed in as Bob.
select set_config(
    'request.jwt.claims',
    '{"sub": "b2222222-2222-4222-8222-222222222222", "role": "authenticated"}',
    true
);

select results_eq(
    'select user_id, usdp_balance::numeric from public.users',
    $$values ('b2222222-2222-4222-8222-222222222222'::uuid, 50::numeric)$$,
    'Bob sees his users row only'
);
select results_eq(
    'select ticker, pv_amount::numeric, avg_cost_basis from public.portfolio order by ticker',
    $$values ('RLSX', 5::numeric, 1.125)$$,
    'Bob sees his one holding only'
);
select results_eq(
    'select ticker, order_type, amount_usdp::numeric from public.queue order by id',
    $$values ('RLSX', 'buy', 5::numeric)$$,
    'Bob sees his one order only'
);
select results_eq(
    'select ticker, amount_usdp::numeric, pv_traded::numeric from public.transactions order by id',
    $$values ('RLSX', 5.625::numeric, 5::numeric), ('RLSY', 2.02, 2)$$,
    'Bob sees his two trades only'
);
select is_empty(
    $$select 'users' from public.users
      where user_id = 'a1111111-1111-4111-8111-111111111111'
      union all
      select 'portfolio' from public.portfolio
      where user_id = 'a1111111-1111-4111-8111-111111111111'
      union all
      select 'queue' from public.queue where user_id = 'a1111111-1111-4111-8111-111111111111'
      union all
      select 'transactions' from public.transactions
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$,
    'Bob gets none of Ada''s rows even when he asks for them by id'
);

-- Signed in with a valid token whose user has no rows (or no sub at all): nothing private.
select set_config(
    'request.jwt.claims',
    '{"sub": "c3333333-3333-4333-8333-333333333333", "role": "authenticated"}',
    true
);
select is_empty(
    $$select 'users' from public.users union all select 'portfolio' from public.portfolio
      union all select 'queue' from public.queue
      union all select 'transactions' from public.transactions$$,
    'a user with no rows sees no private rows'
);
select set_config('request.jwt.claims', '{"role": "authenticated"}', true);
select is_empty(
    $$select 'users' from public.users union all select 'portfolio' from public.portfolio
      union all select 'queue' from public.queue
      union all select 'transactions' from public.transactions$$,
    'authenticated without a sub sees no private rows'
);
select is(
    (
        select count(*) from public.issuer_trading
        where ticker in ('RLSX', 'RLSY')
    ),
    2::bigint,
    'authenticated without a sub still reads market data'
);

-- Anonymous.
reset role;
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);

select results_eq(
    $$select d.ticker, d.name, t.current_price, t.current_supply::numeric, t.total_usdp::numeric
      from public.issuer_details as d
      join public.issuer_trading as t on t.ticker = d.ticker
      where d.ticker in ('RLSX', 'RLSY') order by d.ticker$$,
    $$values ('RLSX', 'Rls X', 1.15::numeric, 15::numeric, 16.125::numeric),
             ('RLSY', 'Rls Y', 1.02, 2, 2.02)$$,
    'anon reads the issuers and their curve state'
);
select results_eq(
    $$select ticker, price, supply::numeric from public.price_history
      where ticker in ('RLSX', 'RLSY') order by id$$,
    $$values ('RLSX', 1.10::numeric, 10::numeric), ('RLSX', 1.15, 15), ('RLSY', 1.02, 2)$$,
    'anon reads the price ticks'
);
select is(
    format(
        '%s/%s/%s',
        (select count(*) from public.issuer_details),
        (select count(*) from public.issuer_trading),
        (select count(*) from public.price_history)
    ),
    current_setting('pauv_test.market_rows'),
    'anon sees every row of the market data, as the owner does'
);
select throws_ok(
    'select count(*) from public.users', '42501', 'permission denied for table users',
    'anon cannot read users at all'
);
select throws_ok(
    'select count(*) from public.portfolio', '42501', 'permission denied for table portfolio',
    'anon cannot read portfolio at all'
);
select throws_ok(
    'select count(*) from public.queue', '42501', 'permission denied for table queue',
    'anon cannot read queue at all'
);
select throws_ok(
    'select count(*) from public.transactions', '42501',
    'permission denied for table transactions',
    'anon cannot read transactions at all'
);
-- A claims sub does not turn anon into a user: the policies are for authenticated only.
select set_config(
    'request.jwt.claims',
    '{"sub": "a1111111-1111-4111-8111-111111111111", "role": "anon"}',
    true
);
select throws_ok(
    'select count(*) from public.users', '42501', 'permission denied for table users',
    'anon with a forged sub still cannot read users'
);

-- The service role bypasses RLS: it sees every user's rows.
reset role;
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);

select results_eq(
    $$select u.user_id, u.usdp_balance::numeric from public.users as u
      where u.user_id in (
          'a1111111-1111-4111-8111-111111111111', 'b2222222-2222-4222-8222-222222222222'
      )
      order by u.user_id$$,
    $$values ('a1111111-1111-4111-8111-111111111111'::uuid, 100::numeric),
             ('b2222222-2222-4222-8222-222222222222'::uuid, 50::numeric)$$,
    'service_role sees both users'
);
select results_eq(
    $$select
          (select count(*) from public.portfolio where ticker in ('RLSX', 'RLSY')),
          (select count(*) from public.queue where ticker in ('RLSX', 'RLSY')),
          (select count(*) from public.transactions where ticker in ('RLSX', 'RLSY'))$$,
    $$values (3::bigint, 4::bigint, 3::bigint)$$,
    'service_role sees every holding, order and trade'
);
select is(
    format(
        '%s/%s/%s',
        (select count(*) from public.issuer_details),
        (select count(*) from public.issuer_trading),
        (select count(*) from public.price_history)
    ),
    current_setting('pauv_test.market_rows'),
    'service_role sees every row of the market data'
);


select finish();
rollback;
