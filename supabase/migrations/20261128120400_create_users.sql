-- Users and their USDP balances, one row per auth.users row, created by a trigger at
-- sign-up with balance 0.
create table public.users (
    user_id uuid primary key references auth.users (id) on delete cascade,
    username text unique,
    usdp_balance public.usdp_amount not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table public.users is
'One row per signed-up user (created by a trigger on auth.users): the USDP balance.';

create trigger users_set_updated_at
before update on public.users
for each row execute function pauv.set_updated_at();

alter table public.users enable row level security;

create policy users_select_own on public.users
for select to authenticated using (user_id = (select auth.uid()));

grant select on public.users to authenticated;
grant select, insert, update, delete on public.users to service_role;

-- SECURITY DEFINER because the auth service, not 'postgres', inserts into auth.users.
create function pauv.create_user_row()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.users (user_id, username)
    values (new.id, nullif(btrim(new.raw_user_meta_data ->> 'username'), ''));
    return new;
end;
$$;

comment on function pauv.create_user_row() is
'AFTER INSERT trigger on auth.users: gives every new user a public.users row, balance 0.';

create trigger on_auth_user_created
after insert on auth.users
for each row execute function pauv.create_user_row();
