-- The queue webhook: a statement-level AFTER INSERT trigger on queue calling a private
-- SECURITY DEFINER function that no API role may call directly.
begin;
select plan(10);

select has_trigger('public', 'queue', 'process-queue-webhook', 'queue has the guide''s webhook');
select trigger_is(
    'public', 'queue', 'process-queue-webhook', 'pauv', 'notify_process_queue',
    'the webhook runs pauv.notify_process_queue()'
);
-- tgtype bits: 1 = for each row, 2 = before, 4 = insert, 64 = instead of.
select is(
    (
        select t.tgtype::integer from pg_catalog.pg_trigger as t
        where t.tgrelid = 'public.queue'::regclass and t.tgname = 'process-queue-webhook'
    ),
    4,
    'it fires AFTER INSERT, once per statement (not per row)'
);
select is(
    (
        select t.tgnewtable::text from pg_catalog.pg_trigger as t
        where t.tgrelid = 'public.queue'::regclass and t.tgname = 'process-queue-webhook'
    ),
    'new_orders',
    'it sees the inserted rows through the transition table new_orders'
);
select is(
    (
        select t.tgenabled::text from pg_catalog.pg_trigger as t
        where t.tgrelid = 'public.queue'::regclass and t.tgname = 'process-queue-webhook'
    ),
    'O',
    'it is enabled'
);
select is_definer(
    'pauv', 'notify_process_queue', array[]::name[],
    'the trigger function is SECURITY DEFINER: the inserting roles cannot read Vault'
);
select is(
    (
        select p.proconfig from pg_catalog.pg_proc as p
        where p.oid = 'pauv.notify_process_queue()'::regprocedure
    ),
    array['search_path=""'],
    'the trigger function runs with an empty search_path'
);
select function_privs_are(
    'pauv', 'notify_process_queue', array[]::name[], 'anon', array[]::text[],
    'anon cannot call the trigger function'
);
select function_privs_are(
    'pauv', 'notify_process_queue', array[]::name[], 'authenticated', array[]::text[],
    'authenticated cannot call the trigger function'
);
select function_privs_are(
    'pauv', 'notify_process_queue', array[]::name[], 'service_role', array[]::text[],
    'service_role cannot call the trigger function'
);

select * from finish();  -- noqa: AM04
rollback;
