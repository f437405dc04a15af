-- Price ticks: one row per executed trade with the price and supply after it. Candles
-- and price changes are computed from these.
create table public.price_history (
    id bigint generated always as identity primary key,
    ticker text not null references public.issuer_trading (ticker),
    price numeric not null constraint price_history_price_positive check (price > 0),
    supply public.pv_quantity not null,
    timestamp timestamptz not null default now(),
    transaction_id bigint references public.transactions (id)
);

comment on table public.price_history is
'One tick per executed trade: the price and supply right after it.';

create index price_history_ticker_timestamp_idx on public.price_history (ticker, timestamp);
create index price_history_transaction_id_idx on public.price_history (transaction_id);

alter table public.price_history enable row level security;

create policy price_history_readable_by_everyone on public.price_history
for select to anon, authenticated using (true);

grant select on public.price_history to anon, authenticated;
grant select, insert, update, delete on public.price_history to service_role;
