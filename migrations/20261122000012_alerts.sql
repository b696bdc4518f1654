-- Threshold alert rules and the alerts they raised (fired_at … cleared_at).
CREATE TABLE alert_rules (
    rule_id        text PRIMARY KEY,
    name           text NOT NULL,
    scope          text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('satisfaction_below', 'bad_at_least')),
    threshold      double precision NOT NULL,
    min_ratings    bigint NOT NULL,
    window_minutes bigint NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    alert_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id     text NOT NULL REFERENCES alert_rules (rule_id) ON DELETE CASCADE,
    scope       text NOT NULL,
    scope_id    text NOT NULL,
    -- The unit's region and its ancestors (for supervisors' notifications).
    region_path text[] NOT NULL DEFAULT '{}',
    -- The observed 好评率 or 差评 count when it fired, and the ratings in the window.
    value       double precision NOT NULL,
    ratings     bigint NOT NULL,
    fired_at    timestamptz NOT NULL,
    cleared_at  timestamptz
);
-- At most one open alert per rule and unit.
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, scope_id) WHERE cleared_at IS NULL;
CREATE INDEX alerts_fired ON alerts (fired_at DESC);
