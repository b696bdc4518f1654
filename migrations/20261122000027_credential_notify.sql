-- Ingest keeps channel credentials in memory (a key is checked on every rating). Every change
-- that alters what a key may do is announced on `hcp_credentials` so every replica drops its copy
-- at once: a revocation is honoured within the notification's delivery, not a cache lifetime.
-- The payload is the key id, or '*' when a device changed (a device key's hall and window come
-- from its device). `last_used_at`, written once a minute per key in use, announces nothing.
CREATE FUNCTION hcp_notify_credential() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'credentials' AND TG_LEVEL = 'ROW' THEN
        PERFORM pg_notify('hcp_credentials', CASE WHEN TG_OP = 'DELETE' THEN OLD.key_id ELSE NEW.key_id END);
    ELSE
        PERFORM pg_notify('hcp_credentials', '*');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER credentials_notify_change
    AFTER INSERT OR DELETE OR UPDATE OF key_id, kind, channel, device_id, name, revoked_at, rate_limit, secret_sha256
    ON credentials FOR EACH ROW EXECUTE FUNCTION hcp_notify_credential();
CREATE TRIGGER credentials_notify_truncate
    AFTER TRUNCATE ON credentials FOR EACH STATEMENT EXECUTE FUNCTION hcp_notify_credential();
CREATE TRIGGER devices_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON devices FOR EACH STATEMENT EXECUTE FUNCTION hcp_notify_credential();
