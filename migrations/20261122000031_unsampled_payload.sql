-- Issue 26: ANALYZE keeps no statistics of the rating's payload columns, which no query filters,
-- joins or groups on (hcp_store::UNSAMPLED_COLUMNS; the binary sets the same on every partition
-- it creates, since CREATE TABLE ... LIKE does not copy statistics targets). Detoasting and
-- sorting them took about a third of an ANALYZE of a month's partition (1.5 s of a core at
-- 380 000 rows), and the aggregator analyses a young partition as it grows.
ALTER TABLE ratings
    ALTER COLUMN attribution SET STATISTICS 0,
    ALTER COLUMN rater SET STATISTICS 0,
    ALTER COLUMN dimensions SET STATISTICS 0,
    ALTER COLUMN comment SET STATISTICS 0,
    ALTER COLUMN dim_scopes SET STATISTICS 0;
