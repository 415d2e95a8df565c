-- Plan the statements inside the write functions once per connection (generic plans), not on
-- every call. PostgreSQL plans a statement with parameters afresh for each call ("custom" plans)
-- until it judges a generic plan no worse; for the array-driven statements of these functions it
-- never does, and planning cost more than running them. Measured on the benchmark's data, in
-- Postgres CPU per call: parley_send 2.0-2.3 ms -> 1.2-1.4 ms, parley_ack with a receipt
-- 1.8-2.1 ms -> 1.2-1.4 ms. The setting applies while the function runs (functions it calls too).
ALTER FUNCTION parley_send(text[], text[], bigint[], bytea[], text[], jsonb[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION parley_ack(bigint[], text[], bigint[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION parley_advance(text, bigint[], text[], text[], bigint[]) SET plan_cache_mode = force_generic_plan;
