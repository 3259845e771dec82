-- Browsers whose owner asked not to be asked for the second factor again
-- there ("Don't ask again on this browser"). The browser holds a random
-- secret in an HttpOnly cookie; only its SHA-256 is kept here. An entry
-- counts only while its session version is the account's: a password
-- change, turning two factors on or off, log-out everywhere and a lockdown
-- move the version and so void every entry at once (a new phone and a
-- removed passkey delete the entries). The same in both databases.
CREATE TABLE remembered_browsers (
    -- A random UUID: what the owner's list names the entry by.
    id              TEXT   PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash     TEXT   NOT NULL UNIQUE,
    session_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    -- Where it was remembered from, for the owner's list.
    ip              TEXT,
    user_agent      TEXT
);
CREATE INDEX remembered_browsers_user ON remembered_browsers (user_id);

-- When a second factor was last shown in this log-in (a code, a recovery
-- code, a passkey; a remembered browser is not one). NULL: none was. Read
-- by access rules that want a fresh one (`fresh`) or no remembered browser
-- (`remembered = false`).
-- Log-ins from before have the time of their own proof (a renewed log-in's
-- is its renewal's, which it never is earlier than the factor shown).
ALTER TABLE logins ADD COLUMN factor_at BIGINT;
UPDATE logins SET factor_at = auth_at WHERE amr <> 'pwd';

-- The remembered browser that stood in for a log-in's second factor:
-- forgetting it ends the log-ins it started.
ALTER TABLE logins ADD COLUMN remembered_id TEXT;
