-- The OpenID Connect provider (docs/OIDC.md). The same in both databases.
-- Everything issued to an app hangs off one log-in (`logins`): when the
-- log-in ends, its grants, codes and tokens are dead with it.

-- The subject apps know a person by: random, stable, never the email.
-- Given the first time an app receives tokens for the account.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject);

-- The RSA keys that sign id tokens. The private part is PKCS#8, sealed
-- with SECRETS_KEY (as TOTP secrets are), so every instance signs with
-- the same key. The newest key signs once every instance has had time to
-- publish it; older ones stay in the JWKS until their tokens expired.
CREATE TABLE oidc_keys (
    kid        TEXT   PRIMARY KEY,
    sealed_key TEXT   NOT NULL,
    -- The public key as the JWKS gives it (base64url, unpadded).
    modulus    TEXT   NOT NULL,
    exponent   TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- The apps (relying parties), added by the operator (`server oidc client
-- add`). Secrets are stored as SHA-256 (they are 256-bit random): after
-- `rotate-secret` the previous one is good too until `remove-old-secret`.
CREATE TABLE oidc_clients (
    id                        TEXT   PRIMARY KEY,
    name                      TEXT   NOT NULL,
    -- NULL: a public client (PKCE instead of a secret).
    secret_hash               TEXT,
    previous_secret_hash      TEXT,
    -- One URI per line, compared exactly.
    redirect_uris             TEXT   NOT NULL,
    post_logout_redirect_uris TEXT   NOT NULL,
    backchannel_logout_uri    TEXT,
    -- Comma-separated; empty: everyone may use the app.
    allowed_groups            TEXT   NOT NULL,
    -- ask | skip
    consent                   TEXT   NOT NULL,
    -- required | optional (public clients: always required)
    pkce                      TEXT   NOT NULL,
    -- 1: only a log-in with two factors gets tokens (the default).
    two_factor                BIGINT NOT NULL,
    created_at                BIGINT NOT NULL
);

-- One authorization: what one log-in gave one app, from the code onward.
-- The code is single-use and short-lived; a second use revokes the grant
-- and with it every token issued from it.
CREATE TABLE oidc_grants (
    id              TEXT   PRIMARY KEY,
    login_id        TEXT   NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
    client_id       TEXT   NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Space-separated, as granted.
    scope           TEXT   NOT NULL,
    nonce           TEXT,
    redirect_uri    TEXT   NOT NULL,
    code_hash       TEXT   NOT NULL UNIQUE,
    -- PKCE S256 challenge, when the app sent one.
    code_challenge  TEXT,
    code_expires_at BIGINT NOT NULL,
    code_used_at    BIGINT,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX oidc_grants_login ON oidc_grants (login_id);
CREATE INDEX oidc_grants_user_client ON oidc_grants (user_id, client_id);

-- Refresh tokens (scope offline_access), stored hashed, rotated on every
-- use; a spent one presented again revokes its grant.
CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    grant_id   TEXT   NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX oidc_refresh_tokens_grant ON oidc_refresh_tokens (grant_id);

-- What a person agreed an app may know (asked once per app and scope
-- set). Revoking the app on the security page removes it.
CREATE TABLE oidc_consents (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scope      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Back-channel log-out (OpenID Connect Back-Channel Logout 1.0): when a
-- log-in ends, however it ends, each app that received tokens from it and
-- registered a back-channel address gets a signed logout token, sent from
-- this queue with retries (as mail is). Queued in the transaction that
-- ends the log-in; one message per app and log-in.
CREATE TABLE oidc_logout_messages (
    client_id  TEXT   NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    login_id   TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    -- When it may be (re)sent; a sender claims it by moving this on.
    next_at    BIGINT NOT NULL,
    sent_at    BIGINT,
    -- Given up after the last attempt; the error is kept for the operator.
    failed_at  BIGINT,
    last_error TEXT,
    PRIMARY KEY (client_id, login_id)
);
CREATE INDEX oidc_logout_messages_due ON oidc_logout_messages (next_at);
