-- Password-stage tokens that have been exchanged for a full session. Such a
-- token lives 5 minutes; listed here (by its jti) it cannot be exchanged a
-- second time with another code. Rows are pruned once the token expired.
CREATE TABLE spent_stage_tokens (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
