-- One row per log-in: the single place that says whether a log-in is
-- alive. The portal, the gate and every token issued from a log-in ask
-- this row, and every way a log-in ends (log-out, log-out everywhere, a
-- password or factor change, a reset, a lockdown, a stolen refresh token,
-- an operator) sets `revoked_at` here, once. The same in both databases.
CREATE TABLE logins (
    -- The id carried as `sid` in access tokens and as `family` on refresh
    -- tokens and gate cookies (a random UUID).
    id              TEXT   PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The account's session version when the log-in was stored. A log-in
    -- counts only while it equals the account's: a log-in that checked
    -- the password before a revocation and stored itself after it is dead
    -- on arrival.
    session_version BIGINT NOT NULL,
    -- How it was reached, space-separated: pwd (password), otp (a code
    -- from the authenticator app), rec (a recovery code), hwk (a passkey
    -- or security key). Two factors: anything beside pwd.
    amr             TEXT   NOT NULL,
    -- When the person last proved who they are (a rotation proves nothing).
    auth_at         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- Moved on by each refresh: the refresh's first write, which also
    -- locks the row, so a refresh and an ending take turns.
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    -- Where the log-in came from, for the person's list of log-ins.
    ip              TEXT,
    user_agent      TEXT
);
CREATE INDEX logins_user ON logins (user_id);

-- The log-ins of the refresh families there are now. A family with an
-- unrevoked row is alive; a gate cookie issued with a second factor tells
-- how it was reached (the rest are password-only).
INSERT INTO logins (id, user_id, session_version, amr, auth_at, created_at, last_seen_at, expires_at, revoked_at)
SELECT family, MIN(user_id), MAX(session_version), 'pwd', COALESCE(MIN(auth_at), 0), MIN(created_at),
       MAX(created_at), MAX(expires_at),
       CASE WHEN SUM(CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END) > 0 THEN NULL ELSE MAX(revoked_at) END
FROM sessions GROUP BY family;
UPDATE logins SET amr = 'pwd otp'
WHERE EXISTS (SELECT 1 FROM gate_cookies g WHERE g.family = logins.id AND g.two_factor = 1);

-- Refresh tokens now only say which log-in they continue: their own
-- `revoked_at` is no longer read. A token presented again inside the grace
-- window gets one successor, stamped here; a second replay is refused.
ALTER TABLE sessions ADD COLUMN replayed_at BIGINT;

-- Whether a log-in passed a second factor is its `amr` now; a gate cookie
-- no longer keeps a copy that could disagree.
ALTER TABLE gate_cookies DROP COLUMN two_factor;
