-- Bad-review work orders (差评工单, domain.md §5), their audit log (also the outbox of
-- hcp.workorder.event.v1), per-region deadline policies, notifications, the rater's sealed
-- identity on ratings, appeal exclusions, and operator accounts.

-- Deadline policy per region, in working days. The row '*' is the default (Shenzhen 2021:
-- contact the rater within 3 working days, verify and rectify within 10). A region without a row
-- uses its nearest ancestor's, then '*'.
CREATE TABLE deadline_policies (
    region_code     text PRIMARY KEY,
    contact_days    integer NOT NULL CHECK (contact_days BETWEEN 1 AND 60),
    rectify_days    integer NOT NULL CHECK (rectify_days BETWEEN 1 AND 120),
    near_due_days   integer NOT NULL DEFAULT 1 CHECK (near_due_days BETWEEN 0 AND 30),
    source          text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (contact_days <= rectify_days)
);
INSERT INTO deadline_policies (region_code, contact_days, rectify_days, near_due_days, source)
VALUES ('*', 3, 10, 1, '深圳市政务服务“好差评”差评处理办法 (2021): 3 个工作日内联系, 10 个工作日内核实整改');

-- The rater's identity, sealed (AES-256-GCM, key from HCP_PII_KEY) by ingest before it reaches
-- Kafka; only the masked forms are readable without the key.
ALTER TABLE ratings
    ADD COLUMN rater           jsonb,
    -- An upheld appeal takes the rating out of every aggregate; the rating stays with the reason.
    ADD COLUMN excluded_at     timestamptz,
    ADD COLUMN excluded_reason text,
    ADD COLUMN excluded_by     uuid;

CREATE TABLE work_orders (
    order_id          uuid PRIMARY KEY,
    -- One order per bad rating: redelivery of the rating never opens a second.
    rating_id         uuid NOT NULL UNIQUE REFERENCES ratings (rating_id),
    order_no          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    state             text NOT NULL,
    founded           boolean,
    -- The responsible unit (first responsibility of the attribution).
    basis             text NOT NULL,
    department_id     text,
    window_id         text,
    staff_id          text,
    platform          text,
    region_code       text,
    -- The region and its ancestors, nearest first: a supervisor of any of them sees the order.
    region_path       text[] NOT NULL DEFAULT '{}',
    grade             smallint NOT NULL,
    opened_at         timestamptz NOT NULL,
    contact_due_at    timestamptz NOT NULL,
    rectify_due_at    timestamptz NOT NULL,
    -- A deadline computed past the calendar's data (Monday-Friday fallback).
    provisional       boolean NOT NULL DEFAULT false,
    -- 'on_track' | 'near_due' | 'overdue', kept by the sweeper.
    due_status        text NOT NULL DEFAULT 'on_track',
    escalated_at      timestamptz,
    contacted_at      timestamptz,
    rectified_at      timestamptz,
    replied_at        timestamptz,
    closed_at         timestamptz,
    callback_grade    smallint,
    appeal_reason     text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_orders_department ON work_orders (department_id, state, rectify_due_at);
CREATE INDEX work_orders_region_path ON work_orders USING gin (region_path);
CREATE INDEX work_orders_open_due ON work_orders (rectify_due_at) WHERE state NOT IN ('closed', 'appeal_upheld');

-- Every transition (who, when, from, to, note), and every view of a rater's full identity.
-- Rows with published_at NULL are the outbox of hcp.workorder.event.v1.
CREATE TABLE work_order_log (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES work_orders (order_id),
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    actor_role   text NOT NULL,
    action       text NOT NULL,
    from_state   text,
    to_state     text NOT NULL,
    note         text,
    published_at timestamptz
);
CREATE INDEX work_order_log_order ON work_order_log (order_id, event_id);
CREATE INDEX work_order_log_unpublished ON work_order_log (event_id) WHERE published_at IS NULL;

-- Callback re-rating invitations (回访): single use, expiring, token stored as its SHA-256.
CREATE TABLE callback_invitations (
    token_sha256 bytea PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES work_orders (order_id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    grade        smallint CHECK (grade BETWEEN 1 AND 5),
    comment      text
);

-- Notification outbox (SMS to raters, escalations to supervisors, operator alerts). A sender
-- delivers and stamps sent_at; dedupe_key makes repeated alerts one row.
CREATE TABLE notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    order_id    uuid,
    -- The order's region and its ancestors: a supervisor of any of them sees the notification.
    region_path text[] NOT NULL DEFAULT '{}',
    dedupe_key  text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

-- Operator accounts: role admin | supervisor (a region) | handler (a department) | callback | auditor.
CREATE TABLE accounts (
    username       text PRIMARY KEY,
    display_name   text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'supervisor', 'handler', 'callback', 'auditor')),
    department_id  text,
    region_code    text,
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'handler' OR department_id IS NOT NULL),
    CHECK (role <> 'supervisor' OR region_code IS NOT NULL)
);

-- Policies and the calendar feed deadlines computed in the aggregator's snapshot: bump the
-- directory version when they change so running aggregators reload.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['deadline_policies', 'calendar_years', 'calendar_days'] LOOP
        EXECUTE format('CREATE TRIGGER %I_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version()', t, t);
    END LOOP;
END $$;
