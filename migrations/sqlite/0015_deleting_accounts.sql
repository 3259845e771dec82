-- Deleting an account (the admin page, `server user delete`). The same
-- in both databases, written for each.
--
-- A back-channel log-out message must outlive the account it is about:
-- deleting someone ends their log-ins, and each app is told after the
-- account's rows are gone. So a message carries the subject the app knows
-- the person by, instead of a reference to the account (which deleted the
-- message with it). SQLite cannot drop a column that a foreign key uses,
-- hence the rebuilt table.
CREATE TABLE oidc_logout_messages_next (
    client_id  TEXT   NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    login_id   TEXT   NOT NULL,
    -- `sub` in the logout token (NULL: the app is told the `sid` alone).
    subject    TEXT,
    created_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    next_at    BIGINT NOT NULL,
    sent_at    BIGINT,
    failed_at  BIGINT,
    last_error TEXT,
    PRIMARY KEY (client_id, login_id)
);
INSERT INTO oidc_logout_messages_next
    (client_id, login_id, subject, created_at, attempts, next_at, sent_at, failed_at, last_error)
    SELECT m.client_id, m.login_id, u.oidc_subject, m.created_at, m.attempts, m.next_at, m.sent_at, m.failed_at,
           m.last_error
    FROM oidc_logout_messages m LEFT JOIN users u ON u.id = m.user_id;
DROP TABLE oidc_logout_messages;
ALTER TABLE oidc_logout_messages_next RENAME TO oidc_logout_messages;
CREATE INDEX oidc_logout_messages_due ON oidc_logout_messages (next_at);

-- The admin page's audit trail of every account, newest first.
CREATE INDEX audit_events_at ON audit_events (at, id);
