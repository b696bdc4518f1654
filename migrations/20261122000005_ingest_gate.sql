-- The ingest gate (issue 4): channel credentials, one first rating per (service record, stage)
-- answered synchronously, and idempotent retries.

-- Per-device keys (window evaluators, self-service terminals) and per-integration keys (12345
-- hotline system, app, web portal, mini-program). The channel and device come from the key, not
-- from the request body. Secrets are 256-bit random values, stored as their SHA-256.
CREATE TABLE credentials (
    key_id        text PRIMARY KEY,
    secret_sha256 bytea NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('device', 'integration')),
    channel       text NOT NULL,
    device_id     text,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK ((kind = 'device') = (device_id IS NOT NULL))
);

-- Claimed before producing, accepted after the broker's acknowledgement: a second first rating of
-- the same stage is refused with 409 naming the first. A claim left 'pending' by a crash is taken
-- over by a later attempt once it is older than the produce timeout.
CREATE TABLE rating_claims (
    service_record_no text NOT NULL,
    stage             text NOT NULL,
    assess_number     smallint NOT NULL,
    rating_id         uuid NOT NULL,
    state             text NOT NULL CHECK (state IN ('pending', 'accepted')),
    claimed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service_record_no, stage, assess_number)
);

-- Idempotency-Key: the first answer per (credential, key) is replayed for the same body.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    idem_key     text NOT NULL,
    body_sha256  bytea NOT NULL,
    status       smallint NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
