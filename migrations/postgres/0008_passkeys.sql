-- Passkeys and security keys (WebAuthn). The same in both databases.

-- The WebAuthn user handle: a random UUID given to authenticators instead
-- of the numeric id, set when the first passkey is registered.
ALTER TABLE users ADD COLUMN webauthn_id TEXT;
CREATE UNIQUE INDEX users_webauthn_id ON users (webauthn_id);
-- How many passkeys the account has, kept in the same transaction as the
-- rows below: two-factor protection is on while TOTP is on or this is
-- above 0, and every request can tell without another query.
ALTER TABLE users ADD COLUMN passkey_count BIGINT NOT NULL DEFAULT 0;

CREATE TABLE passkeys (
    -- A random id for the API (the credential id can be a kilobyte).
    id             TEXT   PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- base64url, unique across all accounts.
    credential_id  TEXT   NOT NULL UNIQUE,
    name           TEXT   NOT NULL,
    -- webauthn-rs's credential as JSON: the public key, the signature
    -- counter and the backup flags. Public, but its integrity matters: it
    -- is only written by a verified registration or assertion.
    credential     TEXT   NOT NULL,
    -- 1 when the authenticator may sync it (backup eligible), and whether
    -- it is backed up now (backup state), as last reported.
    backup_eligible BIGINT NOT NULL,
    backup_state   BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A registration or authentication in progress. The state (the challenge)
-- never leaves the server; the client holds a random handle whose SHA-256
-- is the id. The finish step deletes the row and reads it in one statement,
-- so one ceremony is finished once, on any instance.
CREATE TABLE webauthn_ceremonies (
    id         TEXT   PRIMARY KEY,
    -- register, second_factor or passwordless.
    kind       TEXT   NOT NULL,
    -- The account (NULL for a passwordless sign-in until it is identified).
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    -- What started it: the log-in session (register) or the
    -- password-stage token (second_factor); the finish must come from it.
    bound_to   TEXT,
    -- The name chosen for a passkey being registered.
    name       TEXT,
    state      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);
