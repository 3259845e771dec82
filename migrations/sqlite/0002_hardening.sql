-- Hardening (SQLite): guessing limits, recovery codes, refresh sessions and
-- the audit trail. The PostgreSQL twin differs only in id columns.

-- Failed attempts per key ("pw:<email>", "code:<user id>", "pw-ip:<addr>",
-- "code-ip:<addr>"). The delay doubles per failure past the free ones and is
-- enforced by one conditional upsert (see db::throttle_attempt), so the
-- limit holds across instances and under parallel requests.
CREATE TABLE throttle (
    key           TEXT   PRIMARY KEY,
    failures      BIGINT NOT NULL,
    delay_seconds BIGINT NOT NULL,
    last_at       BIGINT NOT NULL
);

-- Single-use recovery codes, stored as SHA-256 of the normalised code (they
-- carry 60 random bits, so a fast hash is enough). used_at is set by one
-- conditional UPDATE: a code works once even when two requests race.
CREATE TABLE recovery_codes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT    NOT NULL,
    used_at   BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Refresh tokens: opaque, stored as SHA-256, rotated on every use. All the
-- tokens of one log-in share a family; presenting a used one revokes the
-- family (someone copied it).
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    -- The user's session version when issued; a refresh fails once the
    -- version has moved (log-out everywhere, password or 2FA change).
    session_version BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_family ON sessions (family);

-- Security events the user can review. user_id is NULL for failed log-ins
-- to unknown emails.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    ip         TEXT,
    user_agent TEXT
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
