-- The spine: ratings as stored by the aggregator, pre-aggregated counts, and the aggregator's
-- Kafka positions, all written in one transaction per consumed batch.

-- One row per accepted rating. A (service record, stage, assess_number) is unique: a redelivered
-- or duplicate rating inserts nothing and therefore counts nothing.
CREATE TABLE ratings (
    rating_id          uuid        PRIMARY KEY,
    service_record_no  text        NOT NULL,
    stage              text        NOT NULL,
    assess_number      smallint    NOT NULL CHECK (assess_number IN (1, 2)),
    channel            text        NOT NULL,
    service_item_code  text,
    department_id      text,
    hall_id            text,
    window_id          text,
    staff_id           text,
    device_id          text,
    grade              smallint    NOT NULL CHECK (grade BETWEEN 1 AND 5),
    tags               text[]      NOT NULL DEFAULT '{}',
    comment            text,
    rated_at           timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    stored_at          timestamptz NOT NULL DEFAULT now(),
    -- Set on a first rating when its follow-up (追评) replaces it in the statistics.
    superseded_by      uuid,
    source_topic       text        NOT NULL,
    source_partition   integer     NOT NULL,
    source_offset      bigint      NOT NULL,
    CONSTRAINT ratings_one_per_stage UNIQUE (service_record_no, stage, assess_number)
);
CREATE INDEX ratings_rated_at ON ratings (rated_at);

-- Grade counts per (scope, id, bucket). Changed only by the aggregator's batch transaction.
CREATE TABLE rating_aggregates (
    scope        text        NOT NULL,
    scope_id     text        NOT NULL,
    width        text        NOT NULL CHECK (width IN ('hour', 'day')),
    bucket_start timestamptz NOT NULL,
    n1           bigint      NOT NULL DEFAULT 0,
    n2           bigint      NOT NULL DEFAULT 0,
    n3           bigint      NOT NULL DEFAULT 0,
    n4           bigint      NOT NULL DEFAULT 0,
    n5           bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, scope_id, width, bucket_start)
);

-- The aggregator's Kafka positions: the next offset to read per partition, committed together
-- with the ratings and aggregates it covers. The source of truth on partition assignment.
CREATE TABLE consumer_positions (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Records the aggregator could not decode or that broke an invariant: kept, never dropped.
CREATE TABLE rejected_messages (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    payload     bytea,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
