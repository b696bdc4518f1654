-- The directory (who and what ratings are attributed to) and the attribution snapshot stored on
-- every rating. Every directory write bumps directory_state.version (statement triggers), which
-- is how running aggregators learn that their in-memory snapshot is stale: one cheap read per
-- consumed batch, never a query per rating.

CREATE TABLE regions (
    code        text PRIMARY KEY CHECK (code ~ '^([0-9]{6}|[0-9]{12})$'),
    name        text NOT NULL,
    parent_code text REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE departments (
    id          text PRIMARY KEY,
    -- 统一社会信用代码; the check character is verified by the application (GB 32100-2015).
    uscc        text NOT NULL UNIQUE CHECK (uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    name        text NOT NULL,
    parent_id   text REFERENCES departments (id) DEFERRABLE INITIALLY DEFERRED,
    region_code text NOT NULL REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE halls (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    region_code text NOT NULL REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE windows (
    id             text PRIMARY KEY,
    hall_id        text NOT NULL REFERENCES halls (id) DEFERRABLE INITIALLY DEFERRED,
    name           text NOT NULL,
    role           text NOT NULL CHECK (role IN ('acceptance', 'pickup', 'both')),
    -- A comprehensive window serves several departments (checked against departments by the
    -- application on every write path).
    department_ids text[] NOT NULL CHECK (cardinality(department_ids) >= 1),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id         text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('evaluator', 'terminal')),
    hall_id    text NOT NULL REFERENCES halls (id) DEFERRABLE INITIALLY DEFERRED,
    window_id  text REFERENCES windows (id) DEFERRABLE INITIALLY DEFERRED,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE staff (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    department_id text NOT NULL REFERENCES departments (id) DEFERRABLE INITIALLY DEFERRED,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE service_items (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    department_id text NOT NULL REFERENCES departments (id) DEFERRABLE INITIALLY DEFERRED,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- 窗口签到: who was on duty at a window, and when.
CREATE TABLE roster (
    window_id     text NOT NULL REFERENCES windows (id) DEFERRABLE INITIALLY DEFERRED,
    staff_id      text NOT NULL REFERENCES staff (id) DEFERRABLE INITIALLY DEFERRED,
    signed_in_at  timestamptz NOT NULL,
    signed_out_at timestamptz CHECK (signed_out_at IS NULL OR signed_out_at > signed_in_at),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_id, staff_id, signed_in_at)
);
CREATE INDEX roster_signed_in_at ON roster (signed_in_at);
CREATE INDEX roster_open ON roster (staff_id) WHERE signed_out_at IS NULL;

-- The tag catalogue: each tag's class decides who answers for a bad review carrying it.
CREATE TABLE tags (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    class      text NOT NULL CHECK (class IN ('conduct', 'process', 'platform')),
    negative   boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directory_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL DEFAULT 0
);
INSERT INTO directory_state DEFAULT VALUES;

CREATE FUNCTION bump_directory_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE directory_state SET version = version + 1;
    RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['regions', 'departments', 'halls', 'windows', 'devices', 'staff',
                             'service_items', 'roster', 'tags'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version()',
                       t || '_bump_version', t);
    END LOOP;
END
$$;

-- The attribution snapshot of each rating (as attributed when stored; later directory changes
-- do not rewrite it). agg_scopes lists every aggregate row ('scope:id') the rating counts in,
-- so taking it out again (follow-up, appeal, re-attribution) subtracts exactly what was added.
ALTER TABLE ratings
    ADD COLUMN attr_department_id text,
    ADD COLUMN attr_hall_id       text,
    ADD COLUMN attr_window_id     text,
    ADD COLUMN attr_staff_id      text,
    ADD COLUMN attribution        jsonb,
    ADD COLUMN attribution_flags  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN agg_scopes         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN directory_version  bigint,
    ADD COLUMN attributed_at      timestamptz;

-- Ratings stored before attribution existed were counted under the ids the client reported.
UPDATE ratings SET
    attr_department_id = department_id,
    attr_hall_id = hall_id,
    attr_window_id = window_id,
    attr_staff_id = staff_id,
    agg_scopes = ARRAY['all:all', 'channel:' || channel, 'stage:' || stage]
        || CASE WHEN department_id IS NULL THEN '{}'::text[] ELSE ARRAY['department:' || department_id] END
        || CASE WHEN window_id IS NULL THEN '{}'::text[] ELSE ARRAY['window:' || window_id] END
        || CASE WHEN staff_id IS NULL THEN '{}'::text[] ELSE ARRAY['staff:' || staff_id] END;

CREATE INDEX ratings_flagged ON ratings (stored_at) WHERE cardinality(attribution_flags) > 0;
CREATE INDEX ratings_attr_staff ON ratings (attr_staff_id, rated_at);
