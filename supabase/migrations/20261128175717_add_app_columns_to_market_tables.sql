-- The Pauv app reads these columns of its own schema (ids, issuer profile fields, terms
-- acceptance): fresh and adopted projects get the same tables, so the app runs on both.
-- issuer_invites references issuer_details.id as a uuid, so that id becomes one.
alter table public.issuer_details alter column id drop identity;
alter table public.issuer_details alter column id set data type uuid using gen_random_uuid();
alter table public.issuer_details alter column id set default gen_random_uuid();

alter table public.issuer_details
add column bio text,
add column headline text,
add column tag text,
add column photo text,
add column user_id uuid references auth.users (id) on delete set null,
-- Issuers listed before the column existed stay visible; new ones start hidden, as in the app.
add column is_hidden boolean not null default false;
alter table public.issuer_details alter column is_hidden set default true;

comment on column public.issuer_details.user_id is
'The issuer''s own auth account, once the issuer has claimed the profile.';
comment on column public.issuer_details.is_hidden is
'The app hides the issuer while true (the default for a new listing).';

create index issuer_details_user_id_idx on public.issuer_details (user_id);

alter table public.issuer_trading
add column id uuid not null default gen_random_uuid() constraint issuer_trading_id_key unique;

alter table public.users
add column id uuid not null default gen_random_uuid() constraint users_id_key unique,
add column terms_accepted_at timestamptz;

alter table public.portfolio
add column id uuid not null default gen_random_uuid() constraint portfolio_id_key unique;

alter table public.queue add column legacy_id uuid constraint queue_legacy_id_key unique;
alter table public.transactions
add column legacy_id uuid constraint transactions_legacy_id_key unique;

comment on column public.queue.legacy_id is
'For an order adopted from the Pauv app''s own queue: its id there. Null otherwise.';
comment on column public.transactions.legacy_id is
'For a trade adopted from the Pauv app''s own transactions: its id there. Null otherwise.';
