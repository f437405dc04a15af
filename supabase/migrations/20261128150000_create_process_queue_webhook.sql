-- The guide's database webhook 'process-queue-webhook' as a migration: one HTTP POST per
-- INSERT statement on public.queue wakes the process-queue edge function through pg_net,
-- with the URL and key read from Vault. Unconfigured or failing, it sends nothing silently.
create function pauv.notify_process_queue()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_pending bigint;
    v_first_record jsonb;
    v_project_url text;
    v_invoke_key text;
begin
    -- pg_net and Vault are optional: without them there is nothing to send to, and the
    -- pg_cron sweeper drains the queue instead.
    if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
        or to_regclass('vault.decrypted_secrets') is null then
        return null;
    end if;

    begin
        select count(*) into v_pending
        from new_orders as o
        where o.status = 'pending';
        if v_pending = 0 then
            return null;
        end if;

        select
            max(s.decrypted_secret) filter (where s.name = 'project_url'),
            max(s.decrypted_secret) filter (where s.name = 'process_queue_invoke_key')
        into v_project_url, v_invoke_key
        from vault.decrypted_secrets as s
        where s.name in ('project_url', 'process_queue_invoke_key');
        if nullif(btrim(v_project_url), '') is null or nullif(btrim(v_invoke_key), '') is null then
            return null;
        end if;

        select to_jsonb(o) into v_first_record
        from new_orders as o
        where o.status = 'pending'
        order by o.id
        limit 1;

        perform net.http_post(
            url => rtrim(btrim(v_project_url), '/') || '/functions/v1/process-queue',
            body => jsonb_build_object(
                'type', tg_op,
                'table', tg_table_name,
                'schema', tg_table_schema,
                'record', v_first_record,
                'old_record', null,
                'pending_count', v_pending
            ),
            headers => jsonb_build_object(
                'Content-Type', 'application/json',
                'Authorization', 'Bearer ' || btrim(v_invoke_key)
            ),
            timeout_milliseconds => 30000
        );
    exception when others then
        -- Waking the processor is best effort: an order must never fail because of it.
        raise warning 'process-queue-webhook sent nothing: % (SQLSTATE %)', sqlerrm, sqlstate;
    end;
    return null;
end;
$$;

comment on function pauv.notify_process_queue() is
'Statement-level AFTER INSERT trigger on public.queue: when the statement inserted pending '
'orders, queues one pg_net POST to <project_url>/functions/v1/process-queue with '
'Authorization: Bearer <process_queue_invoke_key> (both Vault secrets) and a webhook-shaped '
'body: record = the first pending row inserted, pending_count = how many. Sends nothing '
'when pg_net, Vault or either secret is missing; never raises (SECURITY DEFINER because '
'the inserting roles cannot read Vault).';

-- The guide names the webhook 'process-queue-webhook': a quoted name, hence the noqa.
create trigger "process-queue-webhook"  -- noqa: RF05
after insert on public.queue
referencing new table as new_orders
for each statement execute function pauv.notify_process_queue();

comment on trigger "process-queue-webhook" on public.queue is  -- noqa: RF05
'The guide''s database webhook: one request per INSERT statement (not per row) wakes the '
'process-queue edge function; the pg_cron sweeper covers any wake that is lost.';
