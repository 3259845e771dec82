-- When the person behind a session last proved who they are (the log-in,
-- or the code that completed it), in Unix seconds. Each rotated refresh
-- token carries it on, so a session kept alive for weeks is not "fresh":
-- changing a factor without re-entering the password needs a log-in
-- within the last 5 minutes. NULL on rows from before: never fresh.
ALTER TABLE sessions ADD COLUMN auth_at BIGINT;
