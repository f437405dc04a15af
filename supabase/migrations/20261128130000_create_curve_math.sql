-- The bonding-curve arithmetic of DESIGN.md, exact in NUMERIC and rounding in the
-- pool's favour. Pure functions, so tests can check them against an oracle directly.

-- Comparing 2*cost with 2*budget keeps every step a multiplication: exact, no division.
create function pauv.buy_quantity(p_price numeric, p_step numeric, p_usdp numeric)
returns numeric
language plpgsql
immutable strict
set search_path = ''
as $$
declare
    v_tick constant numeric := 0.00000001;
    v_n numeric;
begin
    -- The real root of s/2*n^2 + p*n = U, then corrected to the exact floor on the
    -- 1e-8 grid (sqrt and division are approximate; the loops make it exact).
    v_n := trunc((sqrt(p_price * p_price + 2 * p_step * p_usdp) - p_price) / p_step, 8);
    if v_n < 0 then
        v_n := 0;
    end if;
    while v_n > 0 and 2 * p_price * v_n + p_step * v_n * v_n > 2 * p_usdp loop
        v_n := v_n - v_tick;
    end loop;
    while 2 * p_price * (v_n + v_tick) + p_step * (v_n + v_tick) * (v_n + v_tick) <= 2 * p_usdp loop
        v_n := v_n + v_tick;
    end loop;
    return v_n;
end;
$$;

comment on function pauv.buy_quantity(numeric, numeric, numeric) is
'Tokens a buy of p_usdp receives at price p_price on a curve of step p_step: the largest '
'multiple of 1e-8 whose cost p*n + s*n^2/2 is at most p_usdp.';

create function pauv.sell_payout(p_price numeric, p_step numeric, p_pv numeric)
returns numeric
language sql
immutable strict
set search_path = ''
as $$
    -- (p*n - s*n^2/2) rounded down to 1e-6, computed as trunc((2pn - sn^2) * 500000) / 1e6
    -- so that no inexact division happens before the rounding.
    select trunc((2 * p_price * p_pv - p_step * p_pv * p_pv) * 500000) * 0.000001
$$;

comment on function pauv.sell_payout(numeric, numeric, numeric) is
'USDP a sell of p_pv tokens pays at price p_price on a curve of step p_step: '
'p*n - s*n^2/2 rounded down to 1e-6.';
