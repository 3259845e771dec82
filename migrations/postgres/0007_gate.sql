-- The gate in front of other apps. The same in both databases.

-- Gate cookies: one per cookie domain per log-in session, sent by the
-- browser to the apps behind the proxy and accepted by the authz endpoints
-- only. Stored as SHA-256 of the random value. A gate cookie is alive while
-- its session family is: log-out, log-out everywhere, a password or 2FA
-- change and refresh-token reuse end the family, and with it every gate
-- cookie of that log-in on every domain.
CREATE TABLE gate_cookies (
    token_hash TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family     TEXT   NOT NULL,
    domain     TEXT   NOT NULL,
    -- 1 when the log-in was completed with a second factor.
    two_factor BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX gate_cookies_family ON gate_cookies (family);

-- Groups, for access rules (`server user groups EMAIL add|remove GROUP`).
CREATE TABLE user_groups (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name    TEXT   NOT NULL,
    PRIMARY KEY (user_id, name)
);
