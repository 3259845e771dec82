-- Per app that wants two factors: address ranges from which a log-in with
-- the password alone will do (the access rules' `networks` with
-- `one_factor`, for apps that sign people in over OpenID Connect), comma-
-- separated as "192.168.1.0/24,10.0.0.0/8". Empty: two factors from
-- everywhere. The address judged is the browser's at the authorize step,
-- as TRUSTED_PROXY_HEADER gives it behind a trusted proxy.
ALTER TABLE oidc_clients ADD COLUMN one_factor_networks TEXT NOT NULL DEFAULT '';
