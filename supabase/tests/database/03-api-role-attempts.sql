-- What actually happens when each API role tries to write: anon and authenticated are
-- refused (42501) on every table, money function, sequence and the pauv schema, even for
-- their own rows; service_role writes every table and moves money.
begin;
select plan(76);

-- A user with a balance, a holding, an order and a trade, so every write has a target;
-- and Bob, whose users row the service role will delete and insert again.
insert into auth.users (id, email) values
('a1111111-1111-4111-8111-111111111111', 'attempts-ada@example.test'),
('b2222222-2222-4222-8222-222222222222', 'attempts-bob@example.test');
select is(
    public.deposit_usdp('a1111111-1111-4111-8111-111111111111', 100), 100::numeric,
    'Ada signed up and got 100 USDP'
);
insert into public.issuer_details (ticker, name) values ('ATKX', 'Atk X');
insert into public.issuer_trading (ticker, current_supply, total_usdp) values ('ATKX', 10, 10.5);
insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis) values
('a1111111-1111-4111-8111-111111111111', 'ATKX', 10, 1.05);
insert into public.queue (user_id, ticker, order_type, amount_usdp) values
('a1111111-1111-4111-8111-111111111111', 'ATKX', 'buy', 10);
insert into public.transactions (
    user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded, start_price, end_price
) values
('a1111111-1111-4111-8111-111111111111', 10.5, 'ATKX', 'buy', 1.05, 10, 1.00, 1.10);
insert into public.price_history (ticker, price, supply) values ('ATKX', 1.10, 10);

-- Every write an API client could try on each table (insert, update, delete), each aimed
-- at Ada's rows or the ATKX market.
create temporary table write_attempt (
    id integer primary key,
    table_name text not null,
    verb text not null,
    attempt_sql text not null
) on commit drop;
grant select on write_attempt to anon, authenticated;

insert into write_attempt (id, table_name, verb, attempt_sql) values
(
    1, 'issuer_details', 'insert',
    $$insert into public.issuer_details (ticker, name) values ('ATKY', 'Atk Y')$$
),
(
    2, 'issuer_details', 'update',
    $$update public.issuer_details set name = 'Defaced' where ticker = 'ATKX'$$
),
(
    3, 'issuer_details', 'delete',
    $$delete from public.issuer_details where ticker = 'ATKX'$$
),
(
    4, 'issuer_trading', 'insert',
    $$insert into public.issuer_trading (ticker) values ('ATKX')$$
),
(
    5, 'issuer_trading', 'update',
    $$update public.issuer_trading set total_usdp = 1000000 where ticker = 'ATKX'$$
),
(
    6, 'issuer_trading', 'delete',
    $$delete from public.issuer_trading where ticker = 'ATKX'$$
),
(
    7, 'price_history', 'insert',
    $$insert into public.price_history (ticker, price, supply) values ('ATKX', 99, 10)$$
),
(
    8, 'price_history', 'update',
    $$update public.price_history set price = 99 where ticker = 'ATKX'$$
),
(
    9, 'price_history', 'delete',
    $$delete from public.price_history where ticker = 'ATKX'$$
),
(
    10, 'users', 'insert',
    $$insert into public.users (user_id, usdp_balance)
      values ('a1111111-1111-4111-8111-111111111111', 1000000)$$
),
(
    11, 'users', 'update',
    $$update public.users set usdp_balance = 1000000
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    12, 'users', 'delete',
    $$delete from public.users
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    13, 'portfolio', 'insert',
    $$insert into public.portfolio (user_id, ticker, pv_amount)
      values ('a1111111-1111-4111-8111-111111111111', 'ATKX', 1000000)$$
),
(
    14, 'portfolio', 'update',
    $$update public.portfolio set pv_amount = 1000000
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    15, 'portfolio', 'delete',
    $$delete from public.portfolio
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    16, 'queue', 'insert',
    $$insert into public.queue (user_id, ticker, order_type, amount_usdp)
      values ('a1111111-1111-4111-8111-111111111111', 'ATKX', 'buy', 5)$$
),
(
    17, 'queue', 'update',
    $$update public.queue set status = 'completed', processed_at = now()
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    18, 'queue', 'delete',
    $$delete from public.queue
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    19, 'transactions', 'insert',
    $$insert into public.transactions (user_id, amount_usdp, ticker, order_type,
      avg_price_paid, pv_traded, start_price, end_price)
      values ('a1111111-1111-4111-8111-111111111111', 1, 'ATKX', 'sell', 1, 1, 1, 1)$$
),
(
    20, 'transactions', 'update',
    $$update public.transactions set amount_usdp = 0
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
),
(
    21, 'transactions', 'delete',
    $$delete from public.transactions
      where user_id = 'a1111111-1111-4111-8111-111111111111'$$
);

-- Anonymous: refused everywhere.
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);

select
    throws_ok(
        a.attempt_sql, '42501', format('permission denied for table %s', a.table_name),
        format('anon cannot %s %s', a.verb, a.table_name)
    )
from write_attempt as a
order by a.id;

select throws_ok(
    $$select public.deposit_usdp('a1111111-1111-4111-8111-111111111111', 10)$$,
    '42501', 'permission denied for function deposit_usdp', 'anon cannot deposit'
);
select throws_ok(
    $$select public.withdraw_usdp('a1111111-1111-4111-8111-111111111111', 10)$$,
    '42501', 'permission denied for function withdraw_usdp', 'anon cannot withdraw'
);
select throws_ok(
    $$select pauv.move_usdp('a1111111-1111-4111-8111-111111111111', 10, 1)$$,
    '42501', 'permission denied for function move_usdp', 'anon cannot move money through pauv'
);
select throws_ok(
    $$select setval('public.queue_id_seq', 9223372036854775807)$$,
    '42501', 'permission denied for sequence queue_id_seq',
    'anon cannot exhaust the queue''s identity sequence'
);

-- Signed in as Ada: refused everywhere too, on her own rows as on anyone's. (Her pauv
-- attempts check only the SQLSTATE: once order placement grants authenticated usage on
-- pauv, the refusal names the function or table instead of the schema.)
reset role;
set local role authenticated;
select set_config(
    'request.jwt.claims',
    '{"sub": "a1111111-1111-4111-8111-111111111111", "role": "authenticated"}',
    true
);

select
    throws_ok(
        a.attempt_sql, '42501', format('permission denied for table %s', a.table_name),
        format('authenticated cannot %s %s', a.verb, a.table_name)
    )
from write_attempt as a
order by a.id;

select throws_ok(
    $$select public.deposit_usdp('a1111111-1111-4111-8111-111111111111', 10)$$,
    '42501', 'permission denied for function deposit_usdp', 'Ada cannot deposit to herself'
);
select throws_ok(
    $$select public.withdraw_usdp('a1111111-1111-4111-8111-111111111111', 10)$$,
    '42501', 'permission denied for function withdraw_usdp', 'Ada cannot withdraw'
);
select throws_ok(
    $$select pauv.move_usdp('a1111111-1111-4111-8111-111111111111', 10, 1)$$,
    '42501', null, 'Ada cannot call pauv.move_usdp'
);
select throws_ok(
    $$select setval('public.queue_id_seq', 9223372036854775807)$$,
    '42501', 'permission denied for sequence queue_id_seq',
    'Ada cannot exhaust the queue''s identity sequence'
);
select throws_ok(
    'select count(*) from pauv.usdp_movements',
    '42501', null, 'Ada cannot read the ledger'
);

-- Nothing moved.
reset role;
select set_config('request.jwt.claims', '', true);
select results_eq(
    $$select u.usdp_balance::numeric, t.total_usdp::numeric, p.pv_amount::numeric, q.status,
             x.amount_usdp::numeric, d.name, h.price
      from public.users as u
      cross join public.issuer_trading as t
      cross join public.issuer_details as d
      cross join public.portfolio as p
      cross join public.queue as q
      cross join public.transactions as x
      cross join public.price_history as h
      where u.user_id = 'a1111111-1111-4111-8111-111111111111'
        and t.ticker = 'ATKX' and d.ticker = 'ATKX' and h.ticker = 'ATKX'
        and p.user_id = u.user_id and q.user_id = u.user_id and x.user_id = u.user_id$$,
    $$values (100::numeric, 10.5::numeric, 10::numeric, 'pending', 10.5::numeric, 'Atk X',
              1.10::numeric)$$,
    'after all those attempts Ada''s balance, holding, order, trade and the market are unchanged'
);

-- The service role writes every table and moves money.
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);

select results_eq(
    $$insert into public.issuer_details (ticker, name) values ('SRVX', 'Srv X')
      returning ticker, name$$,
    $$values ('SRVX', 'Srv X')$$,
    'service_role inserts into issuer_details'
);
select results_eq(
    $$update public.issuer_details set description = 'listed by the service'
      where ticker = 'SRVX' returning description$$,
    $$values ('listed by the service')$$,
    'service_role updates issuer_details'
);
select results_eq(
    $$insert into public.issuer_trading (ticker) values ('SRVX')
      returning ticker, current_price, total_usdp::numeric$$,
    $$values ('SRVX', 1.00::numeric, 0::numeric)$$,
    'service_role inserts into issuer_trading'
);
select results_eq(
    $$update public.issuer_trading set current_supply = 10, total_usdp = 10.5
      where ticker = 'SRVX' returning current_price, total_usdp::numeric$$,
    $$values (1.10::numeric, 10.5::numeric)$$,
    'service_role updates issuer_trading'
);
select results_eq(
    $$insert into public.price_history (ticker, price, supply) values ('SRVX', 1.10, 10)
      returning ticker, price, supply::numeric$$,
    $$values ('SRVX', 1.10::numeric, 10::numeric)$$,
    'service_role inserts into price_history'
);
select results_eq(
    $$update public.price_history set price = 1.05 where ticker = 'SRVX' returning price$$,
    $$values (1.05::numeric)$$,
    'service_role updates price_history'
);
select results_eq(
    $$delete from public.price_history where ticker = 'SRVX' returning ticker$$,
    $$values ('SRVX')$$,
    'service_role deletes from price_history'
);
select results_eq(
    $$update public.users set username = 'ada'
      where user_id = 'a1111111-1111-4111-8111-111111111111' returning username$$,
    $$values ('ada')$$,
    'service_role updates users'
);
select results_eq(
    $$insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis)
      values ('a1111111-1111-4111-8111-111111111111', 'SRVX', 10, 1.05)
      returning ticker, pv_amount::numeric$$,
    $$values ('SRVX', 10::numeric)$$,
    'service_role inserts into portfolio'
);
select results_eq(
    $$update public.portfolio set pv_amount = 4
      where user_id = 'a1111111-1111-4111-8111-111111111111' and ticker = 'SRVX'
      returning pv_amount::numeric$$,
    $$values (4::numeric)$$,
    'service_role updates portfolio'
);
select results_eq(
    $$delete from public.portfolio
      where user_id = 'a1111111-1111-4111-8111-111111111111' and ticker = 'SRVX'
      returning ticker$$,
    $$values ('SRVX')$$,
    'service_role deletes from portfolio'
);
select results_eq(
    $$insert into public.queue (user_id, ticker, order_type, amount_usdp)
      values ('a1111111-1111-4111-8111-111111111111', 'SRVX', 'buy', 5)
      returning ticker, order_type, amount_usdp::numeric, status$$,
    $$values ('SRVX', 'buy', 5::numeric, 'pending')$$,
    'service_role inserts into queue'
);
select results_eq(
    $$update public.queue set status = 'cancelled', processed_at = now()
      where ticker = 'SRVX' returning status$$,
    $$values ('cancelled')$$,
    'service_role updates queue'
);
select results_eq(
    $$delete from public.queue where ticker = 'SRVX' returning status$$,
    $$values ('cancelled')$$,
    'service_role deletes from queue'
);
select results_eq(
    $$insert into public.transactions (
          user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded, start_price,
          end_price
      ) values ('a1111111-1111-4111-8111-111111111111', 10.5, 'SRVX', 'buy', 1.05, 10, 1, 1.1)
      returning ticker, amount_usdp::numeric$$,
    $$values ('SRVX', 10.5::numeric)$$,
    'service_role inserts into transactions'
);
select results_eq(
    $$update public.transactions set avg_price_paid = 1.05 where ticker = 'SRVX'
      returning avg_price_paid$$,
    $$values (1.05::numeric)$$,
    'service_role updates transactions'
);
select results_eq(
    $$delete from public.transactions where ticker = 'SRVX' returning ticker$$,
    $$values ('SRVX')$$,
    'service_role deletes from transactions'
);
select results_eq(
    $$delete from public.issuer_trading where ticker = 'SRVX' returning ticker$$,
    $$values ('SRVX')$$,
    'service_role deletes from issuer_trading'
);
select results_eq(
    $$delete from public.issuer_details where ticker = 'SRVX' returning ticker$$,
    $$values ('SRVX')$$,
    'service_role deletes from issuer_details'
);
select is(
    public.deposit_usdp('a1111111-1111-4111-8111-111111111111', 10), 110::numeric,
    'service_role deposits: 100 + 10'
);
select is(
    public.withdraw_usdp('a1111111-1111-4111-8111-111111111111', 4), 106::numeric,
    'service_role withdraws: 110 - 4'
);

-- Bob's users row (made by the sign-up trigger), deleted and inserted again.
select results_eq(
    $$delete from public.users where user_id = 'b2222222-2222-4222-8222-222222222222'
      returning usdp_balance::numeric$$,
    $$values (0::numeric)$$,
    'service_role deletes from users'
);
select results_eq(
    $$insert into public.users (user_id, username)
      values ('b2222222-2222-4222-8222-222222222222', 'bob')
      returning username, usdp_balance::numeric$$,
    $$values ('bob', 0::numeric)$$,
    'service_role inserts into users'
);

select finish();
rollback;
