-- A deadline for two factors, per group (the admin page's groups): its
-- members must turn two factors on by `due_at`; after it, a log-in
-- without a second factor is sent to turn one on (the gate and the
-- OpenID apps refuse it until then). Stored once per group: resetting
-- someone's factors does not renew it. The same in both databases.
CREATE TABLE group_deadlines (
    name       TEXT   PRIMARY KEY,
    due_at     BIGINT NOT NULL,
    -- Someone who joins the group later has this many days from the day
    -- they join (when that ends after `due_at`).
    grace_days BIGINT NOT NULL,
    set_by     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    set_at     BIGINT NOT NULL
);

-- When each membership began (NULL: before this migration, counted as
-- long ago).
ALTER TABLE user_groups ADD COLUMN added_at BIGINT;
