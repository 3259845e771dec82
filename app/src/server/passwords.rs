//! Password hashing: argon2id with explicit OWASP parameters, run on the
//! blocking pool behind a semaphore so logins never starve the async
//! threads and memory stays bounded (19 MiB × permits). Verifications reuse
//! one 19 MiB work area per permit instead of allocating (and having the
//! kernel zero) a fresh one each time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::sync::Mutex;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::METRICS;

use crate::domain::Password;
use crate::error::AppError;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// How many permits there are.
    threads: usize,
    /// Requests waiting for a permit, and how many may wait: past that the
    /// answer is 503 with Retry-After at once, not seconds in a queue.
    waiting: Arc<AtomicUsize>,
    queue_limit: usize,
    /// Extra places in the queue for trusted browsers (see `verify_as`).
    reserve: usize,
    /// A real hash of a random password, verified against when the email is
    /// unknown so that such a log-in costs what a real one costs.
    dummy_hash: Arc<str>,
    /// argon2 runs performed (hashes and verifications), for metrics and for
    /// tests that prove a request was refused before hashing.
    runs: Arc<AtomicU64>,
    /// Strength checks performed, for tests that prove a request was
    /// refused before the scorer ran.
    scorings: Arc<AtomicU64>,
    /// Work areas for verification, one per permit, reused.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants that Params::new accepts; the fallback is
    // the crate's default, which is the same OWASP set.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_sync(password: &str) -> Result<String, AppError> {
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| {
        tracing::error!(error = %e, "argon2 hashing failed");
        AppError::internal()
    })
}

/// Verifies against a PHC string, computing in `blocks` (resized as the
/// hash's parameters need). The comparison is constant-time (`Output`).
fn verify_sync(password: &str, hash: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or(Version::V0x13);
    blocks.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    let a2 = Argon2::new(Algorithm::Argon2id, version, params);
    if a2.hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), &mut out, &mut blocks[..]).is_err() {
        return false;
    }
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

impl Hasher {
    /// `concurrency` bounds simultaneous hashes; the number of cores is right
    /// for a machine that does little else.
    pub fn new(concurrency: usize, queue_limit: usize) -> Result<Self, AppError> {
        let random: [u8; 24] = rand::random();
        let dummy = hash_sync(&hex::encode(random))?;
        let permits = concurrency.max(1);
        Ok(Self {
            permits: Arc::new(Semaphore::new(permits)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit,
            reserve: permits * 4,
            threads: permits,
            dummy_hash: dummy.into(),
            runs: Arc::new(AtomicU64::new(0)),
            scorings: Arc::new(AtomicU64::new(0)),
            memory: Arc::new(Mutex::new((0..permits).map(|_| Vec::new()).collect())),
        })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let pw = super::identity::password_form(password.expose()).into_owned();
        self.run(self.queue_limit, move || hash_sync(&pw)).await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when
    /// there is no user, so both paths take the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, AppError> {
        self.verify_as(password, hash, false).await
    }

    /// `verify`, for a browser that has logged in to this account before
    /// (`trusted`): it may wait in a reserve of the queue that strangers
    /// cannot fill, so a burst of failed log-ins from elsewhere slows the
    /// owner down instead of turning them away with 503.
    pub async fn verify_as(&self, password: &str, hash: Option<&str>, trusted: bool) -> Result<bool, AppError> {
        let pw = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let memory = self.memory.clone();
        let limit = if trusted { self.queue_limit + self.queue_limit.max(self.reserve) } else { self.queue_limit };
        let ok = self
            .run(limit, move || {
                // A permit is held, so a work area is free; a poisoned lock
                // only means another verification panicked mid-way.
                let mut blocks = memory.lock().map(|mut m| m.pop().unwrap_or_default()).unwrap_or_default();
                let ok = verify_sync(&pw, &hash, &mut blocks);
                if let Ok(mut m) = memory.lock() {
                    m.push(blocks);
                }
                ok
            })
            .await?;
        Ok(ok && real)
    }

    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Strength checks performed (see `check_strength`).
    pub fn scorings(&self) -> u64 {
        self.scorings.load(Ordering::Relaxed)
    }

    /// How many hashes may run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Requests waiting for a hashing thread now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Tests only: takes every hashing thread until the permits are
    /// dropped, so a test can fill the queue deterministically.
    #[cfg(feature = "fault-injection")]
    pub async fn occupy_all(&self) -> Vec<tokio::sync::OwnedSemaphorePermit> {
        let mut held = Vec::new();
        while let Ok(permit) = self.permits.clone().try_acquire_owned() {
            held.push(permit);
        }
        held
    }

    /// A hashing thread for `f`, or a place in the queue for one, or 503
    /// when `queue_limit` requests already wait.
    async fn queue(&self, queue_limit: usize) -> Result<OwnedSemaphorePermit, AppError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            METRICS.hash_waited(std::time::Duration::ZERO);
            return Ok(permit);
        }
        // The place is given back however the wait ends: a client that
        // hangs up drops this future mid-wait, and a line after the
        // `.await` would never run.
        let Some(_place) = Place::take(&self.waiting, queue_limit) else {
            tracing::warn!("password hashing queue full: answering 503");
            METRICS.hash_refused();
            return Err(AppError::busy());
        };
        let started = std::time::Instant::now();
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| AppError::internal())?;
        METRICS.hash_waited(started.elapsed());
        Ok(permit)
    }

    /// Runs `f` on the blocking pool. The permit goes with the work: if the
    /// request is dropped meanwhile, the thread stays busy until `f` ends,
    /// and so does its permit (else a hang-up would let more hashes run at
    /// once than there are permits, and work areas).
    async fn blocking<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            AppError::internal()
        })
    }

    /// An argon2 run, counted in `runs`.
    async fn run<T: Send + 'static>(
        &self,
        queue_limit: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = self.queue(queue_limit).await?;
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.blocking(permit, f).await
    }

    /// Scores a new password (`identity::check_strength`) on a hashing
    /// thread, queued with the hashes: a crafted password costs
    /// milliseconds of a core (see `identity::SCORED_CHARS`), so many at
    /// once wait their turn or get 503 like hashes do, and never hold the
    /// async threads. Not counted in `runs`.
    pub async fn check_strength(&self, password: &str, known: &[&str]) -> Result<Result<(), String>, AppError> {
        let password = password.to_owned();
        let known: Vec<String> = known.iter().map(|k| (*k).to_owned()).collect();
        let permit = self.queue(self.queue_limit).await?;
        self.scorings.fetch_add(1, Ordering::Relaxed);
        self.blocking(permit, move || {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            super::identity::check_strength(&password, &known)
        })
        .await
    }
}

/// A place in the hashing queue, held while waiting for a thread.
struct Place(Arc<AtomicUsize>);

impl Place {
    fn take(waiting: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        if waiting.fetch_add(1, Ordering::SeqCst) >= limit {
            waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Self(waiting.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = Hasher::new(2, 8).unwrap();
        let pw = Password::parse("correct horse battery staple").unwrap();
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(pw.expose(), Some(&hash)).await.unwrap());
        assert!(!hasher.verify("wrong horse battery staple", Some(&hash)).await.unwrap());
        // Reused work areas give the same answers again.
        for _ in 0..3 {
            assert!(hasher.verify(pw.expose(), Some(&hash)).await.unwrap());
        }
    }

    #[test]
    fn verification_checks_the_whole_phc_string() {
        let mut blocks = Vec::new();
        let hash = hash_sync("correct horse battery staple").unwrap();
        assert!(verify_sync("correct horse battery staple", &hash, &mut blocks));
        assert!(!verify_sync("correct horse battery staplf", &hash, &mut blocks));
        assert!(!verify_sync("correct horse battery staple", "not a phc string", &mut blocks));
        assert!(!verify_sync("correct horse battery staple", &hash.replace("argon2id", "argon2i"), &mut blocks));
        // A different tag with the same length is refused (constant-time compare).
        let mut tampered = hash.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!verify_sync("correct horse battery staple", &tampered, &mut blocks));
    }

    /// Waits (at most 10 s) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test]
    async fn a_request_dropped_while_queued_gives_its_place_back() {
        let hasher = Hasher::new(1, 2).unwrap();
        let hash = hash_sync("correct horse battery staple").unwrap();
        let busy = hasher.permits.clone().try_acquire_owned().unwrap();
        for round in 0..5 {
            // Two wait (the queue is full), one by an aborted task, one by
            // a timeout: both are dropped mid-wait, as when a client hangs up.
            let (h, pw) = (hasher.clone(), hash.clone());
            let task = tokio::spawn(async move { h.verify("correct horse battery staple", Some(&pw)).await });
            until("first waiting", || hasher.waiting() == 1).await;
            let timed = tokio::time::timeout(
                std::time::Duration::from_millis(20),
                hasher.verify("correct horse battery staple", Some(&hash)),
            );
            let third = async {
                until("second waiting", || hasher.waiting() == 2).await;
                hasher.verify("anything", Some(&hash)).await
            };
            let (timed, third) = tokio::join!(timed, third);
            assert!(timed.is_err(), "round {round}: still waiting when dropped");
            assert!(matches!(third, Err(e) if e.status() == 503), "round {round}: the queue was full");
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
            assert_eq!(hasher.waiting(), 0, "round {round}: every place given back");
        }
        drop(busy);
        assert!(hasher.verify("correct horse battery staple", Some(&hash)).await.unwrap());
        assert_eq!(hasher.runs(), 1, "nothing dropped was hashed");
    }

    #[tokio::test]
    async fn the_permit_stays_with_work_whose_request_was_dropped() {
        let hasher = Hasher::new(1, 4).unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let h = hasher.clone();
        let task = tokio::spawn(async move { h.run(4, move || wait.recv().is_ok()).await });
        until("running", || hasher.runs() == 1).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // The work still runs on its thread: its permit is still taken, so
        // no second hash (and no second work area) starts beside it.
        assert_eq!(hasher.permits.available_permits(), 0);
        go.send(()).unwrap();
        until("the work ended", || hasher.permits.available_permits() == 1).await;
    }

    #[tokio::test]
    async fn the_scorer_waits_in_the_hashing_queue() {
        let hasher = Hasher::new(1, 1).unwrap();
        let busy = hasher.permits.clone().try_acquire_owned().unwrap();
        let h = hasher.clone();
        let queued = tokio::spawn(async move { h.check_strength("password1234", &[]).await });
        until("queued", || hasher.waiting() == 1).await;
        let full = hasher.check_strength("velvet otter juggles quietly", &[]).await;
        assert!(matches!(full, Err(e) if e.status() == 503), "the queue is shared with the hashes");
        drop(busy);
        let verdict = queued.await.unwrap().unwrap();
        assert!(verdict.unwrap_err().starts_with("This password is too easy to guess."));
        assert_eq!(hasher.check_strength("velvet otter juggles quietly", &[]).await.unwrap(), Ok(()));
        assert_eq!(hasher.runs(), 0, "scoring is not an argon2 run");
        assert_eq!(hasher.scorings(), 2, "the refused one never ran");
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = Hasher::new(1, 8).unwrap();
        assert!(!hasher.verify("anything at all here", None).await.unwrap());
    }
}
