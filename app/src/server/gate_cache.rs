//! Who a gate cookie names, kept in memory so that the gate, asked on every
//! request of every protected app, rarely needs the database.
//!
//! Correctness comes first:
//! - An entry is dropped the moment this instance ends the log-in or
//!   changes the person's groups (the database layer reports every such
//!   write after it is committed), and on PostgreSQL every other instance
//!   hears of it through `LISTEN`/`NOTIFY` (sent inside the same
//!   transaction, so only once it commits).
//! - A fill that raced an invalidation is discarded (a generation count).
//! - No entry is trusted for more than `MAX_AGE_SECONDS`, whatever happens:
//!   a change made by another process on SQLite (an operator command) or a
//!   notification lost with its connection is seen within that time. A
//!   lost listener also turns the cache off until it is back.
//! - Only live sessions are cached, never "nobody".

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::db::GateSubject;

/// The longest an entry is believed without asking the database, by
/// default (`GATE_CACHE_SECONDS`).
pub const MAX_AGE_SECONDS: i64 = 2;
/// Entries kept at most; past it the cache starts over.
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

struct Entry {
    subject: GateSubject,
    cached_at: i64,
}

pub struct GateCache {
    enabled: AtomicBool,
    max_age: std::sync::atomic::AtomicI64,
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
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
            max_age: std::sync::atomic::AtomicI64::new(MAX_AGE_SECONDS),
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long an entry is believed at most; 0 turns the cache off.
    pub fn set_max_age(&self, seconds: i64) {
        self.max_age.store(seconds.max(0), Ordering::Release);
    }

    /// The subject for a gate cookie's hash, if cached, fresh and unexpired.
    pub fn get(&self, token_hash: &str, now: i64) -> Option<GateSubject> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(token_hash)?;
        let max_age = self.max_age.load(Ordering::Acquire);
        (now - entry.cached_at < max_age && now >= entry.cached_at && entry.subject.expires_at > now)
            .then(|| entry.subject.clone())
    }

    /// Read before asking the database; pass to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps what the database said, unless something was invalidated
    /// since `generation` was read (the answer may predate it).
    pub fn put(&self, token_hash: &str, subject: GateSubject, generation: u64, now: i64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(token_hash.to_owned(), Entry { subject, cached_at: now });
    }

    pub fn invalidate(&self, what: &Invalidation) {
        let Ok(mut entries) = self.entries.lock() else { return };
        self.generation.fetch_add(1, Ordering::AcqRel);
        match what {
            Invalidation::Family(family) => entries.retain(|_, e| &e.subject.family != family),
            Invalidation::User(id) => entries.retain(|_, e| e.subject.user_id != *id),
        }
    }

    /// Forgets everything; with `enabled` false, stops caching (the
    /// invalidation feed is down) until turned on again.
    pub fn reset(&self, enabled: bool) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
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
