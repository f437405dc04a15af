-- Deposits and withdrawals: the only way USDP enters or leaves the market. The ledger
-- lets the invariant audit prove trading never creates or destroys money.
create table pauv.usdp_movements (
    id bigint generated always as identity primary key,
    user_id uuid not null references public.users (user_id) on delete cascade,
    amount numeric not null
    constraint usdp_movements_amount_nonzero check (amount <> 0 and amount = round(amount, 6)),
    created_at timestamptz not null default now()
);

comment on table pauv.usdp_movements is
'Ledger of deposits (positive) and withdrawals (negative): the sum equals all USDP '
'held by users and pools together.';

create index usdp_movements_user_id_idx on pauv.usdp_movements (user_id);

-- Shared by deposit and withdrawal: validates, moves the balance, writes the ledger.
create function pauv.move_usdp(p_user_id uuid, p_amount numeric, p_direction integer)
returns numeric
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_balance numeric;
begin
    if p_amount is null or p_amount = 'NaN' or p_amount in ('Infinity', '-Infinity') then
        raise exception 'amount must be a finite number, got %', coalesce(p_amount::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount <= 0 or p_amount > 1000000000 then
        raise exception 'amount must be greater than 0 and at most 1000000000 USDP, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount <> round(p_amount, 6) then
        raise exception 'USDP amounts have at most 6 decimals, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;

    select u.usdp_balance into v_balance
    from public.users as u
    where u.user_id = p_user_id
    for update;
    if not found then
        raise exception 'unknown user %', p_user_id using errcode = 'no_data_found';
    end if;
    if p_direction < 0 and v_balance < p_amount then
        raise exception 'insufficient balance: % USDP available, % requested', v_balance, p_amount
            using errcode = 'PA001';
    end if;

    update public.users
    set usdp_balance = usdp_balance + p_direction * p_amount
    where user_id = p_user_id
    returning usdp_balance into v_balance;

    insert into pauv.usdp_movements (user_id, amount) values (p_user_id, p_direction * p_amount);
    return v_balance;
end;
$$;

comment on function pauv.move_usdp(uuid, numeric, integer) is
'Moves USDP into (+1) or out of (-1) a user balance and records it in the ledger.';

create function public.deposit_usdp(p_user_id uuid, p_amount numeric)
returns numeric
language sql
set search_path = ''
as $$
    select pauv.move_usdp(p_user_id, p_amount, 1)
$$;

comment on function public.deposit_usdp(uuid, numeric) is
'Service role only: credits p_amount USDP (0 < amount <= 1e9, at most 6 decimals) to a '
'user and returns the new balance.';

create function public.withdraw_usdp(p_user_id uuid, p_amount numeric)
returns numeric
language sql
set search_path = ''
as $$
    select pauv.move_usdp(p_user_id, p_amount, -1)
$$;

comment on function public.withdraw_usdp(uuid, numeric) is
'Service role only: debits p_amount USDP from a user (never below 0) and returns the new '
'balance. Raises PA001 when the balance is short.';

grant usage on schema pauv to service_role;
grant execute on function pauv.move_usdp(uuid, numeric, integer) to service_role;
grant execute on function public.deposit_usdp(uuid, numeric) to service_role;
grant execute on function public.withdraw_usdp(uuid, numeric) to service_role;
