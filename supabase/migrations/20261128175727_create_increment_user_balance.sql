-- The Pauv app's payment flow credits and debits balances with increment_user_balance: keep
-- its name, arguments and result, but record every movement in the ledger, refuse bad
-- amounts and overdrafts, and let only the service role call it.
create function public.increment_user_balance(p_user_id uuid, p_amount numeric)
returns numeric
language plpgsql
set search_path = ''
as $$
begin
    if not exists (select from public.users as u where u.user_id = p_user_id) then
        return null;
    end if;
    if p_amount = 0 then
        return (select u.usdp_balance from public.users as u where u.user_id = p_user_id);
    end if;
    -- NaN and infinities reach move_usdp, which refuses them with a clear message.
    return pauv.move_usdp(p_user_id, abs(p_amount), case when p_amount < 0 then -1 else 1 end);
end;
$$;

comment on function public.increment_user_balance(uuid, numeric) is
'Service role only (the app''s payments): adds p_amount USDP (negative: withdraws) to a '
'user''s balance through the ledger, as deposit_usdp / withdraw_usdp do, and returns the new '
'balance; null when the user has no account. Raises 22023 on a bad amount, PA001 when a '
'withdrawal exceeds the balance.';

grant execute on function public.increment_user_balance(uuid, numeric) to service_role;
