-- Demo, step 1: sign up 300 traders (as Supabase Auth would) and deposit their USDP:
-- 500 to 2,750 each, through the service-role deposit function.
insert into auth.users (id, email, raw_user_meta_data)
select
    gen_random_uuid() as id,
    format('trader%s@demo.pauv.test', g) as email,
    jsonb_build_object('username', format('trader%s', g)) as raw_user_meta_data
from generate_series(1, 300) as g;

with traders as (
    select
        u.user_id,
        row_number() over (order by u.username) as n
    from public.users as u
    where u.username like 'trader%'
)

select
    count(*) as traders_funded,
    sum(public.deposit_usdp(t.user_id, 500 + (t.n % 10) * 250)) as usdp_deposited
from traders as t;
