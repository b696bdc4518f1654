-- PostgreSQL's JIT compiler off for hcp's database. hcp's statements are many and short; over
-- 5.4 M stored ratings the aggregator's new-rating look-up, whose cost estimate crossed
-- `jit_above_cost`, spent 1.3 s of its 1.5 s compiling (0.16 s without), once per batch, and the
-- monthly report a third of its time (docs/benchmarks.md). Set on the database rather than per
-- connection: a transaction-pooling PgBouncer refuses a startup `options` parameter, and every
-- new session of this database, pooled or not, takes the database's setting. A migrating role
-- that does not own the database leaves JIT as the server has it (with a warning).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'JIT stays as configured: the migrating role does not own database %', current_database();
END $$;
