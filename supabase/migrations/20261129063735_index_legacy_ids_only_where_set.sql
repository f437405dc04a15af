-- Issue 15, a cheaper write per trade: legacy_id is set only on rows adopted from the Pauv
-- app, yet its unique constraints indexed every row, so every trade insert and every queue
-- status change (not a HOT update: status is in partial-index predicates) added an entry of
-- NULL to them. Partial unique indexes keep the same rule (NULLs never clashed) and index only
-- the adopted rows.
alter table public.queue drop constraint queue_legacy_id_key;
create unique index queue_legacy_id_key on public.queue (legacy_id) where legacy_id is not null;

alter table public.transactions drop constraint transactions_legacy_id_key;
create unique index transactions_legacy_id_key on public.transactions (legacy_id)
where legacy_id is not null;

comment on index public.queue_legacy_id_key is
'An adopted order''s id in the Pauv app''s queue is unique; only adopted rows are indexed.';
comment on index public.transactions_legacy_id_key is
'An adopted trade''s id in the Pauv app''s transactions is unique; only adopted rows are indexed.';
