-- Accounts and their second factor (SQLite).
--
-- Times are Unix seconds in BIGINT columns, the one time type both backends
-- and sqlx's Any driver share.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Trimmed and lower-cased by the app before it gets here, so UNIQUE is
    -- case-insensitive in effect.
    email               TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    -- argon2id PHC string; its parameters travel with it.
    password_hash       TEXT    NOT NULL,
    -- The flag the two-factor guard reads: 0 or 1. An integer, not BOOLEAN,
    -- because sqlx's Any driver cannot read SQLite's BOOLEAN columns.
    totp_enabled        BIGINT  NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    -- Base32 secret in use once 2FA is on; NULL while off.
    totp_secret         TEXT,
    -- Secret from /2fa/generate awaiting its first code; it never replaces
    -- totp_secret until that code confirms it.
    totp_pending_secret TEXT,
    -- Last accepted TOTP time step (Unix time / 30). A code at or before it
    -- is refused by one conditional UPDATE, so a code works once even when
    -- two requests race.
    totp_last_step      BIGINT,
    -- Carried in every token as `ver`; bumping it revokes every older token.
    session_version     BIGINT  NOT NULL DEFAULT 1,
    created_at          BIGINT  NOT NULL
);
