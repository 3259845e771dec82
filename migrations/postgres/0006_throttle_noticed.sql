-- The `last_at` of the throttling episode already written to the audit
-- trail: a refused attempt is audited once per episode (a new episode
-- starts with the next evaluated failure), so a flood of refused requests
-- cannot fill the owner's activity page.
ALTER TABLE throttle ADD COLUMN noticed_at BIGINT;
