//! Password hashing: argon2id with explicit OWASP parameters, run on a
//! few threads of its own so logins never starve the async threads and
//! memory stays bounded (19 MiB × threads). Verifications reuse one 19 MiB
//! work area per thread instead of allocating (and having the kernel zero)
//! a fresh one each time.
//!
//! The queue lives with the threads: a thread that finishes a hash takes
//! the next one at once. (Behind a semaphore, the next hash started only
//! after two wake-ups, its waiting request's task and then a blocking
//! thread; on a virtual machine a core sat idle for about 0.85 ms each time,
//! 5 % of the cores under a log-in burst.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

use super::metrics::METRICS;

use crate::domain::Password;
use crate::error::AppError;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

#[derive(Clone)]
pub struct Hasher {
    pool: Arc<PoolHandle>,
    /// How many hashes may run at once (the pool's threads).
    threads: usize,
    /// How many requests may wait for a thread: past that the answer is
    /// 503 with Retry-After at once, not seconds in a queue.
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
}

/// Work for a hashing thread. What it returns hands the result to the
/// caller, and is called only once the thread counts as free again: a
/// caller that goes on to its next hash at once must find the thread free.
type Work = Box<dyn FnOnce(&mut Vec<Block>) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

struct Job {
    id: u64,
    work: Work,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Jobs a thread has taken and not finished.
    running: usize,
    next_id: u64,
    /// Every `Hasher` is gone: the threads end once the queue is empty.
    closed: bool,
}

#[derive(Default)]
struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic inside a job is caught outside the lock, so the lock is
        // never held by a panicking thread; a poisoned one is still sound.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One hashing thread: takes jobs in order until the pool is closed.
    /// Its work area (`blocks`) is reused from one verification to the next.
    fn serve(&self) {
        let mut blocks = Vec::new();
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if let Some(job) = q.jobs.pop_front() {
                        q.running += 1;
                        break job;
                    }
                    if q.closed {
                        return;
                    }
                    q = self.ready.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            let work = job.work;
            let deliver = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut blocks)));
            self.lock().running -= 1;
            match deliver {
                Ok(deliver) => deliver(),
                // (The work catches its own panics; this is a second net.
                // Its caller gets an error: the result was never sent.)
                Err(_) => blocks = Vec::new(),
            }
        }
    }
}

/// Queues `work` under the lock `q` holds (then let go), wakes a thread.
fn push(pool: &Arc<Pool>, mut q: std::sync::MutexGuard<'_, Queue>, work: Work) -> Queued {
    let id = q.next_id;
    q.next_id += 1;
    q.jobs.push_back(Job { id, work });
    drop(q);
    pool.ready.notify_one();
    Queued { pool: pool.clone(), id, answered: false }
}

/// The pool as the `Hasher`s hold it: when the last one goes, so do the
/// threads.
struct PoolHandle(Arc<Pool>);

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// A job in the queue, taken out again if its request is dropped before a
/// thread took it (a client that hangs up while waiting): its place is
/// given back and it never runs. Once taken, the work runs to its end and
/// keeps its thread (and work area) meanwhile.
struct Queued {
    pool: Arc<Pool>,
    id: u64,
    /// Its answer came: a thread took it, nothing to take out.
    answered: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut q = self.pool.lock();
        // Ids rise in the order jobs are queued, and taking some out
        // keeps that order.
        let gone = q.jobs.binary_search_by_key(&self.id, |j| j.id).ok().and_then(|at| q.jobs.remove(at));
        drop(q);
        // Dropped outside the lock: whatever the work holds goes with it.
        drop(gone);
    }
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
    /// `concurrency` bounds simultaneous hashes (one thread each); the
    /// number of cores is right for a machine that does little else.
    pub fn new(concurrency: usize, queue_limit: usize) -> Result<Self, AppError> {
        let random: [u8; 24] = rand::random();
        let dummy = hash_sync(&hex::encode(random))?;
        let threads = concurrency.max(1);
        let pool = Arc::new(Pool::default());
        // Made first: if a thread cannot start, those already started end.
        let handle = Arc::new(PoolHandle(pool.clone()));
        for n in 0..threads {
            let pool = pool.clone();
            std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || pool.serve()).map_err(|e| {
                tracing::error!(error = %e, "could not start a password hashing thread");
                AppError::internal()
            })?;
        }
        Ok(Self {
            pool: handle,
            queue_limit,
            reserve: threads * 4,
            threads,
            dummy_hash: dummy.into(),
            runs: Arc::new(AtomicU64::new(0)),
            scorings: Arc::new(AtomicU64::new(0)),
        })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let pw = super::identity::password_form(password.expose()).into_owned();
        self.run(self.queue_limit, move |_| hash_sync(&pw)).await?
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
        let limit = if trusted { self.queue_limit + self.queue_limit.max(self.reserve) } else { self.queue_limit };
        let ok = self.run(limit, move |blocks| verify_sync(&pw, &hash, blocks)).await?;
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
        let q = self.pool.0.lock();
        // Jobs a free thread is about to take are not waiting.
        q.jobs.len().saturating_sub(self.threads.saturating_sub(q.running))
    }

    /// Hashes running now (tests: work whose request was dropped keeps
    /// its thread).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn running(&self) -> usize {
        self.pool.0.lock().running
    }

    /// Tests only: takes every hashing thread until the result is
    /// dropped, so a test can fill the queue deterministically.
    #[cfg(any(test, feature = "fault-injection"))]
    pub async fn occupy_all(&self) -> Vec<std::sync::mpsc::Sender<()>> {
        let mut held = Vec::new();
        for _ in 0..self.threads {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let (started, running) = tokio::sync::oneshot::channel::<()>();
            let _taken = self.enqueue(Box::new(move |_: &mut Vec<Block>| -> Deliver {
                let _ = started.send(());
                // Until the test drops its end.
                let _ = wait.recv();
                Box::new(|| ())
            }));
            let _ = running.await;
            held.push(release);
        }
        held
    }

    /// Puts `work` in the queue for the next free thread.
    #[cfg(any(test, feature = "fault-injection"))]
    fn enqueue(&self, work: Work) -> Queued {
        push(&self.pool.0, self.pool.0.lock(), work)
    }

    /// Runs `f` on a hashing thread with that thread's work area, after
    /// those queued before it, or answers 503 at once when `queue_limit`
    /// requests already wait for a thread. Dropped while queued (a client
    /// that hung up), the job leaves the queue unrun; dropped while
    /// running, the work goes on to its end and keeps its thread (else a
    /// hang-up would let more hashes run at once than there are threads).
    async fn queue<T: Send + 'static>(
        &self,
        queue_limit: usize,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (send, result) = tokio::sync::oneshot::channel();
        let queued_at = std::time::Instant::now();
        let mut queued = {
            let pool = &self.pool.0;
            let q = pool.lock();
            // Counted under the same lock as the threads take jobs: a free
            // thread means no wait, whatever the limit.
            let free = self.threads.saturating_sub(q.running);
            if q.jobs.len() >= free + queue_limit {
                drop(q);
                tracing::warn!("password hashing queue full: answering 503");
                METRICS.hash_refused();
                return Err(AppError::busy());
            }
            let work: Work = Box::new(move |blocks: &mut Vec<Block>| -> Deliver {
                METRICS.hash_waited(queued_at.elapsed());
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(blocks)));
                if out.is_err() {
                    // Possibly half-written: made again by the next use.
                    blocks.clear();
                }
                // A caller that hung up meanwhile gets nothing.
                Box::new(move || {
                    let _ = send.send(out.ok());
                })
            });
            push(pool, q, work)
        };
        let out = result.await;
        // Answered or not, a thread took it (threads drain the queue
        // before they end): it is no longer queued.
        queued.answered = true;
        out.ok().flatten().ok_or_else(|| {
            tracing::error!("password hashing work failed");
            AppError::internal()
        })
    }

    /// An argon2 run, counted in `runs` when it starts.
    async fn run<T: Send + 'static>(
        &self,
        queue_limit: usize,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let runs = self.runs.clone();
        self.queue(queue_limit, move |blocks| {
            runs.fetch_add(1, Ordering::Relaxed);
            f(blocks)
        })
        .await
    }

    /// Scores a new password (`identity::check_strength`) on a hashing
    /// thread, queued with the hashes: a crafted password costs
    /// milliseconds of a core (see `identity::SCORED_CHARS`), so many at
    /// once wait their turn or get 503 like hashes do, and never hold the
    /// async threads. Not counted in `runs`.
    pub async fn check_strength(&self, password: &str, known: &[&str]) -> Result<Result<(), String>, AppError> {
        let password = password.to_owned();
        let known: Vec<String> = known.iter().map(|k| (*k).to_owned()).collect();
        let scorings = self.scorings.clone();
        self.queue(self.queue_limit, move |_| {
            scorings.fetch_add(1, Ordering::Relaxed);
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            super::identity::check_strength(&password, &known)
        })
        .await
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
        let busy = hasher.occupy_all().await;
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
    async fn the_thread_stays_with_work_whose_request_was_dropped() {
        let hasher = Hasher::new(1, 4).unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let h = hasher.clone();
        let task = tokio::spawn(async move { h.run(4, move |_| wait.recv().is_ok()).await });
        until("running", || hasher.runs() == 1).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // The work still runs on its thread, which stays taken, so no
        // second hash (and no second work area) starts beside it.
        assert_eq!(hasher.running(), 1);
        let h = hasher.clone();
        let next = tokio::spawn(async move { h.run(4, |_| ()).await });
        until("the next one waits", || hasher.waiting() == 1).await;
        assert_eq!((hasher.running(), hasher.runs()), (1, 1), "nothing started beside it");
        go.send(()).unwrap();
        next.await.unwrap().unwrap();
        until("the work ended", || hasher.running() == 0).await;
        assert_eq!(hasher.runs(), 2);
    }

    #[tokio::test]
    async fn the_scorer_waits_in_the_hashing_queue() {
        let hasher = Hasher::new(1, 1).unwrap();
        let busy = hasher.occupy_all().await;
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
    async fn work_that_panics_is_an_error_and_its_thread_goes_on() {
        let hasher = Hasher::new(1, 4).unwrap();
        let failed = hasher.run(4, |_| -> bool { panic!("a hashing job panicked on purpose") }).await;
        assert!(matches!(failed, Err(e) if e.status() == 500));
        assert_eq!(hasher.running(), 0);
        let hash = hash_sync("correct horse battery staple").unwrap();
        assert!(hasher.verify("correct horse battery staple", Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn a_caller_answered_finds_its_thread_free_for_its_next_job() {
        // One thread and no waiting: a caller's second job right after its
        // first one's answer would be refused if the thread still counted
        // as busy (the sign-up scores, then hashes).
        let hasher = Hasher::new(1, 0).unwrap();
        for round in 0..300 {
            assert_eq!(hasher.run(0, move |_| round).await.unwrap(), round);
            assert_eq!(hasher.running(), 0, "round {round}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_dropped_as_a_thread_takes_its_job_leaves_nothing_behind() {
        // The hang-up lands anywhere between queued and answered: at once
        // (before a thread takes the job: it never runs), after a spin of
        // varying length (around the moment a thread takes it), or while it
        // runs (it finishes, its answer unread). Either way no place, no
        // thread and no count is left taken, and the next request is served.
        let hasher = Hasher::new(1, 4).unwrap();
        let (mut unrun, mut ran_dropped) = (0, 0);
        for round in 0..450u64 {
            let before = hasher.runs();
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let h = hasher.clone();
            let task = tokio::spawn(async move { h.run(4, move |_| wait.recv().is_ok()).await });
            match round % 3 {
                0 => {}
                1 => (0..round * 40).for_each(|_| std::hint::spin_loop()),
                _ => until("taken", || hasher.running() == 1).await,
            }
            task.abort();
            let _ = task.await;
            let _ = go.send(());
            until("the thread let go", || hasher.running() == 0).await;
            assert_eq!(hasher.waiting(), 0, "round {round}: no place kept");
            match hasher.runs() - before {
                0 => unrun += 1,
                1 => ran_dropped += 1,
                n => panic!("round {round}: ran {n} times"),
            }
            assert_eq!(hasher.run(0, move |_| round).await.unwrap(), round, "round {round}: served after");
        }
        assert!(unrun > 0 && ran_dropped >= 150, "both ends reached: {unrun} never ran, {ran_dropped} ran");
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = Hasher::new(1, 8).unwrap();
        assert!(!hasher.verify("anything at all here", None).await.unwrap());
    }
}
