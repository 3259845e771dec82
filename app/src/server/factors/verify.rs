//! Checking a second factor typed as text: a code from the app (each time
//! step accepted once) or a recovery code (spent), under the code guessing
//! limits and the consecutive-failure caps, all in one transaction.

use super::totp;
use crate::domain::SecondFactor;
use crate::error::AppError;
use crate::server::audit;
use crate::server::db::{Tx, UserRow};
use crate::server::logins::Amr;
use crate::server::metrics::{Count, Factor};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::throttle::{Attempt, Reserved, detached};
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
/// time step than the last accepted one; a recovery code is spent. The
/// whole check is one transaction, run to its end even if the client
/// hangs up (see `check`).
pub(crate) async fn verify_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRow,
    factor: &SecondFactor,
) -> Result<(), AppError> {
    let (state, meta, user, factor) = (state.clone(), meta.clone(), user.clone(), factor.clone());
    detached(async move {
        // Beside the operation it guards: a fault injected for the next
        // transaction is the operation's.
        let mut tx = state.db.begin_bookkeeping().await?;
        let verdict = check(&state, &meta, &mut tx, &user, &factor).await?;
        audit::commit(&state, tx).await?;
        verdict
    })
    .await
}

/// The check of a second factor typed as text, as writes of `tx`: a slot
/// in each code bucket, the consecutive-failure cap (codes stop at 100 for
/// good, quiet time does not help; recovery codes get 100 more, then only
/// an operator can help), the code itself (a TOTP step accepted once, a
/// recovery code spent) and the outcome settled, all committed together
/// by the caller, who runs it `detached`: a client hanging up cannot take
/// back a wrong code's count, and an attempt never counts in part. The
/// inner result is the answer (`Ok` for a good code); it stands once `tx`
/// commits. An outer error means: roll back, nothing happened.
pub(crate) async fn check(
    state: &AppState,
    meta: &RequestMeta,
    tx: &mut Tx,
    user: &UserRow,
    factor: &SecondFactor,
) -> Result<Result<(), AppError>, AppError> {
    let buckets = Attempt::code_buckets(state, meta, user.id);
    let reserved = match Reserved::take(state, meta, tx, buckets, Some(user.id)).await? {
        Ok(reserved) => reserved,
        Err(refused) => return Ok(Err(refused)),
    };
    let cap = match factor {
        SecondFactor::Totp(_) => CODE_FAILURE_CAP,
        SecondFactor::Recovery(_) => RECOVERY_FAILURE_CAP,
    };
    // (consecutive failures counted, passed)
    let judged = match factor {
        // An account protected by passkeys alone has no app to take a code from.
        SecondFactor::Totp(_) if !user.totp_enabled => {
            tx.reserve_factor_attempt(user.id, cap).await?.map(|n| (n, false))
        }
        SecondFactor::Totp(code) => {
            let secret = open_secret(state, user, user.totp_secret.as_deref())?;
            match totp::verify(&secret, code, state.now()) {
                // Counted, capped and (if later than the last) accepted in
                // one conditional update.
                Some(step) => tx.judge_totp_step(user.id, step, cap).await?.map(|n| (n, n == 0)),
                None => tx.reserve_factor_attempt(user.id, cap).await?.map(|n| (n, false)),
            }
        }
        SecondFactor::Recovery(code) => match tx.reserve_factor_attempt(user.id, cap).await? {
            None => None,
            Some(n) => {
                let candidates = state.secrets.recovery_candidates(user.id, code.as_str());
                let used = tx.use_recovery_code(user.id, &candidates, state.now()).await?;
                if used {
                    tx.clear_factor_failures(user.id).await?;
                    audit::record(state, tx, Some(user.id), AuditKind::RecoveryCodeUsed, meta).await?;
                }
                Some((n, used))
            }
        },
    };
    let Some((consecutive, ok)) = judged else {
        // Over the cap: nothing was evaluated, so nothing counts.
        reserved.give_back(tx).await?;
        return Ok(Err(codes_locked(factor)));
    };
    let ok = reserved.settle(state, meta, tx, ok, AuditKind::CodeFailed).await?;
    let kind = match factor {
        SecondFactor::Totp(_) => Factor::Code,
        SecondFactor::Recovery(_) => Factor::RecoveryCode,
    };
    tx.count(Count::Factor(kind, ok));
    if !ok && consecutive == CODE_FAILURE_CAP {
        audit::record(state, tx, Some(user.id), AuditKind::CodesLocked, meta).await?;
        tracing::warn!(user_id = user.id, "100 consecutive second-factor failures: codes locked");
    }
    Ok(if ok {
        Ok(())
    } else {
        Err(match factor {
            SecondFactor::Totp(_) => AppError::invalid_code(),
            SecondFactor::Recovery(_) => AppError::new(
                crate::error::ErrorKind::InvalidCode,
                "That recovery code is not valid or was already used.",
            ),
        })
    })
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
