-- Demo, last step: the operator's view of the market after the session.
\pset footer off
\echo
\echo '== Queue status (pauv.queue_status) =='
select
    status,
    count,
    oldest,
    newest
from pauv.queue_status;

\echo '== Finished orders in the queue: kind, outcome, why failed (error_message to its colon) =='
select
    o.kind,
    o.status,
    o.failed_because,
    count(*) as orders
from (
    select
        q.status,
        split_part(q.error_message, ':', 1) as failed_because,
        case
            when q.closes_position then 'close_position'
            when q.min_receive is not null then q.order_type || ' with min_receive'
            else q.order_type
        end as kind
    from public.queue as q
    where q.status in ('completed', 'failed')
) as o
group by o.kind, o.status, o.failed_because
order by o.kind, o.status, o.failed_because;

\echo '== Top issuers by 24 h volume (issuer_stats_cache) =='
select
    ticker,
    current_price,
    price_1h_change as change_1h_pct,
    price_24h_change as change_24h_pct,
    volume_24h,
    holders,
    market_cap,
    circulating_supply
from public.issuer_stats_cache
order by volume_24h desc, ticker asc
limit 5;

\echo '== Last hourly candles of AAPL (get_ohlc_data) =='
select
    bucket,
    open,
    high,
    low,
    close,
    volume,
    avg_price
from public.get_ohlc_data('AAPL', '1 hour', now() - interval '8 hours', now())
order by bucket desc
limit 6;

\echo '== Job health (pauv.cron_job_health) =='
select
    jobname,
    schedule,
    active,
    last_status,
    last_start,
    last_duration,
    failures_24h,
    last_error
from pauv.cron_job_health;

\echo '== Invariant audit (audit_market_invariants: no rows = clean) =='
select
    invariant,
    ticker,
    details
from public.audit_market_invariants();

select
    case
        when count(*) = 0 then 'audit clean: every invariant holds exactly'
        else format('AUDIT FOUND %s VIOLATIONS', count(*))
    end as audit_result
from public.audit_market_invariants();
