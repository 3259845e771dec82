-- Accounts and their second factor (PostgreSQL). Same columns and meaning
-- as migrations/sqlite/0001_users.sql; only the id column's syntax differs.
CREATE TABLE users (
    id                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email               TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    totp_enabled        BIGINT  NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_secret         TEXT,
    totp_pending_secret TEXT,
    totp_last_step      BIGINT,
    session_version     BIGINT  NOT NULL DEFAULT 1,
    created_at          BIGINT  NOT NULL
);
