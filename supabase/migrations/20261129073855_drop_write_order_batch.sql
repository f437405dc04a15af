-- The engine writes a run as one set inside pauv.process_ticker_orders since
-- 20261129062645; nothing calls the old batch writer any more, and a function nobody calls
-- is one more body to keep in step with the tables.
drop function pauv.write_order_batch(
    text, timestamptz, bigint[], text[], uuid[], text[], text[], numeric[], numeric[], numeric[],
    numeric[], numeric[], numeric[], numeric[]
);
