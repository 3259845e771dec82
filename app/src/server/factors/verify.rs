//! Checking a second factor typed as text: a code from the app (each time
//! step accepted once) or a recovery code (spent), under the code guessing
//! limits and the consecutive-failure caps.

use super::totp;
use crate::domain::SecondFactor;
use crate::error::AppError;
use crate::server::audit::audit;
use crate::server::db::UserRow;
use crate::server::logins::Amr;
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::Attempt;
use crate::wire::AuditKind;

pub(crate) fn open_secret(state: &AppState, user: &UserRow, sealed: Option<&str>) -> Result<Vec<u8>, AppError> {
    let sealed = sealed.ok_or_else(|| {
        tracing::error!(user_id = user.id, "a TOTP secret was expected but is missing");
        AppError::internal()
    })?;
    state.secrets.open(user.id, sealed)
}

/// Verifies a code from the active secret or a recovery code, under the
/// per-account code limit (separate from the password one, so guessing
/// codes never locks the password step). A TOTP code must be for a later
/// time step than the last accepted one; a recovery code is spent.
pub(crate) async fn verify_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    factor: &SecondFactor,
) -> Result<(), AppError> {
    let attempt = Attempt::start(state, meta, Attempt::code_buckets(state, meta, user.id), Some(user.id)).await?;
    // The consecutive-failure cap, reserved before evaluating: codes stop
    // at 100 for good (quiet time does not help); recovery codes get 100
    // more, then only an operator can help.
    let cap = match factor {
        SecondFactor::Totp(_) => CODE_FAILURE_CAP,
        SecondFactor::Recovery(_) => RECOVERY_FAILURE_CAP,
    };
    let Some(consecutive) = state.db.reserve_factor_attempt(user.id, cap).await? else {
        return Err(codes_locked(factor));
    };
    let ok = match factor {
        // An account protected by passkeys alone has no app to take a code from.
        SecondFactor::Totp(_) if !user.totp_enabled => false,
        SecondFactor::Totp(code) => {
            let secret = open_secret(state, user, user.totp_secret.as_deref())?;
            match totp::verify(&secret, code, state.now()) {
                Some(step) => state.db.accept_totp_step(user.id, step).await?,
                None => false,
            }
        }
        SecondFactor::Recovery(code) => {
            let candidates = state.secrets.recovery_candidates(user.id, code.as_str());
            let used = state.db.use_recovery_code(user.id, &candidates, state.now()).await?;
            if used {
                // (An accepted TOTP step clears the count in its own write.)
                state.db.clear_factor_failures(user.id).await?;
                audit(state, Some(user.id), AuditKind::RecoveryCodeUsed, meta).await;
            }
            used
        }
    };
    // Settled before anything else awaits: a client hanging up now cannot
    // take back a wrong code's count.
    let ok = attempt.settle(state, meta, ok, AuditKind::CodeFailed).await?;
    if !ok && consecutive == CODE_FAILURE_CAP {
        audit(state, Some(user.id), AuditKind::CodesLocked, meta).await;
        tracing::warn!(user_id = user.id, "100 consecutive second-factor failures: codes locked");
    }
    if ok {
        Ok(())
    } else {
        Err(match factor {
            SecondFactor::Totp(_) => AppError::invalid_code(),
            SecondFactor::Recovery(_) => AppError::new(
                crate::error::ErrorKind::InvalidCode,
                "That recovery code is not valid or was already used.",
            ),
        })
    }
}

/// Consecutive failed second factors after which app codes are refused.
pub const CODE_FAILURE_CAP: i64 = 100;

/// ... and after which recovery codes are refused too (an operator resets).
pub const RECOVERY_FAILURE_CAP: i64 = 200;

fn codes_locked(factor: &SecondFactor) -> AppError {
    AppError::forbidden(match factor {
        SecondFactor::Totp(_) => {
            "After 100 wrong codes in a row, codes from your app are locked. Log in with one of your recovery \
             codes, or ask the administrator to reset two-factor authentication."
        }
        SecondFactor::Recovery(_) => {
            "Too many wrong codes in a row. Ask the administrator to reset two-factor authentication."
        }
    })
}

/// How a second factor shows in a log-in's `amr`.
pub(crate) fn factor_amr(factor: &SecondFactor) -> Amr {
    match factor {
        SecondFactor::Totp(_) => Amr::APP,
        SecondFactor::Recovery(_) => Amr::RECOVERY_CODE,
    }
}
