-- audit_market_invariants() is granted to service_role but failed for it with 42501 (issue
-- 11 item 4): the audit (SECURITY INVOKER) sums the deposit ledger for its conservation
-- check. Read access is the least that makes it work; the ledger is still written only by
-- pauv.move_usdp, and pauv.adopted_pools, the audit's other pauv table, is already readable.
grant select on pauv.usdp_movements to service_role;
