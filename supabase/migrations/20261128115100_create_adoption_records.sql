-- What adopting the Pauv app's live database did, kept queryable for operators: when it
-- ran, and every value it had to change (on a fresh project these tables stay empty).
create table pauv.legacy_adoption (
    id integer primary key default 1 constraint legacy_adoption_single_row check (id = 1),
    moved_aside_at timestamptz not null,
    adopted_at timestamptz,
    summary jsonb -- noqa: RF04
);

comment on table pauv.legacy_adoption is
'The adoption of the Pauv app''s market tables, if there was one: when the legacy tables '
'were moved to schema pauv_legacy, when their rows were converted, and the row counts.';

create table pauv.adoption_adjustments (
    id bigint generated always as identity primary key,
    subject text not null constraint adoption_adjustments_subject_valid check (
        subject in ('user', 'holding', 'issuer', 'order', 'trades', 'ticks')
    ),
    user_id uuid,
    ticker text,
    order_id bigint,
    column_name text not null,
    before_value numeric,
    after_value numeric,
    rows_changed bigint not null default 1,
    reason text not null,
    created_at timestamptz not null default now()
);

comment on table pauv.adoption_adjustments is
'Every value the adoption changed to fit the exact money rules: who (user_id) or which ticker '
'or order, the column, before and after, and why. Money state (balances, holdings, supply, '
'pools, pending orders) one row per change; history rounding (trades, ticks) one row per '
'ticker and column with rows_changed and the largest change in after_value - before_value. '
'The legacy rows themselves stay in schema pauv_legacy.';
comment on column pauv.adoption_adjustments.rows_changed is
'1 for a single value; for history rows, how many rows of that ticker and column changed.';

create table pauv.adopted_pools (
    ticker text primary key,
    legacy_supply numeric not null,
    legacy_pool numeric not null,
    supply numeric not null,
    pool numeric not null,
    curve_value numeric not null,
    surplus numeric not null constraint adopted_pools_surplus_non_negative check (surplus >= 0)
);

comment on table pauv.adopted_pools is
'Per adopted issuer: supply and pool before and after conversion, the curve value '
'b*S + s*S^2/2 of the adopted supply, and the surplus pool - curve value the pool kept. '
'The solvency audit allows this surplus on top of the trading dust.';

create index adoption_adjustments_user_id_idx on pauv.adoption_adjustments (user_id);
create index adoption_adjustments_ticker_idx on pauv.adoption_adjustments (ticker);

revoke all on pauv.legacy_adoption, pauv.adoption_adjustments, pauv.adopted_pools from public;
grant select on pauv.legacy_adoption, pauv.adoption_adjustments, pauv.adopted_pools
to service_role;
