-- Issuers: the profile the app shows (issuer_details) and the bonding-curve state the
-- processor moves (issuer_trading). Listing takes one insert into each; all else defaults.
create table public.issuer_details (
    id bigint generated always as identity primary key,
    ticker text not null unique
    constraint issuer_details_ticker_format check (ticker ~ '^[A-Z0-9]{1,12}$'),
    name text not null constraint issuer_details_name_not_blank check (btrim(name) <> ''),
    description text,
    image_url text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table public.issuer_details is
'Issuer profiles, one per ticker (upper-case letters and digits, at most 12).';

create table public.issuer_trading (
    ticker text primary key references public.issuer_details (ticker) on delete cascade,
    current_supply public.pv_quantity not null default 0,
    base_price public.usdp_amount not null default 1.00
    constraint issuer_trading_base_price_positive check (base_price > 0),
    price_step public.usdp_amount not null default 0.01
    constraint issuer_trading_price_step_positive check (price_step > 0),
    current_price numeric generated always as (base_price + price_step * current_supply) stored,
    total_usdp public.usdp_amount not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- Solvency, written without division so it is exact: the pool always covers
    -- buying back every token, total_usdp >= b*S + s*S^2/2.
    constraint issuer_trading_pool_covers_supply check (
        2 * total_usdp
        >= 2 * base_price * current_supply + price_step * current_supply * current_supply
    )
);

comment on table public.issuer_trading is
'Bonding-curve state per issuer: price = base_price + price_step * current_supply; '
'total_usdp is the pool that pays sellers.';
comment on column public.issuer_trading.current_price is
'Always exactly base_price + price_step * current_supply (a generated column).';
comment on column public.issuer_trading.total_usdp is
'The pool: USDP paid in by buyers minus USDP paid out to sellers. Also the market cap.';

create trigger issuer_details_set_updated_at
before update on public.issuer_details
for each row execute function pauv.set_updated_at();

create trigger issuer_trading_set_updated_at
before update on public.issuer_trading
for each row execute function pauv.set_updated_at();

alter table public.issuer_details enable row level security;
alter table public.issuer_trading enable row level security;

-- Market data is public: anyone may read it, nobody but the service may write it.
create policy issuer_details_readable_by_everyone on public.issuer_details
for select to anon, authenticated using (true);
create policy issuer_trading_readable_by_everyone on public.issuer_trading
for select to anon, authenticated using (true);

grant select on public.issuer_details, public.issuer_trading to anon, authenticated;
grant select, insert, update, delete on public.issuer_details, public.issuer_trading
to service_role;
