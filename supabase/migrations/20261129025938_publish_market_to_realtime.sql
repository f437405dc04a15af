-- Live market over Supabase Realtime. Prices: public.issuer_trading joins the
-- supabase_realtime publication, so the app can subscribe to Postgres Changes on it (the
-- processor writes a ticker's row once per processing run, however many trades the run
-- makes). Fills: a private Broadcast topic per user, 'orders:<user id>', which only that
-- user may read (the messages are sent by the processor; docs/realtime.md says why
-- Broadcast and not Postgres Changes on public.queue).
-- Supabase creates the publication and the realtime schema on every project; where they
-- are missing (Realtime not installed), this says so and changes nothing.
do $$
begin
    if not exists (select from pg_catalog.pg_publication as p where p.pubname = 'supabase_realtime') then
        raise notice 'publication supabase_realtime does not exist: prices are not streamed'
            using hint = 'Enable Realtime, then run: alter publication supabase_realtime add '
            'table public.issuer_trading;';
    elsif not exists (
        select from pg_catalog.pg_publication_tables as pt
        where pt.pubname = 'supabase_realtime' and pt.schemaname = 'public'
            and pt.tablename = 'issuer_trading'
    ) then
        alter publication supabase_realtime add table public.issuer_trading;
    end if;

    if pg_catalog.to_regclass('realtime.messages') is null then
        raise notice 'realtime.messages does not exist: order fills are not broadcast'
            using hint = 'Enable Realtime, then push this migration again.';
    else
        -- Realtime checks a subscriber by reading realtime.messages as that user with
        -- realtime.topic() set to the channel's topic: a user passes for their own topic
        -- only, and reads only that topic's messages.
        create policy order_fills_read_own on realtime.messages
        for select to authenticated
        using (
            extension = 'broadcast'
            and topic = realtime.topic()
            and topic = 'orders:' || (select auth.uid())::text
        );
    end if;
end;
$$;
