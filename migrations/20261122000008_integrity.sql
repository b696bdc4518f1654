-- Anti-gaming flags (flag, never drop): set by the aggregator when the rating is stored.
ALTER TABLE ratings ADD COLUMN integrity_flags text[] NOT NULL DEFAULT '{}';
CREATE INDEX ratings_integrity_flagged ON ratings (rated_at) WHERE cardinality(integrity_flags) > 0;
CREATE INDEX ratings_device_time ON ratings (device_id, rated_at) WHERE device_id IS NOT NULL;
