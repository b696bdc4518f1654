-- Accountability on a verified cause (docs/domain.md §5.3): the verify step records what a bad
-- review was found to be about, supervisors record what they did about a founded one.

-- 'conduct' | 'process' | 'platform' | 'none' (不属实), set by the verify step (and again if a
-- reopened order is verified anew). NULL until verified.
ALTER TABLE work_orders ADD COLUMN cause text
    CHECK (cause IN ('conduct', 'process', 'platform', 'none'));
-- The moment of the latest verification (the monthly 论证 list is by the month of verification).
ALTER TABLE work_orders ADD COLUMN verified_at timestamptz;
ALTER TABLE work_orders ADD CONSTRAINT work_orders_cause_matches_founded
    CHECK (cause IS NULL OR founded IS NULL OR (founded = (cause <> 'none')));
CREATE INDEX work_orders_verified_cause ON work_orders (cause, verified_at) WHERE founded;

-- 教育 / 约谈 / 问责 (conduct) and 流程论证 (process, platform) recorded on an order: who, when,
-- why. Append-only; each row also has an unpublished line in the order's audit log.
CREATE TABLE accountability_actions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES work_orders (order_id),
    kind        text NOT NULL CHECK (kind IN ('education', 'interview', 'accountability', 'process_review')),
    -- The cause it answers, as verified when it was recorded.
    cause       text NOT NULL CHECK (cause IN ('conduct', 'process', 'platform')),
    -- Whom it concerns: the staff member for conduct, the department for a process review.
    staff_id    text,
    department_id text,
    actor       text NOT NULL,
    actor_role  text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL CHECK (length(note) BETWEEN 1 AND 2000)
);
CREATE INDEX accountability_actions_order ON accountability_actions (order_id, id);
CREATE INDEX accountability_actions_staff ON accountability_actions (staff_id, at) WHERE staff_id IS NOT NULL;
