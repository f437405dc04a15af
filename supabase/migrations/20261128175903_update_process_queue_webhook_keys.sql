-- The queue webhook moves to Supabase's new API keys (legacy JWT keys retire end of 2026):
-- it sends the secret key stored in Vault as process_queue_secret_key in the apikey header,
-- and, while the legacy process_queue_invoke_key is still stored, that one as a bearer too.
create function pauv.send_process_queue_wake(p_body jsonb)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_project_url text;
    v_secret_key text;
    v_legacy_key text;
    v_headers jsonb;
begin
    if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
        or to_regclass('vault.decrypted_secrets') is null then
        return null;
    end if;

    select
        nullif(btrim(max(s.decrypted_secret) filter (where s.name = 'project_url')), ''),
        nullif(btrim(max(s.decrypted_secret) filter (where s.name = 'process_queue_secret_key')), ''),
        nullif(btrim(max(s.decrypted_secret) filter (where s.name = 'process_queue_invoke_key')), '')
    into v_project_url, v_secret_key, v_legacy_key
    from vault.decrypted_secrets as s
    where s.name in ('project_url', 'process_queue_secret_key', 'process_queue_invoke_key');
    if v_project_url is null or (v_secret_key is null and v_legacy_key is null) then
        return null;
    end if;

    -- The secret key goes where Supabase's server-to-server calls put it (apikey); the
    -- legacy JWT, kept only while a deployment switches over, where verify_jwt looks.
    v_headers := jsonb_build_object('Content-Type', 'application/json');
    if v_secret_key is not null then
        v_headers := v_headers || jsonb_build_object('apikey', v_secret_key);
    end if;
    if v_legacy_key is not null then
        v_headers := v_headers || jsonb_build_object('Authorization', 'Bearer ' || v_legacy_key);
    end if;

    return net.http_post(
        url => rtrim(v_project_url, '/') || '/functions/v1/process-queue',
        body => p_body,
        headers => v_headers,
        timeout_milliseconds => 30000
    );
end;
$$;

comment on function pauv.send_process_queue_wake(jsonb) is
'Queues one pg_net POST of p_body to <project_url>/functions/v1/process-queue with '
'apikey: <process_queue_secret_key> and, while the legacy secret process_queue_invoke_key '
'is still in Vault, Authorization: Bearer <it> (for a function still behind verify_jwt). '
'Returns the request id, or null when pg_net, Vault, the URL or both keys are missing.';

revoke all on function pauv.send_process_queue_wake(jsonb) from public;

create or replace function pauv.notify_process_queue()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_pending bigint;
    v_first_record jsonb;
begin
    begin
        select count(*) into v_pending
        from new_orders as o
        where o.status = 'pending';
        if v_pending = 0 then
            return null;
        end if;

        select to_jsonb(o) into v_first_record
        from new_orders as o
        where o.status = 'pending'
        order by o.id
        limit 1;

        perform pauv.send_process_queue_wake(jsonb_build_object(
            'type', tg_op,
            'table', tg_table_name,
            'schema', tg_table_schema,
            'record', v_first_record,
            'old_record', null,
            'pending_count', v_pending
        ));
    exception when others then
        -- Waking the processor is best effort: an order must never fail because of it.
        raise warning 'process-queue-webhook sent nothing: % (SQLSTATE %)', sqlerrm, sqlstate;
    end;
    return null;
end;
$$;

comment on function pauv.notify_process_queue() is
'Statement-level AFTER INSERT trigger on public.queue: when the statement inserted pending '
'orders, wakes the process-queue edge function through pauv.send_process_queue_wake with '
'a webhook-shaped body (record = the first pending row inserted, pending_count = how '
'many). Never raises (SECURITY DEFINER because the inserting roles cannot read Vault).';
