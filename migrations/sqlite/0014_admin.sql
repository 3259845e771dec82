-- The admin page (docs/ADMIN.md). The same in both databases.

-- Who did it, when an administrator acted on someone else's account: the
-- event's `user_id` is the person acted on, `actor_id` the administrator.
-- An administrator's deletion keeps the event, without the name.
ALTER TABLE audit_events ADD COLUMN actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL;
