-- Service records belong to the platform that reported them (issue 23, finding 3): only its
-- integration key may report more events or ask invitations for them. Their attribution fields
-- (item, department, hall, windows, staff) are set once; a change afterwards is a correction
-- by an operator, recorded here with its reason.
ALTER TABLE service_records ADD COLUMN reported_by text;

CREATE TABLE service_record_corrections (
    correction_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_record_no text NOT NULL REFERENCES service_records (service_record_no),
    field             text NOT NULL,
    old_value         text,
    new_value         text,
    reason            text NOT NULL,
    corrected_by      text NOT NULL,
    corrected_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX service_record_corrections_by_record ON service_record_corrections (service_record_no, corrected_at);

-- Every SMS invitation sent, for the daily caps per key and per number (a keyed digest, never
-- the number).
CREATE TABLE sms_sends (
    sent_at       timestamptz NOT NULL DEFAULT now(),
    key_id        text NOT NULL,
    phone_digest  bytea NOT NULL
);
CREATE INDEX sms_sends_by_key ON sms_sends (key_id, sent_at);
CREATE INDEX sms_sends_by_number ON sms_sends (phone_digest, sent_at);
