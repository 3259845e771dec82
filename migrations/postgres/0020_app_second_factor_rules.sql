-- Per app, which second factor will do (the access rules' `remembered` and
-- `fresh`, for apps that sign people in over OpenID Connect). Both apply
-- only to apps that want two factors.
-- remembered: 1, a remembered browser standing in for the second factor is
-- enough; 0, the log-in must have shown one (a code, a recovery code or a
-- passkey), else the person is asked for it before the app gets a code.
ALTER TABLE oidc_clients ADD COLUMN remembered BIGINT NOT NULL DEFAULT 1;
-- fresh: seconds; a second factor must have been shown in the log-in that
-- long ago at most when the app asks for a sign-in. NULL: any time.
ALTER TABLE oidc_clients ADD COLUMN fresh BIGINT;
