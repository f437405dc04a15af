-- The market schema exists as DESIGN.md names it, with RLS on every table in public.
begin;
select plan(10);

select has_table('public', 'issuer_details', 'issuer_details exists');
select has_table('public', 'issuer_trading', 'issuer_trading exists');
select has_table('public', 'users', 'users exists');
select has_table('public', 'portfolio', 'portfolio exists');
select has_table('public', 'queue', 'queue exists');
select has_table('public', 'transactions', 'transactions exists');
select has_table('public', 'price_history', 'price_history exists');
select columns_are(
    'public', 'queue',
    array[
        'id', 'user_id', 'ticker', 'order_type', 'amount_usdp', 'amount_pv', 'status', 'date',
        'client_order_id', 'error_message', 'processed_at', 'created_at', 'updated_at',
        'legacy_id', 'min_receive', 'closes_position'
    ],
    'queue has the guide''s columns, the lifecycle columns, the adopted order''s id and the '
    || 'trader''s protections (slippage limit, position close)'
);
select is_empty(
    $$select c.relname from pg_class as c
      where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
        and not c.relrowsecurity$$,
    'every table in public has RLS enabled'
);
select col_default_is(
    'public', 'issuer_trading', 'base_price', '1.00', 'base_price defaults to 1.00'
);

select finish();
rollback;
