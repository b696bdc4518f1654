-- Indexes Tansu 0.6's SQLite storage lacks. Its fetch looks up each record's headers by
-- (topition, offset_id) in a table with no index on them, so a fetch costs records × table size:
-- measured on 42 120 records, one 1 MiB fetch took 11 s (past the consumer session timeout, so the
-- aggregator never got a batch) and 0.02 s with this index. Applied after each start
-- (deploy/local/stack.sh, tests/support PrivateBroker); idempotent.
CREATE INDEX IF NOT EXISTS hcp_header_topition_offset ON header (topition, offset_id);
