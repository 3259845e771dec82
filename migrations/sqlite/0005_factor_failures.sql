-- Consecutive failed second factors (codes and recovery codes), counted
-- before each is evaluated and reset only by a success or an operator:
-- quiet time never resets it. At 100, codes from the app are refused until
-- a recovery code passes (recovery codes stop at 200); NIST SP 800-63B's
-- cap on consecutive failures.
ALTER TABLE users ADD COLUMN factor_failures BIGINT NOT NULL DEFAULT 0;
