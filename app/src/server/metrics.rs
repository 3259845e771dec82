//! What an operator watches (`METRICS_ADDR`, Prometheus's text format):
//! checks and their outcomes, log-ins, throttling, the hashing queue,
//! refreshes, the gate's decisions and their latency, its cache, the mail
//! queue, the database pool. Counters are process-wide atomics with fixed
//! label sets: no label ever carries a person's data (no address, email,
//! id or path), so a scrape tells how the service does, never who did what.
//! Counts that belong to a transaction are taken when it commits
//! (`Tx::count`), so a rolled-back attempt is not counted.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::gate::Decision;
use super::state::AppState;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets: from half a millisecond
/// (a cached gate decision) to five seconds (a queue of password hashes).
const BOUNDS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A latency histogram with `BOUNDS` (cumulative when written out).
#[derive(Debug)]
pub struct Histogram {
    buckets: [Counter; BOUNDS.len()],
    count: Counter,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Self {
        Self { buckets: [const { Counter::new() }; BOUNDS.len()], count: Counter::new(), sum_micros: AtomicU64::new(0) }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| seconds <= *b) {
            self.buckets[i].inc();
        }
        self.count.inc();
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// A check a person answers, each under its guessing limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Password,
    /// A code, a recovery code or a passkey at the code step (or a step-up).
    SecondFactor,
    /// The code that confirms an authenticator app being set up.
    SetupCode,
    /// A passkey alone, in place of the password and the second factor.
    PasskeySignIn,
}

/// Which second factor was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Code,
    RecoveryCode,
    Passkey,
}

/// How a log-in was reached, when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The password alone (two-factor authentication off).
    Password,
    /// The password and a second factor.
    TwoFactors,
    /// A passkey alone (it verified its owner).
    Passkey,
    /// The password, a remembered browser standing in for the second.
    Remembered,
}

/// What a refresh came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Ok,
    /// A spent refresh token came back: the log-in was ended.
    Reused,
    /// Expired, ended or unknown.
    Refused,
}

/// The gate's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateResult {
    Allow,
    LogIn,
    SecondFactor,
    Forbidden,
    UnverifiedEmail,
    /// The request could not be judged (a proxy set up wrong, a path no
    /// browser sends).
    Unreadable,
    /// The database did not answer.
    Unavailable,
}

impl From<Decision> for GateResult {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Allow => Self::Allow,
            Decision::LogIn => Self::LogIn,
            Decision::SecondFactor => Self::SecondFactor,
            Decision::Forbidden => Self::Forbidden,
            Decision::UnverifiedEmail => Self::UnverifiedEmail,
        }
    }
}

/// The cached things a lookup asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    GateCookie,
    Session,
}

/// A count kept until its transaction commits (`Tx::count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Check(Check, bool),
    Factor(Factor, bool),
    LogIn(Reached),
    /// A limit refused an attempt: its index in `LIMITS` (see `throttled`).
    Throttled(usize),
}

impl Count {
    /// A refusal by the limit whose bucket is `key` ("code-ip:…").
    pub fn throttled(key: &str) -> Self {
        let prefix = key.split(':').next().unwrap_or("");
        Self::Throttled(LIMITS.iter().position(|(p, _)| *p == prefix).unwrap_or(LIMITS.len()))
    }
}

const CHECKS: [(Check, &str); 4] = [
    (Check::Password, "password"),
    (Check::SecondFactor, "second_factor"),
    (Check::SetupCode, "setup_code"),
    (Check::PasskeySignIn, "passkey_sign_in"),
];
const FACTORS: [(Factor, &str); 3] =
    [(Factor::Code, "code"), (Factor::RecoveryCode, "recovery_code"), (Factor::Passkey, "passkey")];
const REACHED: [(Reached, &str); 4] = [
    (Reached::Password, "password"),
    (Reached::TwoFactors, "two_factors"),
    (Reached::Passkey, "passkey"),
    (Reached::Remembered, "remembered"),
];
const REFRESHES: [(Refresh, &str); 3] =
    [(Refresh::Ok, "ok"), (Refresh::Reused, "reused"), (Refresh::Refused, "refused")];
const GATE: [(GateResult, &str); 7] = [
    (GateResult::Allow, "allow"),
    (GateResult::LogIn, "log_in"),
    (GateResult::SecondFactor, "second_factor"),
    (GateResult::Forbidden, "forbidden"),
    (GateResult::UnverifiedEmail, "unverified_email"),
    (GateResult::Unreadable, "unreadable"),
    (GateResult::Unavailable, "unavailable"),
];
const CACHED: [(Cached, &str); 2] = [(Cached::GateCookie, "gate_cookie"), (Cached::Session, "session")];
/// The guessing limits, named by their bucket's prefix (see `throttle`).
const LIMITS: [(&str, &str); 9] = [
    ("pw", "password"),
    ("pw-ip", "password_per_address"),
    ("code", "second_factor"),
    ("code-ip", "second_factor_per_address"),
    ("passkey-start", "passkey_start_per_address"),
    ("register-ip", "sign_up_per_address"),
    ("mail", "mail"),
    ("mail-ip", "mail_per_address"),
    ("reset-ip", "password_reset_per_address"),
];

fn index<T: PartialEq>(table: &[(T, &str)], what: T) -> usize {
    table.iter().position(|(t, _)| *t == what).unwrap_or(0)
}

/// Every count of this process.
#[derive(Debug)]
pub struct Metrics {
    checks: [[Counter; 2]; CHECKS.len()],
    factors: [[Counter; 2]; FACTORS.len()],
    log_ins: [Counter; REACHED.len()],
    throttled: [Counter; LIMITS.len() + 1],
    refreshes: [Counter; REFRESHES.len()],
    gate: [Counter; GATE.len()],
    gate_seconds: Histogram,
    cache: [[Counter; 2]; CACHED.len()],
    invalidations: Counter,
    hash_wait_seconds: Histogram,
    hash_refused: Counter,
    mail_sent: Counter,
    mail_failed: Counter,
}

/// The counts (one set per process).
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Self {
        Self {
            checks: [const { [const { Counter::new() }; 2] }; CHECKS.len()],
            factors: [const { [const { Counter::new() }; 2] }; FACTORS.len()],
            log_ins: [const { Counter::new() }; REACHED.len()],
            throttled: [const { Counter::new() }; LIMITS.len() + 1],
            refreshes: [const { Counter::new() }; REFRESHES.len()],
            gate: [const { Counter::new() }; GATE.len()],
            gate_seconds: Histogram::new(),
            cache: [const { [const { Counter::new() }; 2] }; CACHED.len()],
            invalidations: Counter::new(),
            hash_wait_seconds: Histogram::new(),
            hash_refused: Counter::new(),
            mail_sent: Counter::new(),
            mail_failed: Counter::new(),
        }
    }

    /// A count its transaction has committed.
    pub fn add(&self, count: Count) {
        match count {
            Count::Check(check, ok) => self.checks[index(&CHECKS, check)][usize::from(ok)].inc(),
            Count::Factor(factor, ok) => self.factors[index(&FACTORS, factor)][usize::from(ok)].inc(),
            Count::LogIn(how) => self.log_ins[index(&REACHED, how)].inc(),
            Count::Throttled(i) => self.throttled[i.min(LIMITS.len())].inc(),
        }
    }

    pub fn refresh(&self, outcome: Refresh) {
        self.refreshes[index(&REFRESHES, outcome)].inc();
    }

    pub fn gate(&self, result: GateResult, took: Duration) {
        self.gate[index(&GATE, result)].inc();
        self.gate_seconds.observe(took);
    }

    pub fn cache_lookup(&self, what: Cached, hit: bool) {
        self.cache[index(&CACHED, what)][usize::from(hit)].inc();
    }

    pub fn cache_invalidated(&self) {
        self.invalidations.inc();
    }

    /// A password hash waited `took` for a hashing thread.
    pub fn hash_waited(&self, took: Duration) {
        self.hash_wait_seconds.observe(took);
    }

    /// The hashing queue was full: 503 at once.
    pub fn hash_refused(&self) {
        self.hash_refused.inc();
    }

    pub fn mail(&self, sent: bool) {
        if sent { self.mail_sent.inc() } else { self.mail_failed.inc() }
    }
}

/// What a scrape reads besides the counters: taken when it asks.
#[derive(Debug, Clone, Default)]
pub struct Now {
    pub hash_waiting: u64,
    pub hash_threads: u64,
    /// Pending and failed messages; None: the database did not answer.
    pub mail: Option<(i64, i64)>,
    pub pool_size: u64,
    pub pool_idle: u64,
    pub pool_max: u64,
    pub database: &'static str,
}

/// The scrape's answer (text format 0.0.4).
pub async fn render(state: &AppState) -> String {
    let mail = state.db.mail_queue_depth().await.ok();
    let (pool_size, pool_idle, pool_max) = state.db.pool_use();
    let now = Now {
        hash_waiting: u64::try_from(state.hasher.waiting()).unwrap_or(0),
        hash_threads: u64::try_from(state.hasher.threads()).unwrap_or(0),
        mail,
        pool_size,
        pool_idle,
        pool_max,
        database: state.db.backend_name(),
    };
    write(&METRICS, &now)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram, labels: &str) {
    family(out, name, "histogram", help);
    let mut running = 0;
    for (bound, bucket) in BOUNDS.iter().zip(&h.buckets) {
        running += bucket.get();
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {running}");
    }
    // Read after the buckets: an observation landing meanwhile may be in
    // one and not yet in the count; +Inf is never below a bucket.
    let count = h.count.get().max(running);
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

fn braces(labels: &str) -> String {
    let labels = labels.trim_end_matches(',');
    if labels.is_empty() { String::new() } else { format!("{{{labels}}}") }
}

/// The text of every family, counters and `now` alike.
pub fn write(m: &Metrics, now: &Now) -> String {
    let mut out = String::with_capacity(8192);
    let outcome = |ok: usize| if ok == 1 { "ok" } else { "refused" };
    family(&mut out, "twofactor_checks_total", "counter", "Checks a person answered, by check and outcome.");
    for (i, (_, check)) in CHECKS.iter().enumerate() {
        for ok in [1, 0] {
            let n = m.checks[i][ok].get();
            let _ = writeln!(out, "twofactor_checks_total{{check=\"{check}\",outcome=\"{}\"}} {n}", outcome(ok));
        }
    }
    family(&mut out, "twofactor_second_factors_total", "counter", "Second factors shown, by kind and outcome.");
    for (i, (_, factor)) in FACTORS.iter().enumerate() {
        for ok in [1, 0] {
            let n = m.factors[i][ok].get();
            let _ =
                writeln!(out, "twofactor_second_factors_total{{kind=\"{factor}\",outcome=\"{}\"}} {n}", outcome(ok));
        }
    }
    family(&mut out, "twofactor_log_ins_total", "counter", "Log-ins started, by how they were reached.");
    for (i, (_, how)) in REACHED.iter().enumerate() {
        let _ = writeln!(out, "twofactor_log_ins_total{{reached=\"{how}\"}} {}", m.log_ins[i].get());
    }
    family(&mut out, "twofactor_throttled_total", "counter", "Attempts refused by a guessing or rate limit.");
    for (i, (_, limit)) in LIMITS.iter().chain([("", "other")].iter()).enumerate() {
        let _ = writeln!(out, "twofactor_throttled_total{{limit=\"{limit}\"}} {}", m.throttled[i].get());
    }
    family(&mut out, "twofactor_refreshes_total", "counter", "Refreshes of a log-in, by outcome.");
    for (i, (_, what)) in REFRESHES.iter().enumerate() {
        let _ = writeln!(out, "twofactor_refreshes_total{{outcome=\"{what}\"}} {}", m.refreshes[i].get());
    }
    family(&mut out, "twofactor_gate_decisions_total", "counter", "The gate's answers to the proxy, by result.");
    for (i, (_, what)) in GATE.iter().enumerate() {
        let _ = writeln!(out, "twofactor_gate_decisions_total{{result=\"{what}\"}} {}", m.gate[i].get());
    }
    histogram(&mut out, "twofactor_gate_decision_seconds", "Time to answer the proxy.", &m.gate_seconds, "");
    family(&mut out, "twofactor_cache_lookups_total", "counter", "Lookups in the session cache, by what and result.");
    for (i, (_, what)) in CACHED.iter().enumerate() {
        for (hit, word) in [(1, "hit"), (0, "miss")] {
            let n = m.cache[i][hit].get();
            let _ = writeln!(out, "twofactor_cache_lookups_total{{cached=\"{what}\",result=\"{word}\"}} {n}");
        }
    }
    family(&mut out, "twofactor_cache_invalidations_total", "counter", "Cache entries dropped for a change.");
    let _ = writeln!(out, "twofactor_cache_invalidations_total {}", m.invalidations.get());
    family(&mut out, "twofactor_hash_queue_waiting", "gauge", "Password checks waiting for a hashing thread.");
    let _ = writeln!(out, "twofactor_hash_queue_waiting {}", now.hash_waiting);
    family(&mut out, "twofactor_hash_threads", "gauge", "Password hashes that may run at once.");
    let _ = writeln!(out, "twofactor_hash_threads {}", now.hash_threads);
    histogram(
        &mut out,
        "twofactor_hash_wait_seconds",
        "Time a password check waited for a hashing thread.",
        &m.hash_wait_seconds,
        "",
    );
    family(&mut out, "twofactor_hash_queue_full_total", "counter", "Password checks answered 503: the queue was full.");
    let _ = writeln!(out, "twofactor_hash_queue_full_total {}", m.hash_refused.get());
    family(&mut out, "twofactor_mail_queue", "gauge", "Messages in the mail queue, by state.");
    // Left out when the database did not answer (not a made-up number).
    if let Some((pending, failed)) = now.mail {
        let _ = writeln!(out, "twofactor_mail_queue{{state=\"pending\"}} {pending}");
        let _ = writeln!(out, "twofactor_mail_queue{{state=\"failed\"}} {failed}");
    }
    family(&mut out, "twofactor_mail_deliveries_total", "counter", "Delivery attempts by this instance, by outcome.");
    let _ = writeln!(out, "twofactor_mail_deliveries_total{{outcome=\"sent\"}} {}", m.mail_sent.get());
    let _ = writeln!(out, "twofactor_mail_deliveries_total{{outcome=\"failed\"}} {}", m.mail_failed.get());
    family(&mut out, "twofactor_db_connections", "gauge", "Database connections of this instance, by state.");
    let _ =
        writeln!(out, "twofactor_db_connections{{state=\"in_use\"}} {}", now.pool_size.saturating_sub(now.pool_idle));
    let _ = writeln!(out, "twofactor_db_connections{{state=\"idle\"}} {}", now.pool_idle);
    family(&mut out, "twofactor_db_connections_max", "gauge", "The most database connections this instance opens.");
    let _ = writeln!(out, "twofactor_db_connections_max {}", now.pool_max);
    family(&mut out, "twofactor_build_info", "gauge", "The running version and its database (always 1).");
    let _ = writeln!(
        out,
        "twofactor_build_info{{version=\"{}\",database=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        now.database
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_labels() {
        let m = Metrics::new();
        m.add(Count::Check(Check::Password, false));
        m.add(Count::Check(Check::Password, false));
        m.add(Count::Factor(Factor::Passkey, true));
        m.add(Count::LogIn(Reached::Remembered));
        m.add(Count::throttled("code-ip:127.0.0.1"));
        m.add(Count::throttled("something-new:x"));
        m.refresh(Refresh::Reused);
        m.cache_lookup(Cached::Session, true);
        let text = write(&m, &Now { database: "sqlite", ..Now::default() });
        for line in [
            "twofactor_checks_total{check=\"password\",outcome=\"refused\"} 2",
            "twofactor_checks_total{check=\"password\",outcome=\"ok\"} 0",
            "twofactor_second_factors_total{kind=\"passkey\",outcome=\"ok\"} 1",
            "twofactor_log_ins_total{reached=\"remembered\"} 1",
            "twofactor_throttled_total{limit=\"second_factor_per_address\"} 1",
            "twofactor_throttled_total{limit=\"other\"} 1",
            "twofactor_refreshes_total{outcome=\"reused\"} 1",
            "twofactor_cache_lookups_total{cached=\"session\",result=\"hit\"} 1",
            "twofactor_build_info{version=\"0.1.0\",database=\"sqlite\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_histogram_is_cumulative_with_its_sum_and_count() {
        let m = Metrics::new();
        m.gate(GateResult::Allow, Duration::from_micros(300));
        m.gate(GateResult::Allow, Duration::from_millis(3));
        m.gate(GateResult::LogIn, Duration::from_secs(9));
        let text = write(&m, &Now::default());
        for line in [
            "twofactor_gate_decision_seconds_bucket{le=\"0.0005\"} 1",
            "twofactor_gate_decision_seconds_bucket{le=\"0.005\"} 2",
            "twofactor_gate_decision_seconds_bucket{le=\"5\"} 2",
            "twofactor_gate_decision_seconds_bucket{le=\"+Inf\"} 3",
            "twofactor_gate_decision_seconds_count 3",
            "twofactor_gate_decision_seconds_sum 9.0033",
            "twofactor_gate_decisions_total{result=\"allow\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn every_family_says_its_type_once() {
        let text = write(&Metrics::new(), &Now::default());
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap_or("")).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
        assert!(all >= 15, "{all} families");
    }
}
