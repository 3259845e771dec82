-- A used link's row is kept (until it would have expired) with the time
-- it was used, so opening it again can say what is true ("already
-- confirmed", "already locked") instead of "not valid". Using a token is
-- still one statement: it sets used_at where it is empty, on any instance.
ALTER TABLE email_tokens ADD COLUMN used_at BIGINT;
