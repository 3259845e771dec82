//! Who a gate cookie names, and who a portal session is, kept in memory so
//! that the gate (asked on every request of every protected app) and the
//! portal's authenticated requests rarely need the database.
//!
//! Correctness comes first:
//! - An entry is dropped the moment this instance ends the log-in, changes
//!   the person's groups or writes any field an entry holds (the database
//!   layer reports every such write after it is committed), and on
//!   PostgreSQL every other instance hears of it through `LISTEN`/`NOTIFY`
//!   (sent inside the same transaction, so only once it commits).
//! - A fill that raced an invalidation is discarded (a generation count).
//! - No entry is trusted for more than `MAX_AGE_SECONDS`, whatever happens:
//!   a change made by another process on SQLite (an operator command) or a
//!   notification lost with its connection is seen within that time. A
//!   lost listener also turns the cache off until it is back.
//! - Only live sessions are cached, never "nobody".
//! - Entries hold who the person is and that the session is live, never a
//!   password hash or a second-factor secret: a handler that needs those
//!   reads the row afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use super::db::{GateSubject, SessionUser};

/// The longest an entry is believed without asking the database, by
/// default (`GATE_CACHE_SECONDS`).
pub const MAX_AGE_SECONDS: i64 = 2;
/// Entries kept at most per kind; past it that kind starts over.
const MAX_ENTRIES: usize = 100_000;
/// The PostgreSQL channel invalidations travel on.
pub const CHANNEL: &str = "twofactor_gate";

/// What changed, as sent between instances: `f:<family>` or `u:<user id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Family(String),
    User(i64),
}

impl Invalidation {
    pub fn payload(&self) -> String {
        match self {
            Invalidation::Family(f) => format!("f:{f}"),
            Invalidation::User(id) => format!("u:{id}"),
        }
    }

    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':')? {
            ("f", family) if !family.is_empty() => Some(Invalidation::Family(family.to_owned())),
            ("u", id) => id.parse().ok().map(Invalidation::User),
            _ => None,
        }
    }
}

/// What an entry must tell the cache about itself.
pub trait Cached: Clone {
    fn user_id(&self) -> i64;
    /// The log-in session (refresh family) it depends on.
    fn family(&self) -> &str;
    /// After this it is not believed, however fresh.
    fn expires_at(&self) -> i64;
}

impl Cached for GateSubject {
    fn user_id(&self) -> i64 {
        self.user_id
    }
    fn family(&self) -> &str {
        &self.family
    }
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl Cached for SessionUser {
    fn user_id(&self) -> i64 {
        self.id
    }
    fn family(&self) -> &str {
        &self.family
    }
    fn expires_at(&self) -> i64 {
        self.live_until
    }
}

struct Entry<T> {
    value: T,
    cached_at: i64,
}

type Map<T> = Mutex<HashMap<String, Entry<T>>>;

pub struct GateCache {
    enabled: AtomicBool,
    max_age: AtomicI64,
    generation: AtomicU64,
    /// Gate cookies, by the hash of their value.
    subjects: Map<GateSubject>,
    /// Portal sessions, by refresh family.
    sessions: Map<SessionUser>,
}

impl std::fmt::Debug for GateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateCache").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl GateCache {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            max_age: AtomicI64::new(MAX_AGE_SECONDS),
            generation: AtomicU64::new(0),
            subjects: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// How long an entry is believed at most; 0 turns the cache off.
    pub fn set_max_age(&self, seconds: i64) {
        self.max_age.store(seconds.max(0), Ordering::Release);
    }

    /// The subject for a gate cookie's hash, if cached, fresh and unexpired.
    pub fn get(&self, token_hash: &str, now: i64) -> Option<GateSubject> {
        self.lookup(&self.subjects, token_hash, now)
    }

    /// Keeps what the database said of a gate cookie, unless something was
    /// invalidated since `generation` was read (the answer may predate it).
    pub fn put(&self, token_hash: &str, subject: GateSubject, generation: u64, now: i64) {
        self.keep(&self.subjects, token_hash, subject, generation, now);
    }

    /// The person of a live session family, if cached, fresh and unexpired.
    pub fn session(&self, family: &str, now: i64) -> Option<SessionUser> {
        self.lookup(&self.sessions, family, now)
    }

    /// Keeps what the database said of a session family (as `put`).
    pub fn put_session(&self, user: SessionUser, generation: u64, now: i64) {
        let family = user.family.clone();
        self.keep(&self.sessions, &family, user, generation, now);
    }

    /// Read before asking the database; pass to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lookup<T: Cached>(&self, map: &Map<T>, key: &str, now: i64) -> Option<T> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let entries = map.lock().ok()?;
        let entry = entries.get(key)?;
        let max_age = self.max_age.load(Ordering::Acquire);
        (now - entry.cached_at < max_age && now >= entry.cached_at && entry.value.expires_at() > now)
            .then(|| entry.value.clone())
    }

    fn keep<T: Cached>(&self, map: &Map<T>, key: &str, value: T, generation: u64, now: i64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = map.lock() else { return };
        // Read under the lock: `invalidate` bumps it under the same lock
        // before removing, so a stale fill cannot slip in between.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_owned(), Entry { value, cached_at: now });
    }

    pub fn invalidate(&self, what: &Invalidation) {
        fn drop_from<T: Cached>(map: &Map<T>, generation: &AtomicU64, what: &Invalidation) {
            let Ok(mut entries) = map.lock() else { return };
            generation.fetch_add(1, Ordering::AcqRel);
            match what {
                Invalidation::Family(family) => entries.retain(|_, e| e.value.family() != family),
                Invalidation::User(id) => entries.retain(|_, e| e.value.user_id() != *id),
            }
        }
        drop_from(&self.subjects, &self.generation, what);
        drop_from(&self.sessions, &self.generation, what);
    }

    /// Forgets everything; with `enabled` false, stops caching (the
    /// invalidation feed is down) until turned on again.
    pub fn reset(&self, enabled: bool) {
        fn clear<T>(map: &Map<T>, generation: &AtomicU64) {
            if let Ok(mut entries) = map.lock() {
                generation.fetch_add(1, Ordering::AcqRel);
                entries.clear();
            }
        }
        clear(&self.subjects, &self.generation);
        clear(&self.sessions, &self.generation);
        self.enabled.store(enabled, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(user_id: i64, family: &str) -> GateSubject {
        GateSubject {
            user_id,
            email: "a@example.com".into(),
            name: "A".into(),
            email_verified: true,
            two_factor: true,
            groups: vec![],
            domain: "example.com".into(),
            family: family.into(),
            expires_at: 1_000,
        }
    }

    #[test]
    fn entries_live_briefly_and_die_on_invalidation() {
        let cache = GateCache::new(true);
        let g = cache.generation();
        cache.put("h1", subject(1, "fam1"), g, 100);
        assert!(cache.get("h1", 101).is_some());
        assert!(cache.get("h1", 100 + MAX_AGE_SECONDS).is_none(), "never older than the max age");
        cache.put("h1", subject(1, "fam1"), cache.generation(), 100);
        cache.invalidate(&Invalidation::Family("fam1".into()));
        assert!(cache.get("h1", 100).is_none());
        cache.put("h2", subject(2, "fam2"), cache.generation(), 100);
        cache.invalidate(&Invalidation::User(2));
        assert!(cache.get("h2", 100).is_none());
        cache.put("h3", subject(3, "fam3"), cache.generation(), 999);
        assert!(cache.get("h3", 1_000).is_none(), "the session's own expiry");
    }

    fn session(id: i64, family: &str) -> SessionUser {
        SessionUser {
            id,
            email: "a@example.com".into(),
            name: "A".into(),
            totp_enabled: true,
            passkey_count: 0,
            email_verified: true,
            session_version: 1,
            family: family.into(),
            live_until: 1_000,
        }
    }

    #[test]
    fn sessions_die_with_their_family_or_user_and_take_gate_entries_along() {
        let cache = GateCache::new(true);
        cache.put_session(session(1, "fam1"), cache.generation(), 100);
        cache.put("h1", subject(1, "fam1"), cache.generation(), 100);
        assert_eq!(cache.session("fam1", 101).map(|s| s.id), Some(1));
        assert!(cache.session("fam1", 100 + MAX_AGE_SECONDS).is_none(), "never older than the max age");
        cache.invalidate(&Invalidation::Family("fam1".into()));
        assert!(cache.session("fam1", 100).is_none() && cache.get("h1", 100).is_none());
        cache.put_session(session(2, "fam2"), cache.generation(), 100);
        cache.put_session(session(3, "fam3"), cache.generation(), 100);
        cache.invalidate(&Invalidation::User(2));
        assert!(cache.session("fam2", 100).is_none());
        assert!(cache.session("fam3", 100).is_some(), "another person's session stays");
        cache.put_session(session(4, "fam4"), cache.generation(), 999);
        assert!(cache.session("fam4", 1_000).is_none(), "the family's own expiry");
        let before = cache.generation();
        cache.invalidate(&Invalidation::User(9));
        cache.put_session(session(5, "fam5"), before, 100);
        assert!(cache.session("fam5", 100).is_none(), "a fill that raced an invalidation");
        cache.set_max_age(0);
        cache.put_session(session(6, "fam6"), cache.generation(), 100);
        assert!(cache.session("fam6", 100).is_none(), "GATE_CACHE_SECONDS=0 turns it off");
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let cache = GateCache::new(true);
        let before = cache.generation();
        cache.invalidate(&Invalidation::Family("other".into()));
        cache.put("h", subject(1, "fam"), before, 100);
        assert!(cache.get("h", 100).is_none());
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = GateCache::new(false);
        cache.put("h", subject(1, "fam"), cache.generation(), 100);
        assert!(cache.get("h", 100).is_none());
        cache.reset(true);
        cache.put("h", subject(1, "fam"), cache.generation(), 100);
        assert!(cache.get("h", 100).is_some());
        cache.reset(false);
        assert!(cache.get("h", 100).is_none());
    }

    #[test]
    fn payloads_round_trip() {
        for what in [Invalidation::Family("abc-123".into()), Invalidation::User(42)] {
            assert_eq!(Invalidation::parse(&what.payload()), Some(what));
        }
        assert_eq!(Invalidation::parse("x:1"), None);
        assert_eq!(Invalidation::parse("u:notanumber"), None);
        assert_eq!(Invalidation::parse("f:"), None);
    }
}
