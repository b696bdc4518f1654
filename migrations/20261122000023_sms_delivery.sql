-- SMS delivery (短信提醒评价, 回访 by SMS): one row per SMS in the notification outbox, drained
-- by the sms component's sender through the configured gateway, and the opt-out list.
--
-- A message names its recipient symbolically (`record:<no>`, `rater:<rating id>`); the sender
-- opens the sealed phone number at send time and keeps only its keyed digest here.
CREATE TABLE sms_messages (
    notification_id    bigint PRIMARY KEY REFERENCES notifications (id),
    recipient          text NOT NULL,
    -- `invitation` or `callback` (hcp_domain::sms::SmsTemplate) and its params {service, link}.
    template           text NOT NULL,
    params             jsonb NOT NULL,
    state              text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed', 'delivered')),
    attempts           integer NOT NULL DEFAULT 0,
    -- When the sender may take it next (also its lease while an attempt runs).
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_attempt_at    timestamptz,
    -- A category (`quiet_hours`, `daily_cap`, `opted_out`, `no_phone`, `http_503`, `timeout`,
    -- the vendor's code …), never a phone number or a vendor's free text.
    last_error         text,
    gateway            text,
    gateway_message_id text,
    phone_digest       bytea,
    sent_at            timestamptz,
    delivered_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_messages_due ON sms_messages (next_attempt_at) WHERE state = 'queued';
CREATE INDEX sms_messages_by_gateway_id ON sms_messages (gateway_message_id)
    WHERE gateway_message_id IS NOT NULL;
CREATE INDEX sms_messages_recent ON sms_messages (notification_id DESC);

-- Numbers that answered 退订 / TD (or an admin added): never messaged again. Keyed digests only.
CREATE TABLE sms_opt_outs (
    phone_digest bytea PRIMARY KEY,
    source       text NOT NULL CHECK (source IN ('reply', 'admin')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Citizens' messages queued before this migration join the queue.
INSERT INTO sms_messages (notification_id, recipient, template, params)
SELECT id, recipient,
       CASE WHEN kind = 'callback_sms' THEN 'callback' ELSE 'invitation' END,
       jsonb_build_object('service', subject, 'link', coalesce(substring(body FROM '(https?://[^ )]+)'), ''))
  FROM notifications
 WHERE sent_at IS NULL AND (recipient LIKE 'rater:%' OR recipient LIKE 'record:%');
