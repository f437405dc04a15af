-- Holdings: PV tokens per user and issuer, with the weighted-average cost basis.
create table public.portfolio (
    user_id uuid not null references public.users (user_id),
    ticker text not null references public.issuer_trading (ticker),
    pv_amount public.pv_quantity not null default 0,
    avg_cost_basis numeric not null default 0
    constraint portfolio_avg_cost_basis_non_negative check (avg_cost_basis >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (user_id, ticker),
    constraint portfolio_closed_position_has_no_basis check (pv_amount > 0 or avg_cost_basis = 0)
);

comment on table public.portfolio is
'PV tokens each user holds per issuer. A closed position keeps its row with 0 and basis 0.';
comment on column public.portfolio.avg_cost_basis is
'USDP paid per token, weighted over buys; unchanged by sells; 0 once the position is closed.';

create index portfolio_ticker_idx on public.portfolio (ticker);

create trigger portfolio_set_updated_at
before update on public.portfolio
for each row execute function pauv.set_updated_at();

alter table public.portfolio enable row level security;

create policy portfolio_select_own on public.portfolio
for select to authenticated using (user_id = (select auth.uid()));

grant select on public.portfolio to authenticated;
grant select, insert, update, delete on public.portfolio to service_role;
