-- Mail: password resets, email verification, security notices and the
-- lockdown they offer. PostgreSQL spelling of the id; otherwise as in SQLite.

-- When the owner proved the account's email address by following the link
-- mailed at sign-up (NULL: not yet). With REQUIRE_EMAIL_VERIFICATION=true,
-- log-in waits for it.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
-- Set by the "This wasn't me" link of a security notice: every session
-- ended and log-in is refused until the password is reset through a fresh
-- email link, which clears it.
ALTER TABLE users ADD COLUMN locked_at BIGINT;

-- Single-use tokens carried by mailed links: a password reset (30
-- minutes), an email verification and a lockdown (7 days each). Only the
-- SHA-256 of the token is stored; using one deletes the row and reads it
-- in one statement, so a token works once, on any instance.
CREATE TABLE email_tokens (
    token_hash TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- reset, verify or lockdown.
    purpose    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Mail waiting to be sent, and what became of it. A row names what to
-- send, never the text: the message (and any token its link carries) is
-- made when it is sent, so no link sits readable in the database. Sending
-- happens off the request path; a failure is retried with back-off; a
-- restart loses nothing, because the row outlives the process.
CREATE TABLE mail_queue (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What to send: reset, verify, notice:<event>, locked or test.
    kind            TEXT   NOT NULL,
    -- The account it concerns (NULL for an operator's test message and for
    -- a reset asked for an address that may have no account).
    user_id         BIGINT REFERENCES users (id) ON DELETE CASCADE,
    address         TEXT   NOT NULL,
    -- When the event happened and from where, for the notice's text.
    event_at        BIGINT NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    created_at      BIGINT NOT NULL,
    -- pending, sent or failed (given up after the last retry).
    status          TEXT   NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- An instance sending the row holds it until then; after a crash the
    -- lease runs out and another instance (or the restarted one) retries.
    lease_until     BIGINT,
    last_error      TEXT,
    sent_at         BIGINT
);
CREATE INDEX mail_queue_due ON mail_queue (status, next_attempt_at);
