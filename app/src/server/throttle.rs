//! The guessing limits at work: an `Attempt` reserves a slot in every
//! bucket it counts against (rows of the `throttle` table, see
//! `Db::throttle_attempt`) before anything is evaluated, and `settle`
//! records the outcome.
//!
//! A client that hangs up must neither keep its slots nor count as a
//! failure: axum drops a request's future when its connection closes, and
//! a line after an `.await` never runs. So the database work of reserving
//! and of settling runs in tasks of its own, each in one transaction (a
//! hang-up cannot stop them half-way through the buckets), and an attempt
//! dropped before it was settled gives its slots back from `Drop`. An
//! evaluation that needs no wait (a code) reserves, evaluates and settles
//! in one transaction of the caller's instead (`Reserved`), run detached. That gives no free guesses:
//! the outcome reaches the client only in the answer, which is sent after
//! `settle` has recorded it; once `settle` has begun it runs to the end
//! whether or not anyone waits for it.

use crate::server::metrics::{Check, Count, METRICS};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::audit::{self, audit};
use super::crypto::tokens::Device;
use super::db::{Db, Throttle, Tx, UserRow};
use super::request::RequestMeta;
use super::state::AppState;
use crate::error::AppError;
use crate::wire::AuditKind;

/// What a success does to a bucket reserved by an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnSuccess {
    /// Give back the one attempt (shared buckets: one person's success
    /// must not wipe a stranger's failures).
    Release,
    /// Forget every failure (the bucket of this very client and account).
    Reset,
}

/// One attempt under the guessing limits: a slot is reserved in every
/// bucket before anything is evaluated (each by one conditional upsert, so
/// parallel requests cannot slip past a limit; all of them in one
/// transaction), then `settle` records the outcome. Dropped unsettled (the
/// request was abandoned, or failed before its evaluation), it gives every
/// slot back.
pub(super) struct Attempt {
    /// Buckets reserved and not yet settled.
    buckets: Vec<(String, OnSuccess)>,
    user_id: Option<i64>,
    db: Db,
    /// The check its outcome is counted as, where the failure's audit
    /// kind does not say (`counted_as`).
    check: Option<Check>,
}

impl Attempt {
    pub(super) async fn start(
        state: &AppState,
        meta: &RequestMeta,
        buckets: Vec<(String, Throttle, OnSuccess)>,
        user_id: Option<i64>,
    ) -> Result<Self, AppError> {
        let (state, meta) = (state.clone(), meta.clone());
        // Whatever it reserved comes back through `Drop` if nobody takes
        // the attempt (the task's output is dropped once it ends).
        detached(async move { Self::reserve(&state, &meta, buckets, user_id).await }).await
    }

    async fn reserve(
        state: &AppState,
        meta: &RequestMeta,
        buckets: Vec<(String, Throttle, OnSuccess)>,
        user_id: Option<i64>,
    ) -> Result<Self, AppError> {
        let mut tx = state.db.begin_bookkeeping().await?;
        match Reserved::take(state, meta, &mut tx, buckets, user_id).await? {
            Ok(reserved) => {
                tx.commit().await?;
                // Only now is there anything to give back.
                Ok(Self { buckets: reserved.buckets, user_id, db: state.db.clone(), check: None })
            }
            Err(refused) => {
                audit::commit(state, tx).await?;
                Err(refused)
            }
        }
    }

    /// Keeps the reservation as spent, whatever happens next: for counts of
    /// actions (starting a passkey ceremony) rather than of guesses.
    pub(super) fn spend(mut self) {
        self.buckets.clear();
    }

    /// Counts the outcome as `check` (in the metrics) rather than as the
    /// check its failure's audit kind names.
    pub(super) fn counted_as(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// Returns `ok` after recording it: a success resets or releases each
    /// bucket (in one transaction); a failure (already counted when
    /// reserved) is audited. Runs to the end even if the request is
    /// abandoned meanwhile.
    pub(super) async fn settle(
        mut self,
        state: &AppState,
        meta: &RequestMeta,
        ok: bool,
        failure: AuditKind,
    ) -> Result<bool, AppError> {
        let (state, meta) = (state.clone(), meta.clone());
        detached(async move {
            if ok {
                let mut tx = state.db.begin_bookkeeping().await?;
                give_back(&mut tx, &self.buckets, true).await?;
                tx.commit().await?;
            } else {
                // The failure was counted when the slot was reserved.
                self.buckets.clear();
                audit(&state, self.user_id, failure, &meta).await;
            }
            // Settled: nothing left for `Drop` (if the transaction failed,
            // the buckets are still here and `Drop` gives them back).
            self.buckets.clear();
            if let Some(check) = self.check.or_else(|| check_of(failure)) {
                METRICS.add(Count::Check(check, ok));
            }
            Ok(ok)
        })
        .await
    }

    /// The buckets of a second-factor try: the address (across accounts)
    /// and the account.
    pub(super) fn code_buckets(
        state: &AppState,
        meta: &RequestMeta,
        user_id: i64,
    ) -> Vec<(String, Throttle, OnSuccess)> {
        vec![
            (format!("code-ip:{}", meta.ip_key()), state.limits.per_address, OnSuccess::Release),
            (format!("code:{user_id}"), state.limits.code_per_account, OnSuccess::Reset),
        ]
    }

    /// The buckets of a password try. The tight limit is per account and
    /// client, so a stranger's failures never lock the owner's browser out:
    /// a browser holding this account's device cookie has a bucket of its
    /// own and nothing else (the cookie is bound to this one account, so it
    /// cannot spread guesses over others). Any other client counts per
    /// account and address, per address across accounts, and with every
    /// other such client in a much looser account-wide bucket against
    /// guessing from many addresses.
    pub(super) fn password_buckets(
        state: &AppState,
        meta: &RequestMeta,
        email: &str,
        user: Option<&UserRow>,
    ) -> Vec<(String, Throttle, OnSuccess)> {
        let limits = state.limits;
        match trusted_device(meta, user) {
            Some(device) => {
                vec![(format!("pw:{email}:device:{}", device.nonce), limits.password_per_account, OnSuccess::Reset)]
            }
            None => vec![
                (format!("pw-ip:{}", meta.ip_key()), limits.per_address, OnSuccess::Release),
                (format!("pw:{email}:ip:{}", meta.ip_key()), limits.password_per_account, OnSuccess::Reset),
                (format!("pw:{email}"), limits.password_per_account_untrusted, OnSuccess::Release),
            ],
        }
    }
}

impl Drop for Attempt {
    /// Abandoned before its outcome was known: every slot is given back,
    /// one attempt each, as a success gives back a shared bucket's (a
    /// `Reset` bucket is not wiped: nothing succeeded). The request's own
    /// future is gone, so the writes go to a task of their own.
    fn drop(&mut self) {
        if self.buckets.is_empty() {
            return;
        }
        let buckets = std::mem::take(&mut self.buckets);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(buckets = buckets.len(), "an abandoned attempt outside the runtime keeps its slots");
            return;
        };
        let db = self.db.clone();
        let pending = Pending::enter();
        runtime.spawn(async move {
            let given = async {
                let mut tx = db.begin_bookkeeping().await?;
                give_back(&mut tx, &buckets, false).await?;
                tx.commit().await
            };
            match given.await {
                Ok(()) => tracing::debug!(buckets = buckets.len(), "an abandoned attempt gave its slots back"),
                Err(e) => tracing::warn!(error = %e.message, "could not give back an abandoned attempt's slots"),
            }
            drop(pending);
        });
    }
}

/// Reserved slots inside the caller's transaction, for an evaluation that
/// needs no wait (a code, not a password hash): reserving, evaluating and
/// settling commit together, so an attempt counts whole or not at all, and
/// the caller runs the transaction `detached` so a hang-up cannot stop it
/// half-way. Nothing to give back on drop: a transaction that does not
/// commit takes its reservations with it.
pub(super) struct Reserved {
    buckets: Vec<(String, OnSuccess)>,
    user_id: Option<i64>,
}

impl Reserved {
    /// Reserves a slot in every bucket, in order. `Ok(Err(429))`: refused;
    /// the slots already reserved are given back and the episode's first
    /// refusal audited, in `tx`, which the caller commits.
    pub(super) async fn take(
        state: &AppState,
        meta: &RequestMeta,
        tx: &mut Tx,
        buckets: Vec<(String, Throttle, OnSuccess)>,
        user_id: Option<i64>,
    ) -> Result<Result<Self, AppError>, AppError> {
        let now = state.now();
        let mut reserved = Self { buckets: Vec::with_capacity(buckets.len()), user_id };
        for (key, policy, on_success) in buckets {
            let Some(wait) = tx.throttle_attempt(&key, policy, now).await? else {
                reserved.buckets.push((key, on_success));
                continue;
            };
            // Refused: the buckets already reserved get their attempt back.
            give_back(tx, &reserved.buckets, false).await?;
            // One event per episode, not one per refused request.
            if tx.throttle_first_refusal(&key).await? {
                audit::record(state, tx, user_id, AuditKind::Throttled, meta).await?;
            }
            return Ok(Err(AppError::too_many(wait)));
        }
        Ok(Ok(reserved))
    }

    /// Records the outcome in `tx` and returns it: a success resets or
    /// releases each bucket, a failure (counted when reserved) is audited.
    pub(super) async fn settle(
        self,
        state: &AppState,
        meta: &RequestMeta,
        tx: &mut Tx,
        ok: bool,
        failure: AuditKind,
    ) -> Result<bool, AppError> {
        if ok {
            give_back(tx, &self.buckets, true).await?;
        } else {
            audit::record(state, tx, self.user_id, failure, meta).await?;
        }
        if let Some(check) = check_of(failure) {
            tx.count(Count::Check(check, ok));
        }
        Ok(ok)
    }

    /// Nothing was evaluated (refused for another reason): every slot is
    /// given back, as an abandoned `Attempt` gives them.
    pub(super) async fn give_back(self, tx: &mut Tx) -> Result<(), AppError> {
        give_back(tx, &self.buckets, false).await
    }
}

/// The check an outcome is about, named by the event its failure writes.
fn check_of(failure: AuditKind) -> Option<Check> {
    match failure {
        AuditKind::LogInFailed => Some(Check::Password),
        AuditKind::CodeFailed => Some(Check::SecondFactor),
        AuditKind::SetupCodeFailed => Some(Check::SetupCode),
        _ => None,
    }
}

/// Gives back what `buckets` reserved, in the order they were reserved (so
/// that transactions holding several bucket rows on PostgreSQL always take
/// them in one order): after a success each bucket is reset or released as
/// it says; otherwise each is released (one attempt back).
async fn give_back(tx: &mut Tx, buckets: &[(String, OnSuccess)], succeeded: bool) -> Result<(), AppError> {
    let settled: Vec<(&str, bool)> = buckets
        .iter()
        .map(|(key, on_success)| (key.as_str(), succeeded && matches!(on_success, OnSuccess::Reset)))
        .collect();
    tx.throttle_settle(&settled).await
}

/// Counts one sign-up try against the client address
/// (`Limits::registration_per_address`), before anything else is done for
/// it: each try counts, kept or not.
pub(super) async fn reserve_registration(state: &AppState, meta: &RequestMeta) -> Result<(), AppError> {
    let key = format!("register-ip:{}", meta.ip_key());
    match state.db.throttle_attempt(&key, state.limits.registration_per_address, state.now()).await? {
        Some(wait) => Err(AppError::too_many(wait)),
        None => Ok(()),
    }
}

/// The request's device cookie, if it was issued for this account since
/// its last password or 2FA change or log-out everywhere.
pub(super) fn trusted_device<'a>(meta: &'a RequestMeta, user: Option<&UserRow>) -> Option<&'a Device> {
    let user = user?;
    meta.device.as_ref().filter(|d| d.user_id == user.id && d.version == user.session_version)
}

/// Runs `work` in a task of its own and waits for it: dropping the waiter
/// does not stop the work.
pub(super) async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, AppError>> + Send + 'static,
) -> Result<T, AppError> {
    use tracing::Instrument;
    let pending = Pending::enter();
    // Its lines are the request's (the span carries the request's id).
    let task = tokio::spawn(
        async move {
            let out = work.await;
            drop(pending);
            out
        }
        .instrument(tracing::Span::current()),
    );
    task.await.map_err(|e| {
        tracing::error!(error = %e, "a throttle task failed");
        AppError::internal()
    })?
}

/// Throttle writes running detached from their requests, so that tests
/// (and a shutdown) can wait until every abandoned slot is back.
static PENDING: AtomicUsize = AtomicUsize::new(0);
static IDLE: Notify = Notify::const_new();

struct Pending;

impl Pending {
    fn enter() -> Self {
        PENDING.fetch_add(1, Ordering::SeqCst);
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if PENDING.fetch_sub(1, Ordering::SeqCst) == 1 {
            IDLE.notify_waiters();
        }
    }
}

/// Waits until no throttle write started by a request (or by an abandoned
/// one) is still running, in this process.
pub async fn settled() {
    loop {
        let idle = IDLE.notified();
        if PENDING.load(Ordering::SeqCst) == 0 {
            return;
        }
        idle.await;
    }
}
