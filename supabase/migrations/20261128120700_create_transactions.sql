-- Executed trades: exactly one row per completed order, kept when the queue row is
-- cleaned up.
create table public.transactions (
    id bigint generated always as identity primary key,
    user_id uuid not null references public.users (user_id),
    amount_usdp public.usdp_amount not null,
    ticker text not null references public.issuer_trading (ticker),
    order_type text not null
    constraint transactions_order_type_valid check (order_type in ('buy', 'sell')),
    status text not null default 'completed'
    constraint transactions_status_valid check (status = 'completed'),
    avg_price_paid numeric not null
    constraint transactions_avg_price_positive check (avg_price_paid > 0),
    pv_traded public.pv_quantity not null
    constraint transactions_pv_traded_positive check (pv_traded > 0),
    start_price numeric not null,
    end_price numeric not null,
    date timestamptz not null default now(),
    -- No foreign key: cleanup deletes old queue rows, the trade record stays.
    queue_id bigint unique,
    created_at timestamptz not null default now()
);

comment on table public.transactions is
'One row per executed order: USDP and PV moved, average price, price before and after.';
comment on column public.transactions.amount_usdp is
'USDP the buyer paid or the seller received.';
comment on column public.transactions.avg_price_paid is 'amount_usdp / pv_traded for this trade.';
comment on column public.transactions.queue_id is
'The queue order this trade executed (unique; the queue row may since have been cleaned up).';

create index transactions_user_date_idx on public.transactions (user_id, date desc);
create index transactions_ticker_date_idx on public.transactions (ticker, date);

alter table public.transactions enable row level security;

create policy transactions_select_own on public.transactions
for select to authenticated using (user_id = (select auth.uid()));

grant select on public.transactions to authenticated;
grant select, insert, update, delete on public.transactions to service_role;
