-- Rate limits per credential (docs/channels.md "Rate limits"): a kind's default from the
-- configuration (device, integration, platform), or this key's own limit when set (requests a
-- second), set at issue and changeable by an admin.
ALTER TABLE credentials ADD COLUMN rate_limit integer CHECK (rate_limit BETWEEN 1 AND 100000);
