-- Outbound webhooks (Standard Webhooks): endpoints and the delivery log.
CREATE TABLE webhooks (
    webhook_id   text PRIMARY KEY,
    url          text NOT NULL CHECK (url ~ '^https?://'),
    -- whsec_<base64>: shown once at creation, needed to sign every delivery.
    secret       text NOT NULL,
    -- Exact types, `prefix.*` or `*`.
    event_types  text[] NOT NULL,
    description  text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz
);

-- One row per (endpoint, message); attempts are retried with backoff until delivered or failed.
CREATE TABLE webhook_deliveries (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      text NOT NULL REFERENCES webhooks (webhook_id),
    message_id      text NOT NULL,
    event_type      text NOT NULL,
    payload         text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, delivery_id DESC);
