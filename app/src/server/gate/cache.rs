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

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::server::db::{GateSubject, GrantSubject, SessionUser};
use crate::server::metrics::{self, METRICS};

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

impl Cached for GrantSubject {
    fn user_id(&self) -> i64 {
        self.user_id
    }
    fn family(&self) -> &str {
        &self.login_id
    }
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

struct Entry<T> {
    value: T,
    cached_at: i64,
}

/// One kind of entry, with indexes by person and by log-in, so that an
/// invalidation (every log-out) touches only the entries it names instead
/// of scanning them all under the lock.
struct Store<T> {
    entries: HashMap<String, Entry<T>>,
    by_user: HashMap<i64, HashSet<String>>,
    by_family: HashMap<String, HashSet<String>>,
}

impl<T: Cached> Store<T> {
    fn new() -> Self {
        Self { entries: HashMap::new(), by_user: HashMap::new(), by_family: HashMap::new() }
    }

    fn insert(&mut self, key: &str, value: T, cached_at: i64) {
        // An overwrite may name another person or log-in: the old entry
        // leaves the indexes first.
        self.remove(key);
        self.by_user.entry(value.user_id()).or_default().insert(key.to_owned());
        self.by_family.entry(value.family().to_owned()).or_default().insert(key.to_owned());
        self.entries.insert(key.to_owned(), Entry { value, cached_at });
    }

    fn remove(&mut self, key: &str) {
        let Some(old) = self.entries.remove(key) else { return };
        unindex(&mut self.by_user, &old.value.user_id(), key);
        unindex(&mut self.by_family, old.value.family(), key);
    }

    fn drop_family(&mut self, family: &str) {
        for key in self.by_family.remove(family).unwrap_or_default() {
            if let Some(old) = self.entries.remove(&key) {
                unindex(&mut self.by_user, &old.value.user_id(), &key);
            }
        }
    }

    fn drop_user(&mut self, user_id: i64) {
        for key in self.by_user.remove(&user_id).unwrap_or_default() {
            if let Some(old) = self.entries.remove(&key) {
                unindex(&mut self.by_family, old.value.family(), &key);
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_user.clear();
        self.by_family.clear();
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Takes `key` out of `index[at]`, and the set out of the index once empty.
fn unindex<K, Q>(index: &mut HashMap<K, HashSet<String>>, at: &Q, key: &str)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(keys) = index.get_mut(at) {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(at);
        }
    }
}

type Map<T> = Mutex<Store<T>>;

pub struct GateCache {
    enabled: AtomicBool,
    max_age: AtomicI64,
    generation: AtomicU64,
    /// Gate cookies, by the hash of their value.
    subjects: Map<GateSubject>,
    /// Portal sessions, by refresh family.
    sessions: Map<SessionUser>,
    /// OpenID grants (what userinfo answers from), by grant id.
    grants: Map<GrantSubject>,
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
            subjects: Mutex::new(Store::new()),
            sessions: Mutex::new(Store::new()),
            grants: Mutex::new(Store::new()),
        }
    }

    /// How long an entry is believed at most; 0 turns the cache off.
    pub fn set_max_age(&self, seconds: i64) {
        self.max_age.store(seconds.max(0), Ordering::Release);
    }

    /// The subject for a gate cookie's hash, if cached, fresh and unexpired.
    pub fn get(&self, token_hash: &str, now: i64) -> Option<GateSubject> {
        let found = self.lookup(&self.subjects, token_hash, now);
        METRICS.cache_lookup(metrics::Cached::GateCookie, found.is_some());
        found
    }

    /// Keeps what the database said of a gate cookie, unless something was
    /// invalidated since `generation` was read (the answer may predate it).
    pub fn put(&self, token_hash: &str, subject: GateSubject, generation: u64, now: i64) {
        self.keep(&self.subjects, token_hash, subject, generation, now);
    }

    /// The person of a live session family, if cached, fresh and unexpired.
    pub fn session(&self, family: &str, now: i64) -> Option<SessionUser> {
        let found = self.lookup(&self.sessions, family, now);
        METRICS.cache_lookup(metrics::Cached::Session, found.is_some());
        found
    }

    /// Keeps what the database said of a session family (as `put`).
    pub fn put_session(&self, user: SessionUser, generation: u64, now: i64) {
        let family = user.family.clone();
        self.keep(&self.sessions, &family, user, generation, now);
    }

    /// A live OpenID grant, if cached, fresh and unexpired.
    pub fn grant(&self, grant_id: &str, now: i64) -> Option<GrantSubject> {
        self.lookup(&self.grants, grant_id, now)
    }

    /// Keeps what the database said of a grant (as `put`).
    pub fn put_grant(&self, grant: GrantSubject, generation: u64, now: i64) {
        let id = grant.grant_id.clone();
        self.keep(&self.grants, &id, grant, generation, now);
    }

    /// Read before asking the database; pass to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lookup<T: Cached>(&self, map: &Map<T>, key: &str, now: i64) -> Option<T> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let store = map.lock().ok()?;
        let entry = store.entries.get(key)?;
        let max_age = self.max_age.load(Ordering::Acquire);
        (now - entry.cached_at < max_age && now >= entry.cached_at && entry.value.expires_at() > now)
            .then(|| entry.value.clone())
    }

    fn keep<T: Cached>(&self, map: &Map<T>, key: &str, value: T, generation: u64, now: i64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut store) = map.lock() else { return };
        // Read under the lock: `invalidate` bumps it under the same lock
        // before removing, so a stale fill cannot slip in between.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if store.len() >= MAX_ENTRIES {
            store.clear();
        }
        store.insert(key, value, now);
    }

    /// Drops the entries `what` names: only those, found through the
    /// indexes (no scan of the whole cache).
    pub fn invalidate(&self, what: &Invalidation) {
        METRICS.cache_invalidated();
        fn drop_from<T: Cached>(map: &Map<T>, generation: &AtomicU64, what: &Invalidation) {
            let Ok(mut store) = map.lock() else { return };
            generation.fetch_add(1, Ordering::AcqRel);
            match what {
                Invalidation::Family(family) => store.drop_family(family),
                Invalidation::User(id) => store.drop_user(*id),
            }
        }
        drop_from(&self.subjects, &self.generation, what);
        drop_from(&self.sessions, &self.generation, what);
        drop_from(&self.grants, &self.generation, what);
    }

    /// Forgets everything; with `enabled` false, stops caching (the
    /// invalidation feed is down) until turned on again.
    pub fn reset(&self, enabled: bool) {
        fn clear<T: Cached>(map: &Map<T>, generation: &AtomicU64) {
            if let Ok(mut store) = map.lock() {
                generation.fetch_add(1, Ordering::AcqRel);
                store.clear();
            }
        }
        clear(&self.subjects, &self.generation);
        clear(&self.sessions, &self.generation);
        clear(&self.grants, &self.generation);
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
            factor_at: Some(1),
            groups: vec![],
            two_factor_due: None,
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
            amr: Default::default(),
            factor_at: None,
            time_zone: None,
            two_factor_due: None,
            admin: false,
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

    /// Every entry is in both indexes under its own person and log-in,
    /// and every index points at such an entry; no empty sets are left.
    fn assert_consistent<T: Cached>(store: &Store<T>) {
        for (key, entry) in &store.entries {
            assert!(store.by_user.get(&entry.value.user_id()).is_some_and(|ks| ks.contains(key)), "{key} by user");
            assert!(store.by_family.get(entry.value.family()).is_some_and(|ks| ks.contains(key)), "{key} by family");
        }
        for (user, keys) in &store.by_user {
            assert!(!keys.is_empty(), "an empty set for user {user}");
            for key in keys {
                assert_eq!(store.entries.get(key).map(|e| e.value.user_id()), Some(*user), "{key}");
            }
        }
        for (family, keys) in &store.by_family {
            assert!(!keys.is_empty(), "an empty set for {family}");
            for key in keys {
                assert_eq!(store.entries.get(key).map(|e| e.value.family()), Some(family.as_str()), "{key}");
            }
        }
    }

    #[test]
    fn the_indexes_stay_consistent_and_invalidation_touches_only_what_it_names() {
        let cache = GateCache::new(true);
        let check = |cache: &GateCache| {
            assert_consistent(&cache.subjects.lock().unwrap());
            assert_consistent(&cache.sessions.lock().unwrap());
        };
        cache.put("h1", subject(1, "fam1"), cache.generation(), 100);
        cache.put("h2", subject(1, "fam1"), cache.generation(), 100);
        cache.put("h3", subject(2, "fam2"), cache.generation(), 100);
        cache.put_session(session(1, "fam1"), cache.generation(), 100);
        check(&cache);
        // The same key again, now for another log-in of another person:
        // the old family and user no longer reach it.
        cache.put("h1", subject(2, "fam3"), cache.generation(), 100);
        check(&cache);
        cache.invalidate(&Invalidation::Family("fam1".into()));
        check(&cache);
        assert!(cache.get("h1", 100).is_some(), "h1 now belongs to fam3");
        assert!(cache.get("h2", 100).is_none() && cache.session("fam1", 100).is_none());
        cache.invalidate(&Invalidation::User(1));
        assert!(cache.get("h1", 100).is_some() && cache.get("h3", 100).is_some(), "user 1 holds nothing now");
        cache.invalidate(&Invalidation::User(2));
        check(&cache);
        assert!(cache.get("h1", 100).is_none() && cache.get("h3", 100).is_none());
        {
            let store = cache.subjects.lock().unwrap();
            assert!(store.entries.is_empty() && store.by_user.is_empty() && store.by_family.is_empty());
        }
        // Full: the kind starts over, indexes included.
        {
            let mut store = cache.subjects.lock().unwrap();
            for i in 0..MAX_ENTRIES {
                let n = i64::try_from(i).unwrap();
                store.insert(&format!("k{i}"), subject(n % 100, &format!("fam{}", n % 1000)), 100);
            }
            assert_eq!(store.len(), MAX_ENTRIES);
            assert_eq!((store.by_user.len(), store.by_family.len()), (100, 1000));
        }
        cache.put("last", subject(7, "fam-last"), cache.generation(), 100);
        check(&cache);
        let store = cache.subjects.lock().unwrap();
        assert_eq!((store.len(), store.by_user.len(), store.by_family.len()), (1, 1, 1));
        drop(store);
        assert!(cache.get("last", 100).is_some() && cache.get("k1", 100).is_none());
        cache.reset(true);
        check(&cache);
        assert!(cache.subjects.lock().unwrap().by_user.is_empty());
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
