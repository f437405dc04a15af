-- FIFO per ticker must hold exactly: an order may never become visible after a later
-- order of its ticker has executed. So every insert into queue takes a shared per-ticker
-- lock and stamps `date` only once it holds it; a processor takes the same lock
-- exclusively (never waiting: it skips a ticker with an insert in flight).

create function pauv.ticker_lock_id(p_ticker text)
returns integer
language sql
immutable strict
set search_path = ''
as $$
    select pg_catalog.hashtext(p_ticker)
$$;

comment on function pauv.ticker_lock_id(text) is
'Second key of the per-ticker advisory lock (the first is 1885435254, for "pauv").';

create function pauv.stamp_queue_order()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform pg_catalog.pg_advisory_xact_lock_shared(1885435254, pauv.ticker_lock_id(new.ticker));
    -- Stamped after the lock, so no processor run of this ticker overlaps the window
    -- between stamping and commit. An explicit date (backfills, tests) is kept.
    if new.date is null then
        new.date := clock_timestamp();
    end if;
    return new;
end;
$$;

comment on function pauv.stamp_queue_order() is
'BEFORE INSERT on queue: takes the ticker''s intake lock (shared) and stamps date.';

alter table public.queue alter column date drop default;

create trigger queue_stamp_order
before insert on public.queue
for each row execute function pauv.stamp_queue_order();

-- Direct inserts run the trigger as the inserting role; orders placed by users are
-- inserted by the SECURITY DEFINER pauv.place_order, as its owner.
grant execute on function pauv.ticker_lock_id(text) to service_role;
grant execute on function pauv.stamp_queue_order() to service_role;
