-- The admin page (docs/ADMIN.md). The same in both databases.

-- Who did it, when an administrator acted on someone else's account: the
-- event's `user_id` is the person acted on, `actor_id` the administrator.
-- An administrator's deletion keeps the event, without the name.
ALTER TABLE audit_events ADD COLUMN actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL;

-- The people list: newest accounts first without sorting them all, and
-- each person's latest log-in from the index alone.
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX logins_user_created ON logins (user_id, created_at);
