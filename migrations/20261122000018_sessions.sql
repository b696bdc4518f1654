-- Server-side sessions (issue 23, finding 5): a session token names its row, and the access layer
-- refuses a token whose row is revoked or gone. Logout revokes the caller's session; any change
-- to an account (`hcp account add` replaces it: password, role, department, region, disabled)
-- revokes every session of that account in the same transaction.
CREATE TABLE sessions (
    session_id  uuid PRIMARY KEY,
    username    text NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_why text CHECK (revoked_why IN ('logout', 'account_changed'))
);
CREATE INDEX sessions_live_by_account ON sessions (username) WHERE revoked_at IS NULL;

-- Failed logins (finding 4): the audit trail and the memory of the failure limits, shared by
-- every replica. `username` is what was typed (cut to 64 characters); `address` the client's.
CREATE TABLE login_failures (
    at        timestamptz NOT NULL DEFAULT now(),
    username  text NOT NULL,
    address   text NOT NULL,
    reason    text NOT NULL CHECK (reason IN ('wrong_password', 'unknown_account', 'disabled', 'throttled'))
);
CREATE INDEX login_failures_by_username ON login_failures (username, at);
CREATE INDEX login_failures_by_address ON login_failures (address, at);
