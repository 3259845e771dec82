-- Deleting an account (the admin page, `server user delete`). The same
-- in both databases, written for each.
--
-- A back-channel log-out message must outlive the account it is about:
-- deleting someone ends their log-ins, and each app is told after the
-- account's rows are gone. So a message carries the subject the app knows
-- the person by, instead of a reference to the account (which deleted the
-- message with it).
ALTER TABLE oidc_logout_messages ADD COLUMN subject TEXT;
UPDATE oidc_logout_messages m SET subject = u.oidc_subject FROM users u WHERE u.id = m.user_id;
ALTER TABLE oidc_logout_messages DROP COLUMN user_id;

-- The admin page's audit trail of every account, newest first.
CREATE INDEX audit_events_at ON audit_events (at, id);
