-- No JIT compilation for the project's roles. The warehouse's queries are incremental
-- merges over a few days, dbt tests and the sink's checks: their cost estimates cross
-- jit_above_cost, and compiling then costs 0.3-0.8 s per query for no gain. Measured on
-- the 2-core reference machine: the incremental sessionisation query 1.69 s -> 0.86 s,
-- and even the full-refresh one (3M events) 15.4 s -> 14.5 s. A session can still turn it
-- back on (`set jit = on`).

alter role {{loader}} set jit = off;
alter role {{transformer}} set jit = off;
alter role {{reader}} set jit = off;
