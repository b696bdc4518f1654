-- Service records (办件) as the platform reports them, and rating invitations (QR code, SMS link)
-- for one (service record, stage). Issue 4.

CREATE TABLE service_records (
    service_record_no  text PRIMARY KEY,
    service_item_code  text,
    department_id      text,
    hall_id            text,
    accepted_at        timestamptz,
    accepted_window_id text,
    accepted_staff_id  text,
    picked_up_at       timestamptz,
    pickup_window_id   text,
    pickup_staff_id    text,
    -- The applicant's contact, sealed like a rater's identity (for SMS invitations).
    applicant          jsonb,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A signed, expiring, single-use link for one (service record, stage). The token is an HMAC over
-- (invitation_id, expires_at): nothing secret is stored, and a forged token never reaches a row.
CREATE TABLE invitations (
    invitation_id     uuid PRIMARY KEY,
    service_record_no text NOT NULL REFERENCES service_records (service_record_no),
    stage             text NOT NULL CHECK (stage IN ('acceptance', 'pickup', 'online')),
    channel           text NOT NULL CHECK (channel IN ('qr_code', 'sms')),
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    used_at           timestamptz,
    rating_id         uuid
);
CREATE INDEX invitations_record ON invitations (service_record_no, stage);
