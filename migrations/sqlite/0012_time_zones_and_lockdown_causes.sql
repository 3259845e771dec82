-- Times in the person's time zone, and what set off a lockdown. The same
-- in both databases.

-- The person's IANA time zone ("Europe/Berlin"), reported by their
-- browser once a page is hydrated and checked against the tz database
-- before it is stored. NULL: not known yet (no JavaScript, or never
-- logged in since): times are said in UTC, labelled.
ALTER TABLE users ADD COLUMN time_zone TEXT;

-- The queued notice a lockdown link was made for (set when the message is
-- made). Using the link reads that notice's facts (what happened, when,
-- from which address and browser) into the lockdown's audit event. No
-- foreign key: sent mail is pruned after 30 days, the facts are copied.
ALTER TABLE email_tokens ADD COLUMN mail_id BIGINT;

-- On a `locked_down` event: the event its notice reported, as the notice
-- told it (the notice's kind, e.g. `new_browser`; when; the address and
-- User-Agent it came from). The "locked" mail leads with it, and the
-- security page marks that log-in afterwards.
ALTER TABLE audit_events ADD COLUMN about_kind TEXT;
ALTER TABLE audit_events ADD COLUMN about_at BIGINT;
ALTER TABLE audit_events ADD COLUMN about_ip TEXT;
ALTER TABLE audit_events ADD COLUMN about_user_agent TEXT;
