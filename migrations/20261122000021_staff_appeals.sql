-- Window staff appeal their own bad reviews (docs/domain.md §5.4, "保障部门与窗口工作人员申诉权力").

-- A staff account is bound to one staff member (its department is the directory's).
ALTER TABLE accounts ADD COLUMN staff_id text;
ALTER TABLE accounts DROP CONSTRAINT accounts_role_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check
    CHECK (role IN ('admin', 'supervisor', 'handler', 'callback', 'auditor', 'staff'));
ALTER TABLE accounts ADD CONSTRAINT accounts_staff_bound CHECK ((role = 'staff') = (staff_id IS NOT NULL));

-- One appeal per bad rating, by the staff member it is attributed to, independent of the work
-- order's progress; reviewed (复核) by the order's department or region. Upheld: the rating is
-- excluded from the statistics as an upheld order appeal does.
CREATE TABLE staff_appeals (
    appeal_id    uuid PRIMARY KEY,
    rating_id    uuid NOT NULL UNIQUE REFERENCES ratings (rating_id),
    order_id     uuid REFERENCES work_orders (order_id),
    staff_id     text NOT NULL,
    filed_by     text NOT NULL,
    filed_at     timestamptz NOT NULL,
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    -- References to evidence kept elsewhere (a file id, a recording's number, a URL).
    attachments  text[] NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'upheld', 'rejected')),
    reviewed_by  text,
    reviewer_role text,
    reviewed_at  timestamptz,
    review_note  text,
    CHECK ((status = 'pending') = (reviewed_at IS NULL))
);
CREATE INDEX staff_appeals_staff ON staff_appeals (staff_id, filed_at);
CREATE INDEX staff_appeals_pending ON staff_appeals (filed_at) WHERE status = 'pending';
