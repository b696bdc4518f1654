-- Issue 26: `ratings` grows without bound, so it becomes a table range-partitioned by `rated_at`,
-- one partition per Beijing month (`ratings_pYYYYMM`, from 00:00 Asia/Shanghai on the 1st to the
-- same instant of the next month), plus a DEFAULT partition (`ratings_default`) so that no insert
-- can fail for want of a partition. Old months can then be archived and dropped whole
-- (`hcp ratings archive`, docs/retention.md).
--
-- A unique constraint of a partitioned table must include the partition key, so the uniqueness
-- of a rating (its id; one per service record, stage and assess number) moves to `rating_keys`,
-- one small row per rating written in the same transaction as the rating and never archived: a
-- redelivered or duplicate rating still inserts nothing and counts nothing, even once its month is
-- archived. Work orders and staff appeals reference the key. The key also carries `rated_at`, so
-- a look-up by id or by slot finds the one partition to read.
--
-- The binary creates the months ahead (`Store::ensure_rating_partitions`, at startup and daily by
-- the aggregator) and moves any rows the DEFAULT partition caught into their month's partition.

CREATE TABLE rating_keys (
    rating_id          uuid        PRIMARY KEY,
    service_record_no  text        NOT NULL,
    stage              text        NOT NULL,
    assess_number      smallint    NOT NULL CHECK (assess_number IN (1, 2)),
    rated_at           timestamptz NOT NULL,
    CONSTRAINT rating_keys_one_per_stage UNIQUE (service_record_no, stage, assess_number)
);
INSERT INTO rating_keys (rating_id, service_record_no, stage, assess_number, rated_at)
SELECT rating_id, service_record_no, stage, assess_number, rated_at FROM ratings;

ALTER TABLE work_orders
    DROP CONSTRAINT work_orders_rating_id_fkey,
    ADD CONSTRAINT work_orders_rating_id_fkey FOREIGN KEY (rating_id) REFERENCES rating_keys (rating_id);
ALTER TABLE staff_appeals
    DROP CONSTRAINT staff_appeals_rating_id_fkey,
    ADD CONSTRAINT staff_appeals_rating_id_fkey FOREIGN KEY (rating_id) REFERENCES rating_keys (rating_id);

-- The same columns in the same order, with their defaults and checks.
ALTER TABLE ratings RENAME TO ratings_unpartitioned;
CREATE TABLE ratings (LIKE ratings_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
                      INCLUDING COMMENTS)
    PARTITION BY RANGE (rated_at);
CREATE TABLE ratings_default PARTITION OF ratings DEFAULT;

-- A partition for every month holding stored ratings, and from the previous month (a rating may
-- be up to 30 days old) to three months ahead.
DO $$
DECLARE
    first_month timestamp;
    last_month  timestamp;
    m           timestamp;
BEGIN
    SELECT date_trunc('month', LEAST(min(rated_at), now() - interval '1 month') AT TIME ZONE 'Asia/Shanghai'),
           date_trunc('month', GREATEST(max(rated_at), now() + interval '3 months') AT TIME ZONE 'Asia/Shanghai')
      INTO first_month, last_month
      FROM ratings_unpartitioned;
    m := first_month;
    WHILE m <= last_month LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF ratings FOR VALUES FROM (%L) TO (%L)',
                       'ratings_p' || to_char(m, 'YYYYMM'),
                       m AT TIME ZONE 'Asia/Shanghai',
                       (m + interval '1 month') AT TIME ZONE 'Asia/Shanghai');
        m := m + interval '1 month';
    END LOOP;
END $$;

INSERT INTO ratings SELECT * FROM ratings_unpartitioned;
DROP TABLE ratings_unpartitioned;

-- Indexes on the parent, so every partition (present and future) has them. The slot's index
-- (`ratings_one_per_stage`) is `rating_keys_one_per_stage` now: every look-up by slot goes there.
ALTER TABLE ratings ADD CONSTRAINT ratings_pkey PRIMARY KEY (rating_id, rated_at);
CREATE INDEX ratings_rated_at ON ratings (rated_at);
CREATE INDEX ratings_flagged ON ratings (stored_at) WHERE cardinality(attribution_flags) > 0;
CREATE INDEX ratings_integrity_flagged ON ratings (rated_at) WHERE cardinality(integrity_flags) > 0;
CREATE INDEX ratings_device_time ON ratings (device_id, rated_at) WHERE device_id IS NOT NULL;
CREATE INDEX ratings_device_top_grades ON ratings (device_id, rated_at, rating_id)
    WHERE grade = 5 AND device_id IS NOT NULL;
CREATE INDEX ratings_staff_top_grades ON ratings (attr_staff_id, rated_at, rating_id)
    WHERE grade = 5 AND attr_staff_id IS NOT NULL;
ANALYZE rating_keys;
ANALYZE ratings;
