-- Test fixture, never a migration: Pauv's live database as upstream's 59 migrations left it
-- (facts: /work/shared/legacy/PAUV_LEGACY_SCHEMA.md, written here in our own SQL). Run as
-- 'postgres' (not a superuser) after tests/platform/*.sql and tests/legacy/platform_extras.sql.
-- Reproduced bugs are marked "LEGACY BUG"; fix nothing here: the adoption must meet them.

-- Upstream's functions set no search_path and many name tables unqualified; resolution
-- then follows the session's path, which on Supabase puts public first.
set search_path = public, extensions;

-- Two session-temporary helpers (pg_temp: gone when the script ends, nothing of them stays
-- in the catalog) for what upstream repeated table by table.
-- The admin trio: authenticated users whose JWT says app_metadata.admin = true write.
create function pg_temp.create_admin_write_policies(p_table text)
returns void
language plpgsql
as $$
declare
    v_admin constant text :=
        'coalesce((auth.jwt() -> ''app_metadata'' ->> ''admin'')::boolean, false)';
begin
    execute format('create policy %I on public.%I for insert to authenticated with check (%s)',
        'Admins can insert ' || p_table, p_table, v_admin);
    execute format('create policy %I on public.%I for update to authenticated using (%s)',
        'Admins can update ' || p_table, p_table, v_admin);
    execute format('create policy %I on public.%I for delete to authenticated using (%s)',
        'Admins can delete ' || p_table, p_table, v_admin);
end;
$$;

-- One BEFORE UPDATE trigger function per table (upstream wrote six identical ones).
create function pg_temp.create_updated_at_trigger(p_table text, p_trigger text)
returns void
language plpgsql
as $$
begin
    execute format(
        'create function public.%I() returns trigger language plpgsql as '
        '$f$ begin new.updated_at = now(); return new; end; $f$',
        'update_' || p_table || '_updated_at');
    execute format(
        'create trigger %I before update on public.%I for each row execute function public.%I()',
        p_trigger, p_table, 'update_' || p_table || '_updated_at');
end;
$$;

-- ===== §2 enums ===========================================================================
create type public.order_type as enum ('buy', 'sell');
create type public.queue_status as enum ('pending', 'processing', 'completed', 'failed', 'cancelled');
create type public.transaction_status as enum ('completed', 'failed', 'refunded');

-- ===== Small helpers used by policies and triggers (§5) ===================================
create function public.is_admin()
returns boolean
language plpgsql
stable
security definer
as $$
begin
    return coalesce((auth.jwt() -> 'app_metadata' ->> 'admin')::boolean, false);
end;
$$;

create function public.is_admin_by_id(p_user_id uuid)
returns boolean
language plpgsql
stable
security definer
as $$
declare
    v_is_admin boolean;
begin
    select coalesce((u.raw_app_meta_data ->> 'admin')::boolean, false)
    into v_is_admin
    from auth.users as u
    where u.id = p_user_id;
    return coalesce(v_is_admin, false);
end;
$$;

-- ===== §3.1 issuer_details ================================================================
create table public.issuer_details (
    id uuid not null default gen_random_uuid(),
    name text not null,
    ticker text not null,
    bio text,
    headline text,
    tag text,
    photo text,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    user_id uuid,
    -- upstream first added it with default false, then changed the default to true
    is_hidden boolean not null default true,
    constraint issuer_details_pkey primary key (id),
    constraint issuer_details_ticker_unique unique (ticker),
    constraint issuer_details_user_id_fkey foreign key (user_id)
    references auth.users (id) on delete set null
);
comment on column public.issuer_details.user_id is
'The issuer''s auth account, set by the claim flow';
create index idx_issuer_details_ticker on public.issuer_details (ticker);
create index idx_issuer_details_user_id on public.issuer_details (user_id);
create index idx_issuer_details_is_hidden on public.issuer_details (is_hidden);
alter table public.issuer_details enable row level security;

-- LEGACY: two duplicate read policies (one from the pulled remote schema).
create policy "Allow public read access" on public.issuer_details
for select to public using (true);
create policy "Public read access for issuer_details" on public.issuer_details
for select to anon, authenticated using (true);
select pg_temp.create_admin_write_policies('issuer_details');
create policy "Issuers can view own profile" on public.issuer_details
for select to authenticated using (user_id = auth.uid());
-- LEGACY BUG: the linked issuer may update any column of its row (ticker, is_hidden...).
create policy "Issuers can update own profile" on public.issuer_details
for update to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());
create policy "Service role full access issuer_details" on public.issuer_details
for all to service_role using (true) with check (true);

-- ===== §8 tags (seeded with 6) ==============================================================
create table public.tags (
    id uuid not null default gen_random_uuid(),
    tag text not null,
    photo_url text,
    description text,
    number_of_issuers integer not null default 0,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint tags_pkey primary key (id),
    constraint tags_tag_key unique (tag),
    constraint tags_number_of_issuers_check check (number_of_issuers >= 0)
);
alter table public.tags enable row level security;
create policy "Allow public read access on tags" on public.tags
for select to public using (true);

-- ===== §8 issuer_links, and the trigger that gives each new issuer a blank row =========
create table public.issuer_links (
    id uuid not null default gen_random_uuid(),
    ticker text not null,
    instagram text,
    twitter text,
    tiktok text,
    youtube text,
    twitch text,
    spotify text,
    soundcloud text,
    linkedin text,
    facebook text,
    website text,
    linktree text,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint issuer_links_pkey primary key (id),
    constraint issuer_links_ticker_key unique (ticker),
    constraint issuer_links_ticker_fkey foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade
);
create index idx_issuer_links_ticker on public.issuer_links (ticker);
alter table public.issuer_links enable row level security;
create policy "Allow public read access on issuer_links" on public.issuer_links
for select to public using (true);
select pg_temp.create_admin_write_policies('issuer_links');
create policy "Issuers can update own links" on public.issuer_links
for update to authenticated
using (exists (
    select 1 from public.issuer_details as d
    where d.ticker = issuer_links.ticker and d.user_id = auth.uid()
));

create function public.create_issuer_links_on_details_insert()
returns trigger
language plpgsql
security definer
as $$
begin
    insert into public.issuer_links (ticker) values (new.ticker)
    on conflict (ticker) do nothing;
    return new;
end;
$$;
create trigger trg_create_issuer_links_on_details_insert
after insert on public.issuer_details
for each row execute function public.create_issuer_links_on_details_insert();

-- ===== §3.7 price_history (before issuer_trading: its triggers write here) ==============
create table public.price_history (
    id bigint generated always as identity,
    ticker text not null,
    price numeric not null,
    supply numeric not null,
    timestamp timestamptz not null default now(),
    constraint price_history_pkey primary key (id),
    constraint fk_price_history_ticker foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade
);
create index idx_price_history_ticker_timestamp on public.price_history (ticker, timestamp desc);
create index idx_price_history_timestamp on public.price_history (timestamp desc);
alter table public.price_history enable row level security;
create policy "Allow public read access on price_history" on public.price_history
for select to public using (true);
create policy "Service role full access price_history" on public.price_history
for all to service_role using (true) with check (true);

-- ===== §3.2 issuer_trading ================================================================
-- LEGACY: no check constraints at all, current_price a plain column anyone may set.
create table public.issuer_trading (
    id uuid not null default gen_random_uuid(),
    ticker text not null,
    current_supply numeric not null default 0,
    base_price numeric not null default 1.00,
    price_step numeric not null default 0.01,
    current_price numeric not null default 1.00,
    total_usdp numeric not null default 0,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint issuer_trading_pkey primary key (id),
    constraint issuer_trading_ticker_key unique (ticker),
    constraint fk_issuer_trading_ticker foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade
);
create index idx_issuer_trading_ticker on public.issuer_trading (ticker);
alter table public.issuer_trading enable row level security;
create policy "Allow public read access on issuer_trading" on public.issuer_trading
for select to public using (true);
select pg_temp.create_admin_write_policies('issuer_trading');
create policy "Service role full access issuer_trading" on public.issuer_trading
for all to service_role using (true) with check (true);

select pg_temp.create_updated_at_trigger('issuer_trading', 'trigger_issuer_trading_updated_at');

-- LEGACY: a tick on every update that changes price or supply, whoever updates.
create function public.record_price_history()
returns trigger
language plpgsql
security definer
as $$
begin
    if new.current_price is distinct from old.current_price
        or new.current_supply is distinct from old.current_supply then
        insert into public.price_history (ticker, price, supply)
        values (new.ticker, new.current_price, new.current_supply);
    end if;
    return new;
end;
$$;
create trigger trigger_record_price_history
after update on public.issuer_trading
for each row execute function public.record_price_history();

create function public.record_price_history_on_insert()
returns trigger
language plpgsql
security definer
as $$
begin
    insert into public.price_history (ticker, price, supply)
    values (new.ticker, new.current_price, new.current_supply);
    return new;
end;
$$;
create trigger trigger_record_price_history_insert
after insert on public.issuer_trading
for each row execute function public.record_price_history_on_insert();

-- ===== §8 waitlist (the users trigger writes here) =========================================
create table public.waitlist (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    position integer not null,
    referral_code text not null,
    referred_by uuid,
    referral_count integer not null default 0,
    created_at timestamptz default now(),
    constraint waitlist_pkey primary key (id),
    constraint waitlist_user_id_key unique (user_id),
    constraint waitlist_referral_code_key unique (referral_code),
    constraint waitlist_user_id_fkey foreign key (user_id)
    references auth.users (id) on delete cascade
);
create index idx_waitlist_position on public.waitlist (position);
alter table public.waitlist enable row level security;
create policy "Users can view own waitlist entry" on public.waitlist
for select to authenticated using (auth.uid() = user_id);
create policy "Service role full access waitlist" on public.waitlist
for all to service_role using (true) with check (true);

create function public.generate_referral_code()
returns text
language plpgsql
as $$
declare
    v_code text;
begin
    loop
        v_code := 'PV-' || upper(substr(md5(random()::text), 1, 6));
        exit when not exists (select 1 from public.waitlist as w where w.referral_code = v_code);
    end loop;
    return v_code;
end;
$$;

-- ===== §3.3 users =========================================================================
create table public.users (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    username text not null,
    usdp_balance numeric not null default 0,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    terms_accepted_at timestamptz,
    constraint users_pkey primary key (id),
    constraint users_user_id_key unique (user_id),
    constraint users_username_key unique (username),
    constraint fk_users_user_id foreign key (user_id)
    references auth.users (id) on delete cascade,
    constraint users_usdp_balance_non_negative check (usdp_balance >= 0)
);
create index idx_users_user_id on public.users (user_id);
create index idx_users_username on public.users (username);
alter table public.users enable row level security;
-- LEGACY BUG: everyone, anon included, reads every balance.
create policy "Anyone can read users" on public.users
for select to public using (true);
create policy "Users can view own profile" on public.users
for select to authenticated using (auth.uid() = user_id);
create policy "Users can insert own profile" on public.users
for insert to authenticated with check (auth.uid() = user_id);
create policy "Users can update own profile" on public.users
for update to authenticated using (auth.uid() = user_id) with check (auth.uid() = user_id);
create policy "Service role full access users" on public.users
for all to service_role using (true) with check (true);

select pg_temp.create_updated_at_trigger('users', 'trigger_users_updated_at');

-- LEGACY BUG: guards on the JWT's role claim, not the SQL role, so even a SECURITY
-- DEFINER function changing a balance raises inside an 'authenticated' request.
create function public.protect_financial_columns()
returns trigger
language plpgsql
as $$
begin
    if auth.role() = 'authenticated' and new.usdp_balance is distinct from old.usdp_balance then
        raise exception 'You are not authorized to modify your USDP balance directly.';
    end if;
    return new;
end;
$$;
create trigger trigger_protect_financial_columns
before update on public.users
for each row execute function public.protect_financial_columns();

create function public.handle_new_waitlist_entry()
returns trigger
language plpgsql
security definer
as $$
declare
    v_next_position integer;
begin
    select coalesce(max(w.position), 0) + 1 into v_next_position from public.waitlist as w;
    insert into public.waitlist (user_id, position, referral_code)
    values (new.user_id, v_next_position, public.generate_referral_code())
    on conflict (user_id) do nothing;
    return new;
end;
$$;
create trigger on_user_created_add_to_waitlist
after insert on public.users
for each row execute function public.handle_new_waitlist_entry();

-- Sign-ups: upstream's trigger on auth.users creates the users row.
create function public.handle_new_user()
returns trigger
language plpgsql
security definer
as $$
begin
    insert into public.users (user_id, username, usdp_balance)
    values (
        new.id,
        coalesce(new.raw_user_meta_data ->> 'username', split_part(new.email, '@', 1)),
        0
    )
    on conflict (user_id) do nothing;
    return new;
end;
$$;
create trigger on_auth_user_created
after insert on auth.users
for each row execute function public.handle_new_user();

-- ===== §3.4 portfolio =====================================================================
create table public.portfolio (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    ticker text not null,
    pv_amount numeric not null default 0,
    avg_cost_basis numeric not null default 0,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint portfolio_pkey primary key (id),
    constraint portfolio_user_ticker_unique unique (user_id, ticker),
    constraint fk_portfolio_user_id foreign key (user_id)
    references auth.users (id) on delete cascade,
    constraint fk_portfolio_ticker foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade,
    constraint portfolio_pv_amount_non_negative check (pv_amount >= 0),
    constraint portfolio_avg_cost_basis_non_negative check (avg_cost_basis >= 0)
);
create index idx_portfolio_user_id on public.portfolio (user_id);
create index idx_portfolio_ticker on public.portfolio (ticker);
alter table public.portfolio enable row level security;
create policy "Users can view own portfolio" on public.portfolio
for select to authenticated using (auth.uid() = user_id);
create policy "Service role full access portfolio" on public.portfolio
for all to service_role using (true) with check (true);

select pg_temp.create_updated_at_trigger('portfolio', 'trigger_portfolio_updated_at');

-- ===== §3.5 queue =========================================================================
-- LEGACY: no checks (amounts may be 0 or negative), no reason/finish/idempotency columns.
create table public.queue (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    amount_usdp numeric not null default 0,
    amount_pv numeric not null default 0,
    ticker text not null,
    order_type public.order_type not null,
    status public.queue_status not null default 'pending',
    date timestamptz not null default now(),
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint queue_pkey primary key (id),
    constraint fk_queue_user_id foreign key (user_id)
    references auth.users (id) on delete cascade,
    constraint fk_queue_ticker foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade
);
create index idx_queue_ticker on public.queue (ticker);
create index idx_queue_user_id on public.queue (user_id);
create index idx_queue_status on public.queue (status);
create index idx_queue_date on public.queue (date);
alter table public.queue enable row level security;
create policy "Users can view own queue entries" on public.queue
for select to authenticated using (auth.uid() = user_id);
-- LEGACY BUG: while pending, the owner may rewrite any column (amount, type, status).
create policy "Users can update own pending queue entries" on public.queue
for update to authenticated
using (auth.uid() = user_id and status = 'pending')
with check (auth.uid() = user_id);
create policy "Service role full access queue" on public.queue
for all to service_role using (true) with check (true);

select pg_temp.create_updated_at_trigger('queue', 'trigger_queue_updated_at');

-- ===== §3.6 transactions ==================================================================
create table public.transactions (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    amount_usdp numeric not null,
    ticker text not null,
    order_type public.order_type not null,
    status public.transaction_status not null default 'completed',
    avg_price_paid numeric not null,
    pv_traded numeric not null,
    start_price numeric not null,
    end_price numeric not null,
    date timestamptz not null default now(),
    queue_id uuid,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint transactions_pkey primary key (id),
    constraint fk_transactions_user_id foreign key (user_id)
    references auth.users (id) on delete cascade,
    constraint fk_transactions_ticker foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade,
    -- LEGACY: not unique, and the daily cleanup leaves trades with queue_id NULL
    constraint fk_transactions_queue_id foreign key (queue_id)
    references public.queue (id) on delete set null
);
create index idx_transactions_ticker on public.transactions (ticker);
create index idx_transactions_user_id on public.transactions (user_id);
create index idx_transactions_date on public.transactions (date);
create index idx_transactions_status on public.transactions (status);
create index idx_transactions_order_type on public.transactions (order_type);
create index idx_transactions_queue_id on public.transactions (queue_id);
alter table public.transactions enable row level security;
-- LEGACY BUG: everyone reads every trade.
create policy "Anyone can read transactions" on public.transactions
for select to public using (true);
create policy "Users can view own transactions" on public.transactions
for select to authenticated using (auth.uid() = user_id);
select pg_temp.create_admin_write_policies('transactions');
create policy "Service role full access transactions" on public.transactions
for all to service_role using (true) with check (true);

select pg_temp.create_updated_at_trigger('transactions', 'trigger_transactions_updated_at');

-- ===== §3.8 issuer_stats_cache ============================================================
create table public.issuer_stats_cache (
    id uuid not null default gen_random_uuid(),
    ticker text not null,
    current_price numeric not null default 0,
    price_1h_change numeric,
    price_24h_change numeric,
    price_7d_change numeric,
    volume_24h numeric not null default 0,
    holders integer not null default 0,
    market_cap numeric not null default 0,
    circulating_supply numeric not null default 0,
    cached_at timestamptz not null default now(),
    constraint issuer_stats_cache_pkey primary key (id),
    constraint issuer_stats_cache_ticker_key unique (ticker),
    constraint issuer_stats_cache_ticker_fkey foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade
);
create index idx_issuer_stats_cache_ticker on public.issuer_stats_cache (ticker);
create index idx_issuer_stats_cache_cached_at on public.issuer_stats_cache (cached_at desc);
alter table public.issuer_stats_cache enable row level security;
create policy "Allow public read access on issuer_stats_cache" on public.issuer_stats_cache
for select to public using (true);
create policy "Service role full access issuer_stats_cache" on public.issuer_stats_cache
for all to service_role using (true) with check (true);

-- ===== §3.9 deposits (older Soap Pay records, unused) =======================================
create table public.deposits (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    -- LEGACY: the pulled remote schema dropped its positivity check
    amount_usdp numeric not null,
    status text not null default 'pending',
    provider_id text,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    constraint deposits_pkey primary key (id),
    constraint deposits_user_id_fkey foreign key (user_id)
    references auth.users (id) on delete cascade,
    constraint deposits_status_check check (status in ('pending', 'completed', 'failed'))
);
create index idx_deposits_user_id on public.deposits (user_id);
create index idx_deposits_status on public.deposits (status);
create index idx_deposits_provider_id on public.deposits (provider_id);
alter table public.deposits enable row level security;
-- LEGACY: six overlapping policies; users insert and update their own rows in any status.
create policy "Users can view own deposits" on public.deposits
for select using (auth.uid() = user_id);
create policy "Users can insert own deposits" on public.deposits
for insert with check (auth.uid() = user_id);
create policy "Users can update own deposits" on public.deposits
for update using (auth.uid() = user_id);
create policy "Service role can manage deposits" on public.deposits
for all using (auth.role() = 'service_role');
create policy "users_read_own_deposits" on public.deposits
for select to authenticated using (auth.uid() = user_id);
create policy "service_role_all_deposits" on public.deposits
for all using (auth.role() = 'service_role') with check (auth.role() = 'service_role');

-- ===== §3.10 payment_transactions =========================================================
create table public.payment_transactions (
    id uuid not null default gen_random_uuid(),
    user_id uuid not null,
    checkout_id text,
    type text not null,
    status text not null default 'pending',
    amount_cents integer not null,
    balance_after numeric,
    failure_reason text,
    provider_data jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint payment_transactions_pkey primary key (id),
    constraint payment_transactions_checkout_id_key unique (checkout_id),
    constraint payment_transactions_user_id_fkey foreign key (user_id)
    references auth.users (id) on delete cascade,
    constraint payment_transactions_type_check check (type in ('deposit', 'withdrawal')),
    -- LEGACY BUG: the app's withdrawals insert 'reserved', which this check rejects.
    constraint payment_transactions_status_check check (status in (
        'pending', 'succeeded', 'failed', 'held', 'expired', 'terminally_failed', 'returned',
        'voided'
    )),
    constraint payment_transactions_amount_cents_check check (amount_cents > 0)
);
create index idx_payment_transactions_user_id on public.payment_transactions (user_id);
create index idx_payment_transactions_checkout_id on public.payment_transactions (checkout_id);
create index idx_payment_transactions_status on public.payment_transactions (status);
create index idx_payment_transactions_type_status on public.payment_transactions (type, status);
alter table public.payment_transactions enable row level security;
create policy "Users can view own payment transactions" on public.payment_transactions
for select using (auth.uid() = user_id);
-- LEGACY BUG: users may insert their own rows in any status.
create policy "Users can insert own payment transactions" on public.payment_transactions
for insert with check (auth.uid() = user_id);
create policy "Service role can manage payment transactions" on public.payment_transactions
for all using (auth.role() = 'service_role');

select pg_temp.create_updated_at_trigger('payment_transactions', 'payment_transactions_updated_at');

-- ===== §8 the other tables ================================================================
create table public.issuer_requests (
    id uuid not null default gen_random_uuid(),
    name text not null,
    email text not null,
    phone text,
    social_platform text,
    social_handle text,
    desired_ticker text,
    message text,
    status text not null default 'pending',
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    user_id uuid,
    terms_accepted_at timestamptz,
    constraint issuer_requests_pkey primary key (id),
    constraint issuer_requests_user_id_fkey foreign key (user_id)
    references auth.users (id) on delete set null
);
create index idx_issuer_requests_status on public.issuer_requests (status);
create index idx_issuer_requests_user_id on public.issuer_requests (user_id);
alter table public.issuer_requests enable row level security;
create policy "Anyone can submit issuer requests" on public.issuer_requests
for insert to anon, authenticated with check (true);
-- LEGACY: a different claim from everywhere else (app_metadata.role, not .admin)
create policy "Admins can view issuer requests" on public.issuer_requests
for select to authenticated using ((auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');
create policy "Admins can update issuer requests" on public.issuer_requests
for update to authenticated using ((auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');
create policy "Admins can delete issuer requests" on public.issuer_requests
for delete to authenticated using ((auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');

create table public.issuer_invites (
    id uuid not null default gen_random_uuid(),
    email text not null,
    issuer_id uuid not null,
    token uuid not null default gen_random_uuid(),
    expires_at timestamptz not null default (now() + interval '72 hours'),
    is_used boolean not null default false,
    created_at timestamptz default now(),
    constraint issuer_invites_pkey primary key (id),
    constraint issuer_invites_email_key unique (email),
    constraint issuer_invites_token_key unique (token),
    constraint issuer_invites_issuer_id_fkey foreign key (issuer_id)
    references public.issuer_details (id) on delete cascade
);
create index idx_issuer_invites_token on public.issuer_invites (token);
alter table public.issuer_invites enable row level security;
create policy "Service role full access issuer_invites" on public.issuer_invites
for all to service_role using (true) with check (true);

create table public.launch_notifications (
    id uuid not null default gen_random_uuid(),
    email text not null,
    ticker text not null,
    created_at timestamptz default now(),
    constraint launch_notifications_pkey primary key (id),
    constraint launch_notifications_email_ticker_key unique (email, ticker),
    constraint launch_notifications_ticker_fkey foreign key (ticker)
    references public.issuer_details (ticker) on delete cascade
);
create index idx_launch_notifications_ticker on public.launch_notifications (ticker);
alter table public.launch_notifications enable row level security;
create policy "Anyone can sign up for launch notifications" on public.launch_notifications
for insert to anon, authenticated with check (true);
create policy "Admins can view launch notifications" on public.launch_notifications
for select to authenticated
using (coalesce((auth.jwt() -> 'app_metadata' ->> 'admin')::boolean, false));

create table public.security_audit (
    id uuid not null default gen_random_uuid(),
    -- LEGACY BUG: NOT NULL yet ON DELETE SET NULL, so deleting an admin fails
    admin_id uuid not null,
    action text not null,
    target_table text,
    target_id text,
    old_value jsonb,
    new_value jsonb,
    metadata jsonb,
    ip_address inet,
    user_agent text,
    request_id text,
    timestamp timestamptz not null default now(),
    constraint security_audit_pkey primary key (id),
    constraint security_audit_admin_id_fkey foreign key (admin_id)
    references auth.users (id) on delete set null
);
create index idx_security_audit_admin_id on public.security_audit (admin_id);
create index idx_security_audit_timestamp on public.security_audit (timestamp desc);
alter table public.security_audit enable row level security;
create policy "Admins can read audit log" on public.security_audit
for select to authenticated using (public.is_admin());
create policy "Service role can insert audit log" on public.security_audit
for insert to service_role with check (true);
create policy "Service role can read audit log" on public.security_audit
for select to service_role using (true);

-- LEGACY: RLS on and no policy at all (service_role and postgres only)
create table public.rate_limit_log (
    id uuid not null default gen_random_uuid(),
    identifier text not null,
    endpoint text not null,
    created_at timestamptz not null default now(),
    constraint rate_limit_log_pkey primary key (id)
);
create index idx_rate_limit_log_lookup on public.rate_limit_log (identifier, endpoint, created_at);
alter table public.rate_limit_log enable row level security;

-- ===== §5 curve math ======================================================================
-- LEGACY BUG: unbounded numeric and a square root, so each trade's result carries the
-- scale of its inputs (up to ~1,000 decimals after a few trades of a ticker).
create function public.calculate_buy_tokens(
    p_usdp_amount numeric, p_current_price numeric, p_price_step numeric
)
returns numeric
language plpgsql
immutable
as $$
begin
    if p_usdp_amount <= 0 then
        return 0;
    end if;
    if p_price_step = 0 then
        return p_usdp_amount / p_current_price;
    end if;
    -- step/2 * n^2 + P * n - U = 0
    return (-p_current_price + sqrt(p_current_price * p_current_price
        + 2 * p_price_step * p_usdp_amount)) / p_price_step;
end;
$$;

create function public.calculate_sell_usdp(
    p_pv_amount numeric, p_current_price numeric, p_price_step numeric
)
returns numeric
language plpgsql
immutable
as $$
declare
    v_end_price numeric;
begin
    v_end_price := p_current_price - p_price_step * p_pv_amount;
    if v_end_price < 0 then
        raise exception 'Sell would result in negative price';
    end if;
    return p_pv_amount * (p_current_price + v_end_price) / 2;
end;
$$;

-- ===== §5 money and order execution =========================================================
-- LEGACY BUG: executable by anon: anyone mints or burns any user's balance.
create function public.increment_user_balance(p_user_id uuid, p_amount numeric)
returns numeric
language plpgsql
security definer
as $$
declare
    v_new_balance numeric;
begin
    update public.users
    set usdp_balance = usdp_balance + p_amount
    where user_id = p_user_id
    returning usdp_balance into v_new_balance;
    return v_new_balance;
end;
$$;

create function public.execute_buy_order(
    p_user_id uuid, p_ticker text, p_usdp_amount numeric, p_queue_id uuid
)
returns jsonb
language plpgsql
security definer
as $$
declare
    v_balance numeric;
    v_trading public.issuer_trading%rowtype;
    v_tokens numeric;
    v_new_supply numeric;
    v_new_price numeric;
    v_holding public.portfolio%rowtype;
    v_transaction_id uuid;
begin
    select u.usdp_balance into v_balance
    from public.users as u where u.user_id = p_user_id for update;
    -- LEGACY BUG: no users row means v_balance is NULL and the check passes: a free buy.
    if v_balance < p_usdp_amount then
        return jsonb_build_object('success', false, 'error', 'Insufficient balance');
    end if;

    select * into v_trading
    from public.issuer_trading as t where t.ticker = p_ticker for update;
    if not found then
        return jsonb_build_object('success', false, 'error', 'Issuer not found');
    end if;

    v_tokens := public.calculate_buy_tokens(
        p_usdp_amount, v_trading.current_price, v_trading.price_step
    );
    v_new_supply := v_trading.current_supply + v_tokens;
    v_new_price := v_trading.base_price + v_trading.price_step * v_new_supply;

    update public.issuer_trading
    set current_supply = v_new_supply,
        current_price = v_new_price,
        total_usdp = total_usdp + p_usdp_amount
    where ticker = p_ticker;

    update public.users
    set usdp_balance = usdp_balance - p_usdp_amount
    where user_id = p_user_id;

    select * into v_holding
    from public.portfolio as p where p.user_id = p_user_id and p.ticker = p_ticker for update;
    if found then
        update public.portfolio
        set avg_cost_basis = (v_holding.pv_amount * v_holding.avg_cost_basis + p_usdp_amount)
            / (v_holding.pv_amount + v_tokens),
            pv_amount = v_holding.pv_amount + v_tokens
        where id = v_holding.id;
    else
        insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis)
        values (p_user_id, p_ticker, v_tokens, p_usdp_amount / v_tokens);
    end if;

    insert into public.transactions (
        user_id, amount_usdp, ticker, order_type, status, avg_price_paid, pv_traded,
        start_price, end_price, queue_id
    )
    values (
        p_user_id, p_usdp_amount, p_ticker, 'buy', 'completed', p_usdp_amount / v_tokens,
        v_tokens, v_trading.current_price, v_new_price, p_queue_id
    )
    returning id into v_transaction_id;

    return jsonb_build_object(
        'success', true, 'tokens_received', v_tokens, 'transaction_id', v_transaction_id
    );
end;
$$;

create function public.execute_sell_order(
    p_user_id uuid, p_ticker text, p_pv_amount numeric, p_queue_id uuid
)
returns jsonb
language plpgsql
security definer
as $$
declare
    v_holding public.portfolio%rowtype;
    v_trading public.issuer_trading%rowtype;
    v_usdp numeric;
    v_new_supply numeric;
    v_new_price numeric;
    v_transaction_id uuid;
begin
    select * into v_holding
    from public.portfolio as p where p.user_id = p_user_id and p.ticker = p_ticker for update;
    if not found or v_holding.pv_amount < p_pv_amount then
        return jsonb_build_object('success', false, 'error', 'Insufficient holdings');
    end if;

    select * into v_trading
    from public.issuer_trading as t where t.ticker = p_ticker for update;
    if not found then
        return jsonb_build_object('success', false, 'error', 'Issuer not found');
    end if;

    v_usdp := public.calculate_sell_usdp(p_pv_amount, v_trading.current_price, v_trading.price_step);
    v_new_supply := v_trading.current_supply - p_pv_amount;
    v_new_price := v_trading.base_price + v_trading.price_step * v_new_supply;

    update public.issuer_trading
    set current_supply = v_new_supply,
        current_price = v_new_price,
        total_usdp = total_usdp - v_usdp
    where ticker = p_ticker;

    update public.users
    set usdp_balance = usdp_balance + v_usdp
    where user_id = p_user_id;

    -- LEGACY BUG: avg_cost_basis kept even when the position reaches 0.
    update public.portfolio
    set pv_amount = v_holding.pv_amount - p_pv_amount
    where id = v_holding.id;

    insert into public.transactions (
        user_id, amount_usdp, ticker, order_type, status, avg_price_paid, pv_traded,
        start_price, end_price, queue_id
    )
    values (
        p_user_id, v_usdp, p_ticker, 'sell', 'completed', v_usdp / p_pv_amount, p_pv_amount,
        v_trading.current_price, v_new_price, p_queue_id
    )
    returning id into v_transaction_id;

    return jsonb_build_object(
        'success', true, 'usdp_received', v_usdp, 'transaction_id', v_transaction_id
    );
end;
$$;

-- ===== §5 queue processors ================================================================
-- LEGACY BUG: only the queue row is locked. User, issuer and holding are read without
-- locks and issuer_trading/portfolio written back as absolute values from that read, so
-- overlapping callers lose updates (supply != sum of holdings, pools drift).
create function public.process_next_queue_order()
returns jsonb
language plpgsql
security definer
as $$
declare
    v_order public.queue%rowtype;
    v_balance numeric;
    v_trading public.issuer_trading%rowtype;
    v_holding numeric;
    v_avg_cost numeric;
    v_usdp numeric;
    v_tokens numeric;
    v_new_supply numeric;
    v_new_price numeric;
begin
    select * into v_order
    from public.queue as q
    where q.status = 'pending'
    order by q.date
    limit 1
    for update skip locked;
    if not found then
        return jsonb_build_object('processed', false, 'message', 'No pending orders');
    end if;

    update public.queue set status = 'processing' where id = v_order.id;

    begin
        select u.usdp_balance into v_balance from public.users as u where u.user_id = v_order.user_id;
        select * into v_trading from public.issuer_trading as t where t.ticker = v_order.ticker;
        if not found then
            raise exception 'Issuer % not found', v_order.ticker;
        end if;
        select p.pv_amount, p.avg_cost_basis into v_holding, v_avg_cost
        from public.portfolio as p
        where p.user_id = v_order.user_id and p.ticker = v_order.ticker;
        v_holding := coalesce(v_holding, 0);
        v_avg_cost := coalesce(v_avg_cost, 0);

        if v_order.order_type = 'buy' then
            if v_balance is null or v_balance < v_order.amount_usdp then
                raise exception 'Insufficient balance';
            end if;
            v_usdp := v_order.amount_usdp;
            v_tokens := public.calculate_buy_tokens(
                v_usdp, v_trading.current_price, v_trading.price_step
            );
            v_new_supply := v_trading.current_supply + v_tokens;
            v_new_price := v_trading.base_price + v_trading.price_step * v_new_supply;
            update public.issuer_trading
            set current_supply = v_new_supply,
                current_price = v_new_price,
                total_usdp = v_trading.total_usdp + v_usdp
            where id = v_trading.id;
            update public.users set usdp_balance = usdp_balance - v_usdp
            where user_id = v_order.user_id;
            insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis)
            values (
                v_order.user_id, v_order.ticker, v_holding + v_tokens,
                (v_holding * v_avg_cost + v_usdp) / (v_holding + v_tokens)
            )
            on conflict (user_id, ticker) do update
            set pv_amount = excluded.pv_amount, avg_cost_basis = excluded.avg_cost_basis;
        else
            if v_holding < v_order.amount_pv then
                raise exception 'Insufficient holdings';
            end if;
            v_tokens := v_order.amount_pv;
            v_usdp := public.calculate_sell_usdp(
                v_tokens, v_trading.current_price, v_trading.price_step
            );
            v_new_supply := v_trading.current_supply - v_tokens;
            v_new_price := v_trading.base_price + v_trading.price_step * v_new_supply;
            update public.issuer_trading
            set current_supply = v_new_supply,
                current_price = v_new_price,
                total_usdp = v_trading.total_usdp - v_usdp
            where id = v_trading.id;
            update public.users set usdp_balance = usdp_balance + v_usdp
            where user_id = v_order.user_id;
            update public.portfolio set pv_amount = v_holding - v_tokens
            where user_id = v_order.user_id and ticker = v_order.ticker;
        end if;

        insert into public.transactions (
            user_id, amount_usdp, ticker, order_type, status, avg_price_paid, pv_traded,
            start_price, end_price, queue_id
        )
        values (
            v_order.user_id, v_usdp, v_order.ticker, v_order.order_type, 'completed',
            v_usdp / v_tokens, v_tokens, v_trading.current_price, v_new_price, v_order.id
        );
        update public.queue set status = 'completed' where id = v_order.id;
    exception when others then
        -- LEGACY: no reason is stored; the caller only sees processed = false.
        update public.queue set status = 'failed' where id = v_order.id;
        return jsonb_build_object(
            'processed', false, 'order_id', v_order.id, 'error', sqlerrm
        );
    end;

    return jsonb_build_object(
        'processed', true, 'order_id', v_order.id, 'order_type', v_order.order_type,
        'ticker', v_order.ticker, 'usdp', v_usdp, 'pv', v_tokens
    );
end;
$$;

-- LEGACY BUG: stops at the first failed order, and 'failed' is always 0.
create function public.process_all_pending_orders()
returns jsonb
language plpgsql
security definer
as $$
declare
    v_result jsonb;
    v_results jsonb := '[]'::jsonb;
    v_processed integer := 0;
    v_successful integer := 0;
    v_failed integer := 0;
    v_iteration integer := 0;
begin
    while v_iteration < 100 loop
        v_iteration := v_iteration + 1;
        v_result := public.process_next_queue_order();
        exit when not coalesce((v_result ->> 'processed')::boolean, false);
        v_processed := v_processed + 1;
        v_successful := v_successful + 1;
        v_results := v_results || jsonb_build_array(v_result);
    end loop;
    return jsonb_build_object(
        'total_processed', v_processed, 'successful', v_successful, 'failed', v_failed,
        'results', v_results
    );
end;
$$;

create function public.process_order_batch(p_batch_size integer default 50)
returns jsonb
language plpgsql
security definer
as $$
declare
    v_order public.queue%rowtype;
    v_result jsonb;
    v_results jsonb := '[]'::jsonb;
    v_successful integer := 0;
    v_failed integer := 0;
begin
    for v_order in
        select * from public.queue as q
        where q.status = 'pending'
        order by q.date
        limit p_batch_size
        for update skip locked
    loop
        begin
            if v_order.order_type = 'buy' then
                v_result := public.execute_buy_order(
                    v_order.user_id, v_order.ticker, v_order.amount_usdp, v_order.id
                );
            else
                v_result := public.execute_sell_order(
                    v_order.user_id, v_order.ticker, v_order.amount_pv, v_order.id
                );
            end if;
        exception when others then
            v_result := jsonb_build_object('success', false, 'error', sqlerrm);
        end;
        if coalesce((v_result ->> 'success')::boolean, false) then
            update public.queue set status = 'completed' where id = v_order.id;
            v_successful := v_successful + 1;
        else
            update public.queue set status = 'failed' where id = v_order.id;
            v_failed := v_failed + 1;
        end if;
        v_results := v_results || jsonb_build_array(
            jsonb_build_object('order_id', v_order.id) || v_result
        );
    end loop;
    return jsonb_build_object(
        'processed', v_successful + v_failed, 'successful', v_successful, 'failed', v_failed,
        'results', v_results
    );
end;
$$;

-- ===== §5 prices, charts and stats ==========================================================
create function public.get_latest_price(p_ticker text)
returns table (out_ticker text, out_price numeric, out_supply numeric, out_timestamp timestamptz)
language sql
stable
as $$
    select ph.ticker, ph.price, ph.supply, ph.timestamp
    from public.price_history as ph
    where ph.ticker = p_ticker
    order by ph.timestamp desc, ph.id desc
    limit 1
$$;

create function public.get_price_change(p_ticker text, p_period interval default '24 hours')
returns table (
    current_price numeric, previous_price numeric, price_change numeric,
    price_change_percent numeric
)
language sql
stable
as $$
    with latest as (
        select ph.price from public.price_history as ph
        where ph.ticker = p_ticker
        order by ph.timestamp desc, ph.id desc limit 1
    ),
    previous as (
        select coalesce(
            (select ph.price from public.price_history as ph
             where ph.ticker = p_ticker and ph.timestamp <= now() - p_period
             order by ph.timestamp desc, ph.id desc limit 1),
            (select ph.price from public.price_history as ph
             where ph.ticker = p_ticker
             order by ph.timestamp asc, ph.id asc limit 1)
        ) as price
    )
    select
        l.price,
        p.price,
        l.price - p.price,
        case when p.price = 0 then 0 else round((l.price - p.price) / p.price * 100, 2) end
    from latest as l cross join previous as p
$$;

create function public.get_ohlc_data(
    p_ticker text,
    p_interval interval default '5 minutes',
    p_start_time timestamptz default (now() - interval '24 hours'),
    p_end_time timestamptz default now()
)
returns table (
    bucket timestamptz, open numeric, high numeric, low numeric, close numeric,
    volume numeric, avg_price numeric
)
language sql
stable
as $$
    with ticks as (
        select
            date_bin(p_interval, ph.timestamp, p_start_time) as bucket,
            ph.timestamp, ph.id, ph.price, ph.supply,
            abs(ph.supply - lag(ph.supply) over (order by ph.timestamp, ph.id)) as supply_change
        from public.price_history as ph
        where ph.ticker = p_ticker and ph.timestamp >= p_start_time and ph.timestamp <= p_end_time
    )
    select
        t.bucket,
        (array_agg(t.price order by t.timestamp, t.id))[1],
        max(t.price),
        min(t.price),
        (array_agg(t.price order by t.timestamp desc, t.id desc))[1],
        coalesce(sum(t.supply_change), 0),
        avg(t.price)
    from ticks as t
    group by t.bucket
    order by t.bucket
$$;

create function public.get_chart_data_adaptive(
    p_ticker text, p_start_time timestamptz, p_end_time timestamptz,
    p_max_points integer default 200
)
returns table (
    bucket timestamptz, open numeric, high numeric, low numeric, close numeric,
    volume numeric, avg_price numeric
)
language plpgsql
stable
as $$
declare
    v_tick_count integer;
    v_carry_price numeric;
    v_bucket_width interval;
begin
    -- the carry-forward point: last tick before the window, else base price at listing
    select ph.price into v_carry_price
    from public.price_history as ph
    where ph.ticker = p_ticker and ph.timestamp < p_start_time
    order by ph.timestamp desc, ph.id desc limit 1;
    if v_carry_price is null then
        select t.base_price into v_carry_price from public.issuer_trading as t
        where t.ticker = p_ticker;
    end if;
    if v_carry_price is not null then
        return query select p_start_time, v_carry_price, v_carry_price, v_carry_price,
            v_carry_price, 0::numeric, v_carry_price;
    end if;

    select count(*) into v_tick_count from public.price_history as ph
    where ph.ticker = p_ticker and ph.timestamp >= p_start_time and ph.timestamp <= p_end_time;

    if v_tick_count <= p_max_points then
        return query
        select ph.timestamp, ph.price, ph.price, ph.price, ph.price, 0::numeric, ph.price
        from public.price_history as ph
        where ph.ticker = p_ticker and ph.timestamp >= p_start_time
            and ph.timestamp <= p_end_time
        order by ph.timestamp, ph.id;
    else
        v_bucket_width := greatest((p_end_time - p_start_time) / p_max_points, interval '1 second');
        return query
        select o.bucket, o.open, o.high, o.low, o.close, o.volume, o.avg_price
        from public.get_ohlc_data(p_ticker, v_bucket_width, p_start_time, p_end_time) as o;
    end if;
end;
$$;

create function public.refresh_issuer_stats_cache()
returns void
language plpgsql
security definer
as $$
declare
    v_issuer record;
    v_change_1h numeric;
    v_change_24h numeric;
    v_change_7d numeric;
    v_volume numeric;
    v_holders integer;
begin
    for v_issuer in select * from public.issuer_trading loop
        select c.price_change_percent into v_change_1h
        from public.get_price_change(v_issuer.ticker, interval '1 hour') as c;
        select c.price_change_percent into v_change_24h
        from public.get_price_change(v_issuer.ticker, interval '24 hours') as c;
        select c.price_change_percent into v_change_7d
        from public.get_price_change(v_issuer.ticker, interval '7 days') as c;
        select coalesce(sum(abs(t.amount_usdp)), 0) into v_volume
        from public.transactions as t
        where t.ticker = v_issuer.ticker and t.status = 'completed'
            and t.date >= now() - interval '24 hours';
        select count(*) into v_holders
        from public.portfolio as p where p.ticker = v_issuer.ticker and p.pv_amount > 0;

        insert into public.issuer_stats_cache (
            ticker, current_price, price_1h_change, price_24h_change, price_7d_change,
            volume_24h, holders, market_cap, circulating_supply, cached_at
        )
        values (
            v_issuer.ticker, v_issuer.current_price, v_change_1h, v_change_24h, v_change_7d,
            v_volume, v_holders, v_issuer.total_usdp, v_issuer.current_supply, now()
        )
        on conflict (ticker) do update
        set current_price = excluded.current_price,
            price_1h_change = excluded.price_1h_change,
            price_24h_change = excluded.price_24h_change,
            price_7d_change = excluded.price_7d_change,
            volume_24h = excluded.volume_24h,
            holders = excluded.holders,
            market_cap = excluded.market_cap,
            circulating_supply = excluded.circulating_supply,
            cached_at = excluded.cached_at;
    end loop;
end;
$$;

create function public.get_all_issuer_stats()
returns table (
    out_ticker text, out_current_price numeric, out_price_1h_change numeric,
    out_price_24h_change numeric, out_price_7d_change numeric, out_volume_24h numeric,
    out_holders integer, out_market_cap numeric, out_circulating_supply numeric,
    out_cached_at timestamptz
)
language sql
stable
as $$
    select
        c.ticker, c.current_price, c.price_1h_change, c.price_24h_change, c.price_7d_change,
        c.volume_24h, c.holders, c.market_cap, c.circulating_supply, c.cached_at
    from public.issuer_stats_cache as c
    order by c.market_cap desc
$$;

create function public.get_issuer_stats(p_ticker text)
returns table (
    out_ticker text, out_current_price numeric, out_price_1h_change numeric,
    out_price_24h_change numeric, out_price_7d_change numeric, out_volume_24h numeric,
    out_holders integer, out_market_cap numeric, out_circulating_supply numeric,
    out_cached_at timestamptz
)
language sql
stable
as $$
    select
        c.ticker, c.current_price, c.price_1h_change, c.price_24h_change, c.price_7d_change,
        c.volume_24h, c.holders, c.market_cap, c.circulating_supply, c.cached_at
    from public.issuer_stats_cache as c
    where c.ticker = upper(p_ticker)
$$;

-- ===== §5 accounts, admin and waitlist =====================================================
create function public.check_email_exists(p_email text)
returns boolean
language plpgsql
security definer
set search_path = public
as $$
begin
    return exists (select 1 from auth.users as u where lower(u.email) = lower(p_email));
end;
$$;

create function public.get_user_id_by_email(p_email text)
returns uuid
language plpgsql
security definer
set search_path = public
as $$
declare
    v_user_id uuid;
begin
    select u.id into v_user_id from auth.users as u where lower(u.email) = lower(p_email) limit 1;
    return v_user_id;
end;
$$;

create function public.log_audit_entry(
    p_admin_id uuid,
    p_action text,
    p_target_table text default null,
    p_target_id text default null,
    p_old_value jsonb default null,
    p_new_value jsonb default null,
    p_metadata jsonb default null,
    p_ip_address inet default null,
    p_user_agent text default null,
    p_request_id text default null
)
returns uuid
language plpgsql
security definer
set search_path = public
as $$
declare
    v_id uuid;
begin
    insert into public.security_audit (
        admin_id, action, target_table, target_id, old_value, new_value, metadata,
        ip_address, user_agent, request_id
    )
    values (
        p_admin_id, p_action, p_target_table, p_target_id, p_old_value, p_new_value,
        p_metadata, p_ip_address, p_user_agent, p_request_id
    )
    returning id into v_id;
    return v_id;
end;
$$;

-- LEGACY BUG: REVOKE FROM PUBLIC below leaves the direct grant to authenticated, so a
-- signed-in user promotes themself.
create function public.set_admin_claim(p_user_id uuid, p_is_admin boolean)
returns json
language plpgsql
security definer
set search_path = public
as $$
declare
    v_old jsonb;
begin
    select u.raw_app_meta_data into v_old from auth.users as u where u.id = p_user_id;
    update auth.users
    set raw_app_meta_data = coalesce(raw_app_meta_data, '{}'::jsonb)
        || jsonb_build_object('admin', p_is_admin)
    where id = p_user_id;
    -- fails without a JWT subject: security_audit.admin_id is NOT NULL
    perform public.log_audit_entry(
        auth.uid(), 'set_admin_claim', 'auth.users', p_user_id::text,
        v_old, jsonb_build_object('admin', p_is_admin)
    );
    return json_build_object('success', true, 'user_id', p_user_id, 'admin', p_is_admin);
end;
$$;

create function public.get_waitlist_neighbors(p_user_id uuid, p_radius integer)
returns table (
    "position" integer, username text, "userId" uuid, "isCurrentUser" boolean,
    "referralCode" text, "referralCount" integer
)
language plpgsql
security definer
as $$
declare
    v_position integer;
begin
    select w.position into v_position from public.waitlist as w where w.user_id = p_user_id;
    if v_position is null then
        return;
    end if;
    return query
    select w.position, u.username, w.user_id, w.user_id = p_user_id, w.referral_code,
        w.referral_count
    from public.waitlist as w
    left join public.users as u on u.user_id = w.user_id
    where w.position between v_position - p_radius and v_position + p_radius
    order by w.position;
end;
$$;

create function public.process_referral(p_new_user_id uuid, p_referral_code text)
returns json
language plpgsql
security definer
as $$
declare
    v_referrer public.waitlist%rowtype;
    v_new_position integer;
begin
    select * into v_referrer from public.waitlist as w
    where w.referral_code = upper(p_referral_code);
    if not found then
        return json_build_object('success', false, 'error', 'Invalid referral code');
    end if;
    if v_referrer.user_id = p_new_user_id then
        return json_build_object('success', false, 'error', 'Cannot refer yourself');
    end if;
    if exists (
        select 1 from public.waitlist as w
        where w.user_id = p_new_user_id and w.referred_by is not null
    ) then
        return json_build_object('success', false, 'error', 'Already referred');
    end if;

    update public.waitlist set referred_by = v_referrer.user_id where user_id = p_new_user_id;

    -- the referrer moves up 50 places; everyone in between moves down one
    v_new_position := greatest(1, v_referrer.position - 50);
    update public.waitlist
    set position = position + 1
    where position >= v_new_position and position < v_referrer.position;
    update public.waitlist
    set position = v_new_position, referral_count = referral_count + 1
    where id = v_referrer.id;

    return json_build_object(
        'success', true, 'referrer_id', v_referrer.user_id, 'new_position', v_new_position
    );
end;
$$;

-- ===== §4 privileges ======================================================================
-- The era's default privileges: every table in public ALL to the three API roles (the
-- platform stand-in grants functions and sequences by default, tables no longer).
grant all on all tables in schema public to anon, authenticated, service_role;
grant all on public.users, public.waitlist to supabase_auth_admin;
grant usage on schema public to supabase_auth_admin;
grant usage, select on all sequences in schema public to supabase_auth_admin;
grant execute on function public.generate_referral_code() to supabase_auth_admin;

revoke execute on function public.get_user_id_by_email(text) from public, anon, authenticated;
grant execute on function public.get_user_id_by_email(text) to service_role;
-- LEGACY BUG: these revokes leave the direct grants to anon and authenticated in place.
revoke execute on function public.set_admin_claim(uuid, boolean) from public;
revoke execute on function public.log_audit_entry(
    uuid, text, text, text, jsonb, jsonb, jsonb, inet, text, text
) from public;
revoke execute on function public.check_email_exists(text) from public;

-- ===== §6 pg_cron jobs (owned by postgres) =================================================
create extension if not exists pg_cron;
grant usage on schema cron to postgres;

select cron.schedule(
    'refresh-issuer-stats-cache', '*/5 * * * *', 'select refresh_issuer_stats_cache()'
);
-- LEGACY BUG: price_history has neither volume_24h nor recorded_at nor a unique key on
-- them: this job fails every hour.
select cron.schedule(
    'hourly-price-snapshot', '0 * * * *',
    $job$
    insert into price_history (ticker, price, supply, volume_24h, recorded_at)
    select it.ticker, it.current_price, it.current_supply,
        coalesce((select sum(t.amount_usdp) from transactions t
                  where t.ticker = it.ticker and t.date >= now() - interval '24 hours'), 0),
        date_trunc('hour', now())
    from issuer_trading it
    on conflict (ticker, recorded_at) do nothing
    $job$
);
-- LEGACY: one unbounded delete; cancelled rows stay forever; trades keep queue_id NULL.
select cron.schedule(
    'cleanup-old-queue-entries', '0 3 * * *',
    $job$
    delete from queue
    where status in ('completed', 'failed')
      and updated_at < now() - interval '7 days'
    $job$
);
select cron.schedule(
    'cleanup-rate-limit-log', '*/15 * * * *',
    $job$delete from rate_limit_log where created_at < now() - interval '1 hour'$job$
);

-- ===== §7 publication, storage, Dashboard webhook =========================================
alter publication supabase_realtime add table public.issuer_trading, public.transactions;

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values (
    'images', 'images', true, 10485760,
    array['image/png', 'image/jpeg', 'image/webp', 'image/gif']
);
create policy "Public read access for images" on storage.objects
for select to public using (bucket_id = 'images');
create policy "Admins can upload images" on storage.objects
for insert to authenticated
with check (bucket_id = 'images'
    and coalesce((auth.jwt() -> 'app_metadata' ->> 'admin')::boolean, false));
create policy "Admins can update images" on storage.objects
for update to authenticated
using (bucket_id = 'images'
    and coalesce((auth.jwt() -> 'app_metadata' ->> 'admin')::boolean, false));
create policy "Admins can delete images" on storage.objects
for delete to authenticated
using (bucket_id = 'images'
    and coalesce((auth.jwt() -> 'app_metadata' ->> 'admin')::boolean, false));

-- Made in the Dashboard, not by a migration: one HTTP request per inserted order. The
-- bearer token is a stand-in (the real one was published by the pulled schema: leaked).
create trigger "process-queue-webhook"
after insert on public.queue
for each row execute function supabase_functions.http_request(
    'https://pauvlegacy.supabase.co/functions/v1/process-queue',
    'POST',
    '{"Content-type":"application/json","Authorization":"Bearer legacy-service-role-key-stand-in"}',
    '{}',
    '5000'
);

-- ===== Seeds ================================================================================
-- Ten profiles without issuer_trading rows (present before is_hidden existed: false).
insert into public.issuer_details (name, ticker, headline, tag, is_hidden) values
('JX Sterling', 'JXSTERLING', 'Producer and DJ', 'Music', false),
('Ari Vane', 'ARVANE', 'Streetwear designer', 'Fashion', false),
('Sam Thorne', 'STHORNE', 'Trail runner', 'Sports', false),
('Minka Moon', 'MINKAMOON', 'Illustrator', 'Art', false),
('Lena Vance', 'LVANCE', 'Tech reviewer', 'Tech', false),
('Elara Finn', 'ELARAFINN', 'Singer-songwriter', 'Music', false),
('Kobi Rivers', 'KOBRIVERS', 'Chef', 'Food', false),
('Zara Xo', 'ZARAXO', 'Dancer', 'Art', false),
('Bo Blaise', 'BBLAISE', 'Comedian', 'Comedy', false),
('Orla Quinn', 'ORQUINN', 'Esports player', 'Gaming', false);

insert into public.tags (tag, description) values
('Music', 'Musicians, producers and DJs'),
('Fashion', 'Designers and models'),
('Sports', 'Athletes'),
('Art', 'Artists and illustrators'),
('Tech', 'Builders and reviewers'),
('Gaming', 'Streamers and players');

-- set_initial_admin: one hard-coded auth user (absent here, so no row changes)
update auth.users
set raw_app_meta_data = coalesce(raw_app_meta_data, '{}'::jsonb) || '{"admin": true}'::jsonb
where id = '5b1c7a7e-2f4e-4d6b-9a37-0c1e8f6d2a11';

-- ===== §1 the CLI's migration history ======================================================
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version text not null primary key,
    statements text [],
    name text
);
insert into supabase_migrations.schema_migrations (version, statements, name)
select v.version, array['-- applied by upstream (pauvfeb): ' || v.name], v.name
from (values
    ('20260204165541', 'create_issuer_details_table'),
    ('20260204180000', 'seed_issuer_details'),
    ('20260204190000', 'add_issuer_details_rls_policy'),
    ('20260204203000', 'create_tags_table'),
    ('20260204204500', 'seed_tags'),
    ('20260204205000', 'add_issuer_details_ticker_unique'),
    ('20260204210000', 'create_issuer_trading_table'),
    ('20260204211000', 'create_queue_table'),
    ('20260204212000', 'create_transactions_table'),
    ('20260204213000', 'create_users_table'),
    ('20260204214000', 'create_portfolio_table'),
    ('20260204215000', 'create_user_trigger'),
    ('20260204215500', 'backfill_existing_users'),
    ('20260204220000', 'create_admin_custom_claims'),
    ('20260204221000', 'create_security_audit_table'),
    ('20260204222000', 'add_admin_rls_policies'),
    ('20260204223000', 'set_initial_admin'),
    ('20260204224000', 'add_issuer_details_admin_rls'),
    ('20260204225000', 'create_price_history_table'),
    ('20260204225500', 'create_price_history_trigger'),
    ('20260204226000', 'create_ohlc_functions'),
    ('20260204227000', 'create_issuer_stats_cache'),
    ('20260204228000', 'create_stats_cache_functions'),
    ('20260204229000', 'setup_pg_cron_jobs'),
    ('20260204230000', 'enable_realtime_for_trading'),
    ('20260205100000', 'create_issuer_requests_table'),
    ('20260205110000', 'fix_market_cap_use_total_usdp'),
    ('20260205120000', 'create_images_storage_bucket'),
    ('20260206170000', 'create_launch_notifications_table'),
    ('20260206180000', 'create_issuer_links_table'),
    ('20260206181000', 'create_issuer_links_trigger'),
    ('20260206182000', 'add_issuer_links_admin_rls'),
    ('20260210100000', 'create_deposits_table'),
    ('20260210200000', 'create_payment_transactions_table'),
    ('20260216100000', 'add_user_id_to_issuer_details'),
    ('20260216100100', 'create_issuer_invites_table'),
    ('20260216100200', 'issuer_details_owner_rls'),
    ('20260216120000', 'add_is_hidden_to_issuer_details'),
    ('20260216130000', 'issuer_links_owner_rls'),
    ('20260216140000', 'change_is_hidden_default_true'),
    ('20260216150000', 'add_user_id_to_issuer_requests'),
    ('20260217100000', 'create_get_user_id_by_email'),
    ('20260218100000', 'increase_images_bucket_size_limit'),
    ('20260218200000', 'add_terms_accepted_columns'),
    ('20260219000000', 'fix_users_rls'),
    ('20260219000100', 'fix_portfolio_rls'),
    ('20260219000200', 'fix_queue_rls'),
    ('20260219000300', 'atomic_functions'),
    ('20260219000400', 'add_performance_indexes'),
    ('20260219000500', 'batch_queue_processor'),
    ('20260220100000', 'create_waitlist_table'),
    ('20260220110000', 'add_referral_system'),
    ('20260220120000', 'fix_waitlist_neighbors_return_type'),
    ('20260223100000', 'create_rate_limit_log_table'),
    ('20260223110000', 'create_adaptive_chart_function'),
    ('20260223120000', 'chart_carry_forward_price'),
    ('20260225100000', 'check_email_exists'),
    ('20260226223917', 'remote_schema'),
    ('20260303211842', 'remove_usdp_bonus')
) as v (version, name);
