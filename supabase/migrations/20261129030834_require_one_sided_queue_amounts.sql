-- A queue row must carry its amount on its own side: a CHECK that is NULL passes, so the old
-- `order_type <> 'buy' or amount_usdp > 0` let a buy without amount_usdp (or a sell whose
-- amount sat in amount_usdp) in, and the processor then wrote NULL supplies and halted.
-- The unused side is NULL (place_order) or 0 (the Pauv app's order API writes 0 there).
alter table public.queue
drop constraint queue_buy_has_usdp,
drop constraint queue_sell_has_pv,
add constraint queue_buy_needs_amount_usdp_and_no_amount_pv check (
    order_type <> 'buy'
    or (amount_usdp is not null and amount_usdp > 0 and coalesce(amount_pv, 0) = 0)
),
add constraint queue_sell_needs_amount_pv_and_no_amount_usdp check (
    order_type <> 'sell'
    or (amount_pv is not null and amount_pv > 0 and coalesce(amount_usdp, 0) = 0)
);

comment on constraint queue_buy_needs_amount_usdp_and_no_amount_pv on public.queue is
'A buy spends amount_usdp (required, > 0); amount_pv is null or 0.';
comment on constraint queue_sell_needs_amount_pv_and_no_amount_usdp on public.queue is
'A sell gives up amount_pv (required, > 0); amount_usdp is null or 0.';
