-- The queue webhook: a statement-level AFTER INSERT trigger on queue calling a private
-- SECURITY DEFINER function that no API role may call directly; the one-row wake state
-- behind its coalescing, and the two drain RPCs only the service role may call.
begin;
select plan(21);

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

select has_table('pauv', 'process_queue_wake_state', 'the wake state lives in pauv');
-- Its row is checked by behaviour (tests/test_webhook.py): other tests truncate pauv, and
-- the trigger and begin_process_queue_drain() put the row back.
select col_is_pk(
    'pauv', 'process_queue_wake_state', 'id', 'one row at most: the key is a true boolean'
);
select col_default_is(
    'pauv', 'process_queue_wake_state', 'wake_timeout', interval '10 seconds',
    'a queued wake stands for 10 s by default'
);
select col_default_is(
    'pauv', 'process_queue_wake_state', 'drain_timeout', interval '45 seconds',
    'a drain counts as running 45 s after its last sign of life by default'
);
select table_privs_are(
    'pauv', 'process_queue_wake_state', 'service_role', array[]::text[],
    'service_role has no direct access to the wake state'
);
select is_definer(
    'pauv', 'send_process_queue_wake', array['jsonb']::name[],
    'the sender is SECURITY DEFINER: it reads the key from Vault'
);
select is(
    (
        select p.proconfig from pg_catalog.pg_proc as p
        where p.oid = 'pauv.send_process_queue_wake(jsonb)'::regprocedure
    ),
    array['search_path=""'],
    'the sender runs with an empty search_path'
);
select function_privs_are(
    'pauv', 'send_process_queue_wake', array['jsonb']::name[], 'service_role', array[]::text[],
    'no API role may send wakes (with the secret key) directly'
);
select function_privs_are(
    'public', 'begin_process_queue_drain', array[]::name[], 'service_role', array['EXECUTE'],
    'the function (service role) reports the start of a drain'
);
select function_privs_are(
    'public', 'end_process_queue_drain', array['uuid', 'text']::name[], 'authenticated',
    array[]::text[],
    'signed-in users cannot end drains'
);
select isnt_definer(
    'public', 'end_process_queue_drain', array['uuid', 'text']::name[],
    'the public drain RPCs are SECURITY INVOKER wrappers over pauv'
);

select * from finish();  -- noqa: AM04
rollback;
