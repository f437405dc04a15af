-- Money types: USDP has at most 6 decimals, PV at most 8. A value with more decimals,
-- NaN, an infinity or a negative is rejected, never silently rounded.
create domain public.usdp_amount as numeric
constraint usdp_amount_is_finite check (value > '-Infinity' and value < 1e15)
constraint usdp_amount_is_non_negative check (value >= 0)
constraint usdp_amount_has_at_most_6_decimals check (value = round(value, 6));

comment on domain public.usdp_amount is
'A USDP amount: finite, non-negative, below 1e15, at most 6 decimals (never rounded).';

create domain public.pv_quantity as numeric
constraint pv_quantity_is_finite check (value > '-Infinity' and value < 1e15)
constraint pv_quantity_is_non_negative check (value >= 0)
constraint pv_quantity_has_at_most_8_decimals check (value = round(value, 8));

comment on domain public.pv_quantity is
'A PV token quantity: finite, non-negative, below 1e15, at most 8 decimals (never rounded).';
