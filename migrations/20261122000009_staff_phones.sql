-- Staff phone numbers, only as keyed digests (HMAC-SHA256 under a key derived from HCP_PII_KEY):
-- enough to notice a rater whose phone is a staff member's, never readable, never listed.
CREATE TABLE staff_phones (
    staff_id     text PRIMARY KEY REFERENCES staff (id) ON DELETE CASCADE,
    phone_digest bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_phones_digest ON staff_phones (phone_digest);
