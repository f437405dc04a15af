-- An adopted market starts with money nobody deposited through this package: one opening
-- ledger entry per user balance and per pool keeps "balances + pools = ledger" exact.
alter table pauv.usdp_movements
add column kind text not null default 'transfer'
constraint usdp_movements_kind_valid
check (kind in ('transfer', 'opening_balance', 'opening_pool')),
add column ticker text references public.issuer_trading (ticker),
alter column user_id drop not null,
add constraint usdp_movements_owner_matches_kind check (
    case kind
        when 'opening_pool' then user_id is null and ticker is not null
        else user_id is not null and ticker is null
    end
);

comment on column pauv.usdp_movements.kind is
'transfer: a deposit (> 0) or withdrawal (< 0); opening_balance / opening_pool: the user''s '
'balance or the issuer''s pool when an existing Pauv market was adopted.';
comment on column pauv.usdp_movements.ticker is 'The pool of an opening_pool entry.';

create index usdp_movements_ticker_idx on pauv.usdp_movements (ticker);
