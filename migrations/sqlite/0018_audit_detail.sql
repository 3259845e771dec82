-- What an event was about when that is not an account: the app an
-- administrator added, changed or removed, the address an invitation was
-- for. Shown beside the event on the admin page and in its CSV. The same
-- in both databases.
ALTER TABLE audit_events ADD COLUMN detail TEXT;
