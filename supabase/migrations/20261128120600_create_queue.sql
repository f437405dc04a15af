-- The order queue the setup guide names: orders wait here as 'pending' until the
-- processor executes them ('completed') or rejects them ('failed'), or their owner
-- cancels them ('cancelled').
create table public.queue (
    id bigint generated always as identity primary key,
    user_id uuid not null references public.users (user_id),
    ticker text not null references public.issuer_trading (ticker),
    order_type text not null
    constraint queue_order_type_valid check (order_type in ('buy', 'sell')),
    amount_usdp public.usdp_amount,
    amount_pv public.pv_quantity,
    status text not null default 'pending'
    constraint queue_status_valid
    check (status in ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    date timestamptz not null default now(),
    client_order_id text
    constraint queue_client_order_id_length check (char_length(client_order_id) between 1 and 64),
    error_message text,
    processed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- A buy spends amount_usdp; a sell gives up amount_pv.
    constraint queue_buy_has_usdp check (order_type <> 'buy' or amount_usdp > 0),
    constraint queue_sell_has_pv check (order_type <> 'sell' or amount_pv > 0),
    constraint queue_finished_has_time check (
        status in ('pending', 'processing') or processed_at is not null
    ),
    constraint queue_only_failed_has_error check (status = 'failed' or error_message is null)
);

comment on table public.queue is
'Orders waiting for, or done by, the processor. pending -> completed | failed, or '
'pending -> cancelled by the owner. processing is never visible after a commit.';
comment on column public.queue.amount_usdp is 'USDP a buy spends (exactly).';
comment on column public.queue.amount_pv is 'PV tokens a sell gives up.';
comment on column public.queue.date is
'When the order was placed; orders of a ticker run in (date, id) order.';
comment on column public.queue.client_order_id is
'Optional idempotency key: the same key from the same user returns the same order.';
comment on column public.queue.error_message is 'Why a failed order failed.';
comment on column public.queue.processed_at is 'When the order reached its final status.';

-- The processor's access path: pending orders in FIFO order. Partial, so it stays as
-- small as the backlog however many finished rows the table keeps.
create index queue_pending_fifo_idx on public.queue (date, id) where status = 'pending';
create index queue_pending_ticker_fifo_idx on public.queue (ticker, date, id)
where status = 'pending';
create index queue_user_pending_idx on public.queue (user_id) where status = 'pending';
create index queue_user_date_idx on public.queue (user_id, date desc);
create index queue_ticker_idx on public.queue (ticker);
create index queue_finished_processed_at_idx on public.queue (processed_at)
where status in ('completed', 'failed', 'cancelled');
create unique index queue_user_client_order_id_key on public.queue (user_id, client_order_id)
where client_order_id is not null;

create trigger queue_set_updated_at
before update on public.queue
for each row execute function pauv.set_updated_at();

alter table public.queue enable row level security;

create policy queue_select_own on public.queue
for select to authenticated using (user_id = (select auth.uid()));

grant select on public.queue to authenticated;
grant select, insert, update, delete on public.queue to service_role;
