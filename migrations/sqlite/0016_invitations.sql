-- Invitations (the admin page, `server invite`): a single-use link that
-- makes one account, also while SIGNUP=closed. SQLite spelling of the id; otherwise as in PostgreSQL.
CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- SHA-256 of the link's token. NULL until the link exists: made at once
    -- when the administrator copies it, made by the mail worker when the
    -- message is sent (so no link sits readable in the database).
    token_hash  TEXT UNIQUE,
    -- The address the account must have (NULL: any address).
    email       TEXT,
    -- The groups the new account joins, comma-separated (as an app's
    -- allowed_groups); a renamed group is renamed here too.
    group_names TEXT   NOT NULL DEFAULT '',
    -- 1 when the link goes by mail to `email`: using it proves the address.
    mailed      BIGINT NOT NULL DEFAULT 0,
    created_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    used_by     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  BIGINT
);
CREATE INDEX invitations_created ON invitations (created_at, id);
