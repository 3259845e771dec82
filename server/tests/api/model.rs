//! A model-based test of the security invariants: random sequences of log-ins
//! (right and wrong passwords), codes (right, wrong, replayed), recovery
//! codes (new and spent), refreshes (two at once, and a spent refresh token
//! sent late),
//! log-outs, log-out everywhere, password changes, lockdowns and resets
//! from mailed links, turning two-factor authentication off and on again
//! (a new secret, new recovery codes), passkeys (added and removed with a
//! software authenticator, shown at the code step, or signing in alone;
//! a removed one shown again), gate checks and the clock moving on, sent
//! by three browsers of two people to one instance (SQLite) or to two
//! instances on one PostgreSQL database, each step to either. After every
//! step the answers are compared with a small model of who is logged in
//! where:
//! - no request is accepted for a log-in the model has ended (the portal's
//!   session, its refresh token and its gate cookie alike);
//! - no code, and no recovery code, is accepted twice; no removed passkey
//!   is accepted, and an account with a passkey stays two-factor when its
//!   app is turned off;
//! - the code limit lets through exactly the attempts the model's bucket
//!   allows (5 free failures, then a doubling wait);
//! - the gate and the portal agree;
//! - the audit trail has one event per model event (log-ins, refused
//!   codes, refresh-token reuse).
//!
//! A failing sequence is shrunk (steps taken out while it still fails) and
//! printed as a script. `MODEL_SEQUENCES` sets how many run (default 60;
//! `./scripts/test --long` runs 1,000), `MODEL_SEED` replays one.
//!
//! Where the model cannot know (whether another instance still holds a
//! just-ended log-in in its cache: at most 2 seconds, `gate::cache`) it
//! accepts either answer; everything else is exact, tokens' expiry and
//! leeway included.

use std::fmt;
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};

use super::passkeys::Discoverable;
use super::*;

const RULES: &str = "[[rules]]\ndomain = \"wiki.example.test\"\npolicy = \"two_factor\"\n";
const PEOPLE: usize = 2;
const BROWSERS: usize = 3;
const STEPS: usize = 40;
/// The code limit per account (`Limits::code_per_account`).
const FREE: i64 = 5;
const CAP: i64 = 15 * 60;
const WINDOW: i64 = 3600;
/// How long a password stage and an access token live, and the leeway a
/// token gets around its expiry (`crypto::tokens`).
const STAGE_TTL: i64 = 5 * 60;
const ACCESS_TTL: i64 = 15 * 60;
const LEEWAY: i64 = 5;

/// A tiny deterministic generator (xorshift): a seed replays a sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Right,
    Wrong,
    /// The code accepted last for this person, again.
    Replay,
    /// A recovery code not used yet.
    Recovery,
    /// A recovery code used already.
    RecoveryAgain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Password {
        b: usize,
        p: usize,
        right: bool,
    },
    Code {
        b: usize,
        answer: Answer,
    },
    Refresh {
        b: usize,
    },
    /// Two refreshes with the same token at once (to both instances where
    /// there are two): one is renewed, the other is a copy caught.
    ParallelRefresh {
        b: usize,
    },
    /// The browser's previous refresh token, sent again (a copy).
    StaleRefresh {
        b: usize,
    },
    LogOut {
        b: usize,
    },
    Everywhere {
        b: usize,
    },
    /// The browser changes its person's password (to the other of two).
    ChangePassword {
        b: usize,
    },
    /// "This wasn't me" from a security notice's link: every log-in of the
    /// person ends and the password logs in no more until a reset.
    Lockdown {
        p: usize,
    },
    /// A password reset from a mailed link (to the other of two passwords):
    /// every log-in ends, a lockdown is lifted.
    Reset {
        p: usize,
    },
    /// Half a minute on, the browser turns two-factor authentication off
    /// (the password and a code): every other log-in ends.
    TurnOff {
        b: usize,
    },
    /// The browser turns it on again: a new secret (the password as proof),
    /// confirmed by its code; new recovery codes; every other log-in ends.
    TurnOn {
        b: usize,
    },
    Gate {
        b: usize,
    },
    /// The browser registers a passkey (the password as proof): the first
    /// factor of an account without one turns two factors on.
    AddPasskey {
        b: usize,
    },
    /// The browser removes its person's oldest passkey (the password as
    /// proof): the last one of an account without an app turns two
    /// factors off.
    RemovePasskey {
        b: usize,
    },
    /// At the code step, one of the passkeys the person made (one removed
    /// since is refused).
    PasskeyStep {
        b: usize,
        key: usize,
    },
    /// One of the person's passkeys alone, without a password.
    PasskeySignIn {
        b: usize,
        p: usize,
        key: usize,
    },
    Tick {
        seconds: i64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Step {
    on: usize,
    op: Op,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = format!("instance {}", self.on);
        match self.op {
            Op::Password { b, p, right } => write!(
                f,
                "{on}: browser {b} logs in as person {p} with the {} password",
                if right { "right" } else { "wrong" }
            ),
            Op::Code { b, answer } => write!(f, "{on}: browser {b} gives {answer:?} at the code step"),
            Op::Refresh { b } => write!(f, "{on}: browser {b} refreshes"),
            Op::StaleRefresh { b } => write!(f, "{on}: browser {b}'s previous refresh token is sent again"),
            Op::ParallelRefresh { b } => write!(f, "{on} and the next: browser {b} refreshes twice at once"),
            Op::LogOut { b } => write!(f, "{on}: browser {b} logs out"),
            Op::Everywhere { b } => write!(f, "{on}: browser {b} logs out everywhere"),
            Op::ChangePassword { b } => write!(f, "{on}: browser {b} changes its person's password"),
            Op::Lockdown { p } => write!(f, "{on}: person {p} follows a notice's \"This wasn't me\" link"),
            Op::Reset { p } => write!(f, "{on}: person {p} resets the password from a mailed link"),
            Op::TurnOff { b } => write!(f, "{on}: 30 s on, browser {b} turns two-factor authentication off"),
            Op::TurnOn { b } => write!(f, "{on}: browser {b} turns two-factor authentication on (a new secret)"),
            Op::Gate { b } => write!(f, "{on}: the gate is asked with browser {b}'s gate cookie"),
            Op::AddPasskey { b } => write!(f, "{on}: browser {b} adds a passkey"),
            Op::RemovePasskey { b } => write!(f, "{on}: browser {b} removes its person's oldest passkey"),
            Op::PasskeyStep { b, key } => {
                write!(f, "{on}: browser {b} shows its person's passkey {key} at the code step")
            }
            Op::PasskeySignIn { b, p, key } => {
                write!(f, "{on}: browser {b} signs in with person {p}'s passkey {key} alone")
            }
            Op::Tick { seconds } => write!(f, "the clock moves on {seconds} s"),
        }
    }
}

fn generate(rng: &mut Rng, instances: usize) -> Vec<Step> {
    let mut steps: Vec<Step> = (0..STEPS)
        .map(|_| {
            // Most steps in one browser, so that log-ins get far enough to
            // matter; the others share and race its person.
            let b = if rng.below(10) < 6 { 0 } else { 1 + rng.below(BROWSERS - 1) };
            let op = match rng.below(36) {
                0..=4 => Op::Password { b, p: rng.below(PEOPLE), right: rng.below(10) != 0 },
                5..=11 => Op::Code {
                    b,
                    answer: [
                        Answer::Right,
                        Answer::Right,
                        Answer::Wrong,
                        Answer::Wrong,
                        Answer::Wrong,
                        Answer::Replay,
                        Answer::Recovery,
                        Answer::RecoveryAgain,
                    ][rng.below(8)],
                },
                12..=13 => Op::Refresh { b },
                14 => Op::StaleRefresh { b },
                15 => Op::LogOut { b },
                16 => Op::Everywhere { b },
                17 => Op::Gate { b },
                18 => Op::ChangePassword { b },
                19 => Op::ParallelRefresh { b },
                // Rarer: each ends every log-in of a person.
                20 if rng.below(4) == 0 => Op::Lockdown { p: rng.below(PEOPLE) },
                21 if rng.below(3) == 0 => Op::Reset { p: rng.below(PEOPLE) },
                22 => Op::TurnOff { b },
                23 | 24 => Op::TurnOn { b },
                27 | 28 => Op::AddPasskey { b },
                29 | 30 => Op::RemovePasskey { b },
                31..=33 => Op::PasskeyStep { b, key: rng.below(3) },
                34 | 35 => Op::PasskeySignIn { b, p: rng.below(PEOPLE), key: rng.below(3) },
                _ => Op::Tick { seconds: [1, 1, 3, 31, 31, 400][rng.below(6)] },
            };
            Step { on: rng.below(instances), op }
        })
        .collect();
    // Now and then a run of wrong codes from one browser, so that the code
    // limit is reached (a guesser's burst).
    // It starts with the password, so that the browser is at the code step
    // (unless it was logged in already).
    if rng.below(2) == 0 {
        let at = rng.below(steps.len());
        let b = if rng.below(10) < 6 { 0 } else { 1 + rng.below(BROWSERS - 1) };
        let password = Step { on: rng.below(instances), op: Op::Password { b, p: rng.below(PEOPLE), right: true } };
        let wrong = (0..7).map(|_| Step { on: rng.below(instances), op: Op::Code { b, answer: Answer::Wrong } });
        steps.splice(at..at, std::iter::once(password).chain(wrong).collect::<Vec<_>>());
    }
    // Now and then a person's passkeys from start to end, among whatever
    // the others do: two added; the app turned off (a passkey keeps two
    // factors, and the recovery codes); the first removed; the password,
    // then a code (no app: refused) and a recovery code; each passkey at
    // the code step (the removed one refused); the last removed (two
    // factors off); each alone (nobody's now); the password alone; the
    // app on again.
    if rng.below(2) == 0 {
        let at = rng.below(steps.len());
        let b = rng.below(BROWSERS);
        let p = rng.below(PEOPLE);
        let password = Op::Password { b, p, right: true };
        let ops = [
            password,
            Op::Code { b, answer: Answer::Right },
            Op::AddPasskey { b },
            Op::AddPasskey { b },
            Op::TurnOff { b },
            Op::RemovePasskey { b },
            Op::LogOut { b },
            password,
            Op::Code { b, answer: Answer::Right },
            Op::Code { b, answer: Answer::Recovery },
            Op::LogOut { b },
            password,
            Op::PasskeyStep { b, key: 0 },
            Op::PasskeyStep { b, key: 1 },
            Op::RemovePasskey { b },
            Op::LogOut { b },
            Op::PasskeySignIn { b, p, key: 0 },
            Op::PasskeySignIn { b, p, key: 1 },
            password,
            Op::TurnOn { b },
        ];
        let episode: Vec<Step> = ops.into_iter().map(|op| Step { on: rng.below(instances), op }).collect();
        steps.splice(at..at, episode);
    }
    steps
}

/// The most steps the bursts and the passkey episode add to a sequence.
const SPLICED: usize = 8 + 20;

/// The code limit's bucket for one account, as `db::throttle` keeps it.
#[derive(Debug, Clone, Default)]
struct Bucket {
    row: Option<(i64, i64, i64)>, // failures, delay, last_at
}

impl Bucket {
    /// Whether an attempt at `now` is let through (and counted).
    fn attempt(&mut self, now: i64) -> bool {
        let Some((failures, delay, last_at)) = self.row else {
            self.row = Some((1, 0, now));
            return true;
        };
        if last_at < now - WINDOW {
            self.row = Some((1, 0, now));
            return true;
        }
        if last_at + delay > now {
            return false;
        }
        let delay = if failures + 1 < FREE {
            0
        } else if delay == 0 {
            1
        } else {
            (delay * 2).min(CAP)
        };
        self.row = Some((failures + 1, delay, now));
        true
    }

    /// An attempt counted, then given back (a later bucket of the same
    /// try refused it): one failure fewer, the wait as it was set.
    fn release(&mut self) {
        if let Some((failures, _, _)) = &mut self.row {
            *failures = (*failures - 1).max(0);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seat {
    Out,
    /// After the password: the stage's start and the account's version.
    Stage {
        p: usize,
        at: i64,
        version: u32,
    },
    /// Logged in: the model's log-in and when the access token was issued.
    In {
        login: usize,
        access_at: i64,
    },
}

#[derive(Debug, Clone)]
struct LoginModel {
    p: usize,
    alive: bool,
    /// Reached with a second factor (the gate's `two_factor` rule takes it).
    two_factor: bool,
    /// Ended at (model time): other instances may hold it in their cache
    /// for up to 2 seconds after.
    ended_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct PersonModel {
    last_step: i64,
    recovery_used: usize,
    bucket: Bucket,
    version: u32,
    wrong_passwords: i64,
    /// Audit events the model expects (beyond those of the set-up).
    log_ins: i64,
    codes_refused: i64,
    reuses: i64,
    /// Passwords changed (each an audit event).
    password_changes: i64,
    /// Passwords reset from a mailed link (each an audit event).
    resets: i64,
    /// Lockdowns (each an audit event); `locked` until a reset.
    lockdowns: i64,
    locked: bool,
    /// Two-factor authentication turned off (the set-up turns it on).
    off: bool,
    turned_off: i64,
    turned_on: i64,
    /// Passkeys registered now.
    passkeys: usize,
    passkeys_added: i64,
    passkeys_removed: i64,
    /// Passkeys accepted (at the code step or alone) and refused.
    passkeys_used: i64,
    passkeys_refused: i64,
}

/// The password people change theirs to, and back.
const OTHER_PASSWORD: &str = "a second long passphrase, changed to";

impl PersonModel {
    /// The password in use: `PASSWORD` after an even number of changes
    /// and resets, `OTHER_PASSWORD` after an odd one.
    fn password(&self) -> &'static str {
        if (self.password_changes + self.resets) % 2 == 0 { PASSWORD } else { OTHER_PASSWORD }
    }

    fn other_password(&self) -> &'static str {
        if self.password() == PASSWORD { OTHER_PASSWORD } else { PASSWORD }
    }

    /// Two factors asked for at log-in: the app, or a passkey.
    fn two_factor(&self) -> bool {
        !self.off || self.passkeys > 0
    }
}

/// What the sequences exercised, summed for the closing line.
static SEEN: [std::sync::atomic::AtomicUsize; 13] = [const { std::sync::atomic::AtomicUsize::new(0) }; 13];
const SEEN_THROTTLED: usize = 0;
const SEEN_REUSE: usize = 1;
const SEEN_LOG_INS: usize = 2;
const SEEN_ENDED_GATE: usize = 3;
const SEEN_PASSWORD_CHANGED: usize = 4;
const SEEN_LOCKDOWN: usize = 5;
const SEEN_RESET: usize = 6;
const SEEN_LOCKED_REFUSED: usize = 7;
const SEEN_TURNED_OFF: usize = 8;
const SEEN_TURNED_ON: usize = 9;
const SEEN_PASSKEY_ADDED: usize = 10;
const SEEN_PASSKEY_LOG_INS: usize = 11;
const SEEN_REMOVED_PASSKEY_REFUSED: usize = 12;

fn seen(what: usize) {
    SEEN[what].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

struct Model {
    now: i64,
    people: Vec<PersonModel>,
    seats: Vec<Seat>,
    logins: Vec<LoginModel>,
    /// Each browser has sent a refresh that rotated its token: a spent one.
    spent: Vec<Option<usize>>,
}

/// A browser: its cookies (reachable, to send a spent token again), the
/// gate cookie of its log-in, and its previous refresh token.
struct Browser {
    jar: Arc<Jar>,
    client: reqwest::Client,
    /// The gate cookie of the browser's last log-in, and that log-in.
    gate: Option<(String, usize)>,
    previous_refresh: Option<String>,
}

struct Person {
    email: String,
    secret: Vec<u8>,
    recovery: Vec<String>,
    id: i64,
    /// The audit events of the set-up, by kind.
    baseline: Vec<(String, i64)>,
    /// Every passkey the person made, with its id while it is registered.
    keys: Vec<(Discoverable, Option<String>)>,
}

fn browser() -> Browser {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Browser { jar, client, gate: None, previous_refresh: None }
}

fn cookie(jar: &Jar, base: &str, name: &str) -> Option<String> {
    let header = jar.cookies(&url::Url::parse(base).unwrap())?;
    header.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// A number for the next passkey made (its key and id are unique).
fn next_key() -> u64 {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The code limit comes first: `Some` (the step's outcome) when the
/// model's bucket refuses this attempt, which the server must have
/// answered with 429.
fn refused_by_limit(bucket: &mut Bucket, now: i64, r: &Reply) -> Option<Result<(), Failure>> {
    if bucket.attempt(now) {
        return None;
    }
    Some(if r.status == StatusCode::TOO_MANY_REQUESTS {
        seen(SEEN_THROTTLED);
        Ok(())
    } else {
        Err(format!("the limit should have refused it: {} {}", r.status, r.text))
    })
}

/// Answers a started ceremony (`start`) with the person's passkey number
/// `key` (of those ever made, counting round) at `finish`: whether that
/// passkey is registered now, and the answer.
async fn show_key(
    app: &TestApp,
    client: &reqwest::Client,
    keys: &mut [(Discoverable, Option<String>)],
    key: usize,
    start: &Reply,
    finish: &str,
) -> (bool, Reply) {
    let (passkey, id) = &mut keys[key % keys.len()];
    let body = json!({"ceremony": start.body["ceremony"], "credential": passkey.assert(&start.body["options"])});
    (id.is_some(), app.post_with(client, finish, body).await)
}

/// Why a step failed: the step and what was seen.
type Failure = String;

struct World<'a> {
    apps: &'a [TestApp],
    people: Vec<Person>,
    browsers: Vec<Browser>,
    model: Model,
}

impl World<'_> {
    fn advance(&mut self, seconds: i64) {
        for app in self.apps {
            app.clock.advance(seconds);
        }
        self.model.now += seconds;
    }

    /// The code for the current time step.
    fn code_now(&self, p: usize) -> (String, i64) {
        let now = self.model.now;
        (totp::code_at(&self.people[p].secret, now).unwrap(), now / 30)
    }

    fn alive(&self, seat: Seat) -> Option<usize> {
        match seat {
            Seat::In { login, .. } if self.model.logins[login].alive => Some(login),
            _ => None,
        }
    }

    /// The browser's log-in while its access token is good (alive or not).
    fn fresh_login(&self, b: usize) -> Option<usize> {
        match self.model.seats[b] {
            Seat::In { login, access_at } if self.model.now - access_at < ACCESS_TTL + LEEWAY => Some(login),
            _ => None,
        }
    }

    /// After a change that renews the log-ins: every log-in of `p` ends
    /// under a new version, and browser `b` gets a new one, from `r`.
    fn renewed(&mut self, b: usize, p: usize, two_factor: bool, r: &Reply) -> Result<(), Failure> {
        self.version_moved(p);
        self.start_login(b, p, two_factor, r)
    }

    /// A log-in of `p` started now in browser `b` (answered by `r`, which
    /// carries its gate cookie).
    fn start_login(&mut self, b: usize, p: usize, two_factor: bool, r: &Reply) -> Result<(), Failure> {
        self.model.logins.push(LoginModel { p, alive: true, two_factor, ended_at: None });
        let login = self.model.logins.len() - 1;
        self.model.seats[b] = Seat::In { login, access_at: self.model.now };
        self.model.spent[b] = None;
        let gate = set_cookie(r, "twofactor_gate").ok_or_else(|| "no gate cookie with the log-in".to_owned())?;
        self.browsers[b].gate = Some((gate, login));
        self.browsers[b].previous_refresh = None;
        Ok(())
    }

    /// The account's session version moved (log-out everywhere, a
    /// password change or reset, a lockdown, two factors turned off or
    /// on): every log-in of person `p` ends, and password stages of the
    /// old version are void.
    fn version_moved(&mut self, p: usize) {
        for l in 0..self.model.logins.len() {
            if self.model.logins[l].p == p {
                self.end(l);
            }
        }
        self.model.people[p].version += 1;
    }

    /// A link of `purpose` ("reset", "lockdown") for person `p`, as the
    /// mail would carry it: its token, stored hashed, valid for an hour.
    async fn mint_link(&self, p: usize, purpose: &str) -> String {
        static MINTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MINTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("model-{purpose}-{p}-{n}-{}", std::process::id());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.apps[0].database_url).await.unwrap();
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(app::server::crypto::sha256_hex(token.as_bytes()))
        .bind(self.people[p].id)
        .bind(purpose)
        .bind(self.model.now)
        .bind(self.model.now + 3600)
        .execute(&mut conn)
        .await
        .unwrap();
        token
    }

    /// Ends `login` in the model.
    fn end(&mut self, login: usize) {
        let l = &mut self.model.logins[login];
        if l.alive {
            l.alive = false;
            l.ended_at = Some(self.model.now);
        }
    }

    async fn run(&mut self, step: Step) -> Result<(), Failure> {
        let app = &self.apps[step.on];
        let now = self.model.now;
        let fail = |what: String| Err(format!("{step}: {what}"));
        match step.op {
            Op::Tick { seconds } => self.advance(seconds),
            Op::Password { b, p, right } => {
                if self.alive(self.model.seats[b]).is_some() {
                    return Ok(()); // a logged-in browser does not log in again (the generator's rule)
                }
                let password = if right { self.model.people[p].password() } else { "a wrong password entirely" };
                let body = json!({"email": self.people[p].email, "password": password});
                let r = app.post_with(&self.browsers[b].client, "/api/authentication/log-in", body).await;
                let person = &mut self.model.people[p];
                if r.status == StatusCode::OK && r.body["passkey"] != json!(person.passkeys > 0) {
                    return fail(format!("the model has {} passkeys: {}", person.passkeys, r.text));
                }
                match (right, r.status) {
                    (true, StatusCode::OK) if r.body["twoFactorRequired"] == true && person.two_factor() => {
                        person.wrong_passwords = 0;
                        self.model.seats[b] = Seat::Stage { p, at: now, version: person.version };
                    }
                    // Two-factor authentication off: the password is the log-in.
                    (true, StatusCode::OK) if r.body["twoFactorRequired"] == false && !person.two_factor() => {
                        person.wrong_passwords = 0;
                        person.log_ins += 1;
                        seen(SEEN_LOG_INS);
                        self.start_login(b, p, false, &r).map_err(|e| format!("{step}: {e}"))?;
                    }
                    (false, StatusCode::UNAUTHORIZED) => person.wrong_passwords += 1,
                    // Locked: said only to whoever knows the password.
                    (true, StatusCode::FORBIDDEN) if person.locked && r.body["fields"]["account"] == "locked" => {
                        seen(SEEN_LOCKED_REFUSED)
                    }
                    // The password limit (its own test counts it exactly).
                    (_, StatusCode::TOO_MANY_REQUESTS) if person.wrong_passwords >= FREE => {}
                    _ => return fail(format!("answered {} {}", r.status, r.text)),
                }
            }
            Op::Code { b, answer } => {
                let typed = match answer {
                    Answer::Right => self.code_now(self.person_of(b)).0,
                    Answer::Wrong => {
                        let right = self.code_now(self.person_of(b)).0;
                        if right == "000000" { "111111".into() } else { "000000".into() }
                    }
                    Answer::Replay => self.last_code(self.person_of(b)),
                    Answer::Recovery => {
                        let p = self.person_of(b);
                        self.people[p].recovery[self.model.people[p].recovery_used.min(9)].clone()
                    }
                    Answer::RecoveryAgain => self.people[self.person_of(b)].recovery[0].clone(),
                };
                let recovery = matches!(answer, Answer::Recovery | Answer::RecoveryAgain);
                let body = if recovery {
                    json!({"recoveryCode": typed})
                } else {
                    json!({"twoFactorAuthenticationCode": typed})
                };
                let r = app.post_with(&self.browsers[b].client, "/api/2fa/authenticate", body).await;
                let Seat::Stage { p, at, version } = self.model.seats[b] else {
                    return match r.status {
                        StatusCode::UNAUTHORIZED if r.body["error"] == "unauthenticated" => Ok(()),
                        _ => fail(format!("no password stage, yet {} {}", r.status, r.text)),
                    };
                };
                let age = now - at;
                let stale_version = version != self.model.people[p].version;
                // A stage lives until its expiry and a few seconds of leeway
                // (`crypto::tokens`), unless log-out everywhere voided it.
                let usable = age < STAGE_TTL + LEEWAY && !stale_version;
                if r.status == StatusCode::UNAUTHORIZED && r.body["error"] == "unauthenticated" {
                    if usable {
                        return fail(format!("the stage ({age} s old) was refused: {}", r.text));
                    }
                    self.model.seats[b] = Seat::Out;
                    return Ok(());
                }
                if !usable {
                    return fail(format!("a stage {age} s old (voided: {stale_version}) was used: {}", r.status));
                }
                // The code limit comes first.
                let person = &mut self.model.people[p];
                if !person.bucket.attempt(now) {
                    return match r.status {
                        StatusCode::TOO_MANY_REQUESTS => {
                            seen(SEEN_THROTTLED);
                            Ok(())
                        }
                        _ => fail(format!("the limit should have refused it: {} {}", r.status, r.text)),
                    };
                }
                let (_, step_now) = {
                    let code = totp::code_at(&self.people[p].secret, now).unwrap();
                    (code, now / 30)
                };
                let good = match answer {
                    // With the app off (a passkey keeps the code step), no code is one.
                    Answer::Right => step_now > person.last_step && !person.off,
                    Answer::Wrong | Answer::Replay | Answer::RecoveryAgain => false,
                    Answer::Recovery => person.recovery_used < 10,
                };
                // RecoveryAgain is a spent code only once one was used.
                let good = good || (answer == Answer::RecoveryAgain && person.recovery_used == 0);
                match (good, r.status) {
                    (true, StatusCode::OK) if r.body["id"] == json!(self.people[p].id) => {
                        if answer == Answer::Right {
                            person.last_step = step_now;
                        } else {
                            person.recovery_used += 1;
                        }
                        person.bucket = Bucket::default();
                        person.log_ins += 1;
                        seen(SEEN_LOG_INS);
                        self.start_login(b, p, true, &r).map_err(|e| format!("{step}: {e}"))?;
                    }
                    (false, StatusCode::UNAUTHORIZED) => person.codes_refused += 1,
                    _ => {
                        return fail(format!("expected {}, got {} {}", if good { 200 } else { 401 }, r.status, r.text));
                    }
                }
            }
            Op::Refresh { b } => {
                let before =
                    cookie(&self.browsers[b].jar, &format!("{}/api/authentication/refresh", app.base), "refresh");
                let r = app.post_with(&self.browsers[b].client, "/api/authentication/refresh", json!({})).await;
                match (self.alive(self.model.seats[b]), r.status) {
                    (Some(login), StatusCode::OK) => {
                        self.model.seats[b] = Seat::In { login, access_at: now };
                        self.browsers[b].previous_refresh = before;
                        self.model.spent[b] = Some(login);
                    }
                    // Refused: its cookies are cleared (a password stage too).
                    (None, StatusCode::UNAUTHORIZED) => self.model.seats[b] = Seat::Out,
                    (alive, status) => return fail(format!("log-in alive: {alive:?}, answered {status} {}", r.text)),
                }
            }
            Op::ParallelRefresh { b } => {
                let other = &self.apps[(step.on + 1) % self.apps.len()];
                let before =
                    cookie(&self.browsers[b].jar, &format!("{}/api/authentication/refresh", app.base), "refresh");
                let c = &self.browsers[b].client;
                let (r1, r2) = tokio::join!(
                    app.post_with(c, "/api/authentication/refresh", json!({})),
                    other.post_with(c, "/api/authentication/refresh", json!({}))
                );
                let mut statuses = [r1.status.as_u16(), r2.status.as_u16()];
                statuses.sort_unstable();
                match (self.alive(self.model.seats[b]), statuses) {
                    // Held one after the other on the log-in's row: the
                    // second finds its token spent (no grace here), so the
                    // log-in ends and its owner is told. The jar may keep
                    // the renewed (now dead) access token.
                    (Some(login), [200, 401]) => {
                        let p = self.model.logins[login].p;
                        self.model.people[p].reuses += 1;
                        seen(SEEN_REUSE);
                        self.end(login);
                        self.model.seats[b] = Seat::In { login, access_at: now };
                        self.browsers[b].previous_refresh = before;
                        self.model.spent[b] = Some(login);
                    }
                    (None, [401, 401]) => self.model.seats[b] = Seat::Out,
                    (alive, statuses) => {
                        return fail(format!(
                            "log-in alive: {alive:?}, answered {statuses:?}: {} / {}",
                            r1.text, r2.text
                        ));
                    }
                }
            }
            Op::StaleRefresh { b } => {
                let (Some(old), Some(login)) = (self.browsers[b].previous_refresh.clone(), self.model.spent[b]) else {
                    return Ok(());
                };
                let res = reqwest::Client::new()
                    .post(format!("{}/api/authentication/refresh", app.base))
                    .header("cookie", format!("refresh={old}"))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                if res.status() != StatusCode::UNAUTHORIZED {
                    return fail(format!("a spent refresh token got {}", res.status()));
                }
                if self.model.logins[login].alive {
                    // A copy caught: the log-in ends, its owner is told.
                    let p = self.model.logins[login].p;
                    self.model.people[p].reuses += 1;
                    seen(SEEN_REUSE);
                    self.end(login);
                }
            }
            Op::LogOut { b } => {
                let r = app.post_with(&self.browsers[b].client, "/api/authentication/log-out", json!({})).await;
                if !r.status.is_success() {
                    return fail(format!("answered {} {}", r.status, r.text));
                }
                if let Seat::In { login, .. } = self.model.seats[b] {
                    self.end(login);
                }
                self.model.seats[b] = Seat::Out;
            }
            Op::Everywhere { b } => {
                let r =
                    app.post_with(&self.browsers[b].client, "/api/authentication/log-out-everywhere", json!({})).await;
                let seat = self.model.seats[b];
                let fresh = matches!(seat, Seat::In { access_at, .. } if now - access_at < ACCESS_TTL + LEEWAY);
                match (self.alive(seat), r.status) {
                    (Some(login), s) if s.is_success() => {
                        self.version_moved(self.model.logins[login].p);
                        self.model.seats[b] = Seat::Out;
                    }
                    (Some(_), StatusCode::UNAUTHORIZED) if !fresh => {}
                    (None, StatusCode::UNAUTHORIZED) => {}
                    (alive, status) => return fail(format!("log-in alive: {alive:?}, answered {status} {}", r.text)),
                }
            }
            Op::ChangePassword { b } => {
                let seat = self.model.seats[b];
                let p = self.person_of(b);
                let (current, next) = (self.model.people[p].password(), self.model.people[p].other_password());
                let body = json!({"currentPassword": current, "newPassword": next});
                let r = app.post_with(&self.browsers[b].client, "/api/authentication/change-password", body).await;
                let login = match seat {
                    Seat::In { login, access_at } if now - access_at < ACCESS_TTL + LEEWAY => Some(login),
                    _ => None,
                };
                let alive = login.is_some_and(|l| self.model.logins[l].alive);
                // Ended on another instance a moment ago: it may not know yet.
                let cached = !alive && self.cached_elsewhere(login);
                match r.status {
                    StatusCode::OK if alive || cached => {
                        // Every log-in of the person ends; this browser gets
                        // a new one (the same factors), under a new version.
                        let two_factor = login.is_some_and(|l| self.model.logins[l].two_factor);
                        self.model.people[p].password_changes += 1;
                        seen(SEEN_PASSWORD_CHANGED);
                        self.renewed(b, p, two_factor, &r).map_err(|e| format!("{step}: {e}"))?;
                    }
                    StatusCode::UNAUTHORIZED if !alive => {}
                    // The password limit (its own test counts it exactly).
                    StatusCode::TOO_MANY_REQUESTS if self.model.people[p].wrong_passwords >= FREE => {}
                    status => {
                        return fail(format!(
                            "log-in alive: {alive} (fresh: {}), answered {status} {}",
                            login.is_some(),
                            r.text
                        ));
                    }
                }
            }
            Op::Lockdown { p } => {
                let token = self.mint_link(p, "lockdown").await;
                let r = app
                    .post_with(&reqwest::Client::new(), "/api/authentication/lockdown", json!({"token": token}))
                    .await;
                if !r.status.is_success() {
                    return fail(format!("answered {} {}", r.status, r.text));
                }
                self.version_moved(p);
                let person = &mut self.model.people[p];
                person.lockdowns += 1;
                person.locked = true;
                seen(SEEN_LOCKDOWN);
            }
            Op::Reset { p } => {
                let token = self.mint_link(p, "reset").await;
                let next = self.model.people[p].other_password();
                let body = json!({"token": token, "newPassword": next});
                let r = app.post_with(&reqwest::Client::new(), "/api/authentication/reset-password", body).await;
                if !r.status.is_success() {
                    return fail(format!("answered {} {}", r.status, r.text));
                }
                self.version_moved(p);
                let person = &mut self.model.people[p];
                person.resets += 1;
                person.locked = false;
                seen(SEEN_RESET);
            }
            Op::TurnOff { b } => {
                self.advance(30);
                let now = self.model.now;
                let p = self.person_of(b);
                let (code, step_now) = self.code_now(p);
                let body = json!({"password": self.model.people[p].password(), "twoFactorAuthenticationCode": code});
                let r = app.post_with(&self.browsers[b].client, "/api/2fa/turn-off", body).await;
                let login = self.fresh_login(b);
                let alive = login.is_some_and(|l| self.model.logins[l].alive);
                let cached = !alive && self.cached_elsewhere(login);
                let person = &mut self.model.people[p];
                match r.status {
                    StatusCode::UNAUTHORIZED if !alive && r.body["error"] == "unauthenticated" => {}
                    _ if !(alive || cached) => return fail(format!("no live log-in, yet {} {}", r.status, r.text)),
                    StatusCode::CONFLICT if person.off => {}
                    StatusCode::TOO_MANY_REQUESTS if person.wrong_passwords >= FREE => {}
                    status if !person.off => {
                        // The password passed: the code, under its limit.
                        if !person.bucket.attempt(now) {
                            if status != StatusCode::TOO_MANY_REQUESTS {
                                return fail(format!("the limit should have refused it: {status} {}", r.text));
                            }
                            seen(SEEN_THROTTLED);
                            return Ok(());
                        }
                        if step_now <= person.last_step {
                            if status != StatusCode::UNAUTHORIZED {
                                return fail(format!("a used step was taken: {status} {}", r.text));
                            }
                            person.codes_refused += 1;
                            return Ok(());
                        }
                        if status != StatusCode::OK {
                            return fail(format!("expected 200, got {status} {}", r.text));
                        }
                        person.last_step = step_now;
                        person.bucket = Bucket::default();
                        person.off = true;
                        person.turned_off += 1;
                        seen(SEEN_TURNED_OFF);
                        self.renewed(b, p, true, &r)?;
                    }
                    status => return fail(format!("answered {status} {}", r.text)),
                }
            }
            Op::TurnOn { b } => {
                let p = self.person_of(b);
                let login = self.fresh_login(b);
                let alive = login.is_some_and(|l| self.model.logins[l].alive);
                if !alive || !self.model.people[p].off || self.model.people[p].wrong_passwords >= FREE {
                    return Ok(()); // (the generator's rule: only where it can be done)
                }
                let c = &self.browsers[b].client;
                let body = json!({"password": self.model.people[p].password()});
                let g = app.post_with(c, "/api/2fa/generate", body).await;
                if g.status != StatusCode::OK {
                    return fail(format!("generate: {} {}", g.status, g.text));
                }
                let secret = totp::from_base32(g.body["secret"].as_str().unwrap()).unwrap();
                let code = totp::code_at(&secret, now).unwrap();
                let r = app.post_with(c, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": code})).await;
                let person = &mut self.model.people[p];
                if let Some(outcome) = refused_by_limit(&mut person.bucket, now, &r) {
                    return outcome.or_else(fail);
                }
                if r.status != StatusCode::OK {
                    return fail(format!("turn-on: {} {}", r.status, r.text));
                }
                person.last_step = now / 30;
                person.bucket = Bucket::default();
                person.off = false;
                person.turned_on += 1;
                seen(SEEN_TURNED_ON);
                person.recovery_used = 0;
                let codes = r.body["recoveryCodes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned());
                self.people[p].recovery = codes.collect();
                self.people[p].secret = secret;
                self.renewed(b, p, true, &r)?;
            }
            Op::AddPasskey { b } => {
                let p = self.person_of(b);
                let alive = self.fresh_login(b).is_some_and(|l| self.model.logins[l].alive);
                let person = &self.model.people[p];
                if !alive || person.passkeys >= 2 || person.wrong_passwords >= FREE {
                    return Ok(()); // (the generator's rule: only where it can be done)
                }
                let c = &self.browsers[b].client;
                let body = json!({"name": "Model key", "password": person.password()});
                let start = app.post_with(c, "/api/webauthn/register/start", body).await;
                if start.status != StatusCode::OK {
                    return fail(format!("register start: {} {}", start.status, start.text));
                }
                let mut key = Discoverable::numbered(&app.state.gate.public_url, next_key());
                let body =
                    json!({"ceremony": start.body["ceremony"], "credential": key.register(&start.body["options"])});
                let r = app.post_with(c, "/api/webauthn/register/finish", body).await;
                if r.status != StatusCode::CREATED {
                    return fail(format!("register finish: {} {}", r.status, r.text));
                }
                let id = r.body["passkey"]["id"].as_str().unwrap_or_default().to_owned();
                self.people[p].keys.push((key, Some(id)));
                seen(SEEN_PASSKEY_ADDED);
                let person = &mut self.model.people[p];
                let turned_on = !person.two_factor();
                person.passkeys += 1;
                person.passkeys_added += 1;
                if turned_on {
                    // The first factor: two factors on, new recovery codes,
                    // every other log-in ended.
                    let Some(codes) = r.body["recoveryCodes"].as_array() else {
                        return fail(format!("turned on without recovery codes: {}", r.text));
                    };
                    self.people[p].recovery = codes.iter().map(|c| c.as_str().unwrap().to_owned()).collect();
                    person.recovery_used = 0;
                    person.turned_on += 1;
                    seen(SEEN_TURNED_ON);
                    self.renewed(b, p, true, &r)?;
                } else if !r.body["recoveryCodes"].is_null() {
                    return fail(format!("new recovery codes for a second factor added: {}", r.text));
                }
            }
            Op::RemovePasskey { b } => {
                let p = self.person_of(b);
                let login = self.fresh_login(b);
                let alive = login.is_some_and(|l| self.model.logins[l].alive);
                let person = &self.model.people[p];
                let Some(k) = self.people[p].keys.iter().position(|(_, id)| id.is_some()) else { return Ok(()) };
                if !alive || person.wrong_passwords >= FREE {
                    return Ok(()); // (the generator's rule: only where it can be done)
                }
                let id = self.people[p].keys[k].1.clone().unwrap_or_default();
                let body = json!({"password": person.password()});
                let r =
                    app.post_with(&self.browsers[b].client, &format!("/api/webauthn/passkeys/{id}/remove"), body).await;
                if r.status != StatusCode::OK {
                    return fail(format!("answered {} {}", r.status, r.text));
                }
                self.people[p].keys[k].1 = None;
                let person = &mut self.model.people[p];
                person.passkeys -= 1;
                person.passkeys_removed += 1;
                if r.body["passkeysLeft"] != json!(person.passkeys)
                    || r.body["twoFactorOn"] != json!(person.two_factor())
                {
                    return fail(format!(
                        "the model has {} left (two factors: {}): {}",
                        person.passkeys,
                        person.two_factor(),
                        r.text
                    ));
                }
                if !person.two_factor() {
                    // The last factor: off, every other log-in ended; this
                    // one goes on as it was reached.
                    person.turned_off += 1;
                    seen(SEEN_TURNED_OFF);
                    let two_factor = login.is_some_and(|l| self.model.logins[l].two_factor);
                    self.renewed(b, p, two_factor, &r)?;
                }
            }
            Op::PasskeyStep { b, key } => {
                let c = &self.browsers[b].client;
                let start = app.post_with(c, "/api/webauthn/authenticate/start", json!({})).await;
                let Seat::Stage { p, at, version } = self.model.seats[b] else {
                    return match start.status {
                        StatusCode::UNAUTHORIZED if start.body["error"] == "unauthenticated" => Ok(()),
                        _ => fail(format!("no password stage, yet {} {}", start.status, start.text)),
                    };
                };
                let usable = now - at < STAGE_TTL + LEEWAY && version == self.model.people[p].version;
                if start.status == StatusCode::UNAUTHORIZED && start.body["error"] == "unauthenticated" && !usable {
                    self.model.seats[b] = Seat::Out;
                    return Ok(());
                }
                if !usable {
                    return fail(format!("a stale stage started a ceremony: {} {}", start.status, start.text));
                }
                if self.model.people[p].passkeys == 0 {
                    return match start.status {
                        StatusCode::CONFLICT => Ok(()),
                        status => fail(format!("no passkey, yet the ceremony started: {status} {}", start.text)),
                    };
                }
                if start.status != StatusCode::OK {
                    return fail(format!("start: {} {}", start.status, start.text));
                }
                let (registered, r) =
                    show_key(app, c, &mut self.people[p].keys, key, &start, "/api/webauthn/authenticate/finish").await;
                let person = &mut self.model.people[p];
                if let Some(outcome) = refused_by_limit(&mut person.bucket, now, &r) {
                    return outcome.or_else(fail);
                }
                match (registered, r.status) {
                    (true, StatusCode::OK) if r.body["id"] == json!(self.people[p].id) => {
                        person.bucket = Bucket::default();
                        person.log_ins += 1;
                        person.passkeys_used += 1;
                        seen(SEEN_LOG_INS);
                        seen(SEEN_PASSKEY_LOG_INS);
                        self.start_login(b, p, true, &r).map_err(|e| format!("{step}: {e}"))?;
                    }
                    (false, StatusCode::UNAUTHORIZED) if r.body["error"] == "invalid_code" => {
                        person.codes_refused += 1;
                        person.passkeys_refused += 1;
                        seen(SEEN_REMOVED_PASSKEY_REFUSED);
                    }
                    (registered, status) => {
                        return fail(format!("a passkey registered: {registered}, answered {status} {}", r.text));
                    }
                }
            }
            Op::PasskeySignIn { b, p, key } => {
                if self.alive(self.model.seats[b]).is_some() || self.people[p].keys.is_empty() {
                    return Ok(()); // (the generator's rule: only where it can be done)
                }
                let c = &self.browsers[b].client;
                let start = app.post_with(c, "/api/webauthn/sign-in/start", json!({})).await;
                if start.status != StatusCode::OK {
                    return fail(format!("start: {} {}", start.status, start.text));
                }
                let (registered, r) =
                    show_key(app, c, &mut self.people[p].keys, key, &start, "/api/webauthn/sign-in/finish").await;
                let person = &mut self.model.people[p];
                if person.passkeys == 0 {
                    // Nobody's passkey now: the answer of a wrong password,
                    // and nothing counted against the person.
                    return match r.status {
                        StatusCode::UNAUTHORIZED if r.body["error"] == "invalid_credentials" => {
                            seen(SEEN_REMOVED_PASSKEY_REFUSED);
                            Ok(())
                        }
                        status => fail(format!("a person without passkeys: {status} {}", r.text)),
                    };
                }
                // The code limit, then the password limits (a passkey alone
                // is no way around them).
                if let Some(outcome) = refused_by_limit(&mut person.bucket, now, &r) {
                    return outcome.or_else(fail);
                }
                if r.status == StatusCode::TOO_MANY_REQUESTS && person.wrong_passwords >= FREE {
                    person.bucket.release();
                    return Ok(());
                }
                if !registered {
                    // The answer of a wrong password: nothing said about the account.
                    if r.status != StatusCode::UNAUTHORIZED || r.body["error"] != "invalid_credentials" {
                        return fail(format!("a removed passkey: {} {}", r.status, r.text));
                    }
                    person.codes_refused += 1;
                    person.passkeys_refused += 1;
                    person.wrong_passwords += 1;
                    seen(SEEN_REMOVED_PASSKEY_REFUSED);
                    return Ok(());
                }
                // Accepted: the code limit settled, whatever comes next. (The
                // password limit of this browser's bucket too, which the
                // model, counting per person, leaves as it was: looser.)
                person.bucket = Bucket::default();
                person.passkeys_used += 1;
                match r.status {
                    StatusCode::FORBIDDEN if person.locked && r.body["fields"]["account"] == "locked" => {
                        seen(SEEN_LOCKED_REFUSED)
                    }
                    StatusCode::OK if !person.locked && r.body["id"] == json!(self.people[p].id) => {
                        person.log_ins += 1;
                        seen(SEEN_LOG_INS);
                        seen(SEEN_PASSKEY_LOG_INS);
                        self.start_login(b, p, true, &r).map_err(|e| format!("{step}: {e}"))?;
                    }
                    status => return fail(format!("locked: {}, answered {status} {}", person.locked, r.text)),
                }
            }
            Op::Gate { b } => {
                // The gate cookie of the browser's last log-in, kept after it
                // ended (as a copy someone kept would be).
                let Some((gate, login)) = self.browsers[b].gate.clone() else { return Ok(()) };
                let status = gate_answer(app, &gate, "http://wiki.example.test/").await;
                let alive = self.model.logins[login].alive;
                let two_factor = self.model.logins[login].two_factor;
                match (alive, status) {
                    (true, StatusCode::OK) if two_factor => {}
                    // One factor, on a two-factor rule: sent to turn it on.
                    (true, StatusCode::UNAUTHORIZED) if !two_factor => {}
                    (false, StatusCode::UNAUTHORIZED) => seen(SEEN_ENDED_GATE),
                    (false, StatusCode::OK) if self.cached_elsewhere(Some(login)) => {}
                    (alive, status) => return fail(format!("log-in alive: {alive}, the gate answered {status}")),
                }
            }
        }
        Ok(())
    }

    /// Ended less than 2 seconds ago (model time): another instance may
    /// still hold it in its cache (`gate::cache`, bounded by its max age).
    fn cached_elsewhere(&self, login: Option<usize>) -> bool {
        self.apps.len() > 1
            && login.and_then(|l| self.model.logins[l].ended_at).is_some_and(|at| self.model.now - at < 2)
    }

    fn person_of(&self, b: usize) -> usize {
        match self.model.seats[b] {
            Seat::Stage { p, .. } => p,
            Seat::In { login, .. } => self.model.logins[login].p,
            Seat::Out => b % PEOPLE,
        }
    }

    fn last_code(&self, p: usize) -> String {
        let step = self.model.people[p].last_step.max(1);
        totp::code_at(&self.people[p].secret, step * 30).unwrap()
    }

    /// Every browser asks the portal who it is, on every instance: the
    /// model says who must be refused, and who must be let in (with a
    /// fresh access token and a log-in alive).
    async fn check_everyone(&self) -> Result<(), Failure> {
        for (b, seat) in self.model.seats.iter().enumerate() {
            for app in self.apps {
                let r = app.get_with(&self.browsers[b].client, "/api/authentication").await;
                let (must, may) = match *seat {
                    Seat::In { login, access_at } => {
                        let age = self.model.now - access_at;
                        let alive = self.model.logins[login].alive;
                        let cached = !alive && self.cached_elsewhere(Some(login));
                        let fresh = age < ACCESS_TTL + LEEWAY;
                        (alive && fresh, (alive || cached) && fresh)
                    }
                    _ => (false, false),
                };
                match r.status {
                    StatusCode::OK if may => {}
                    StatusCode::UNAUTHORIZED if !must => {}
                    status => {
                        return Err(format!(
                            "browser {b} ({seat:?}) asked who it is: {status} (must be let in: {must}) {}",
                            r.text
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The audit trail holds one event per model event.
    async fn check_audit(&self) -> Result<(), Failure> {
        for (p, person) in self.people.iter().enumerate() {
            let counts = audit_counts(&self.apps[0], person.id).await;
            let m = &self.model.people[p];
            let count =
                |list: &[(String, i64)], kind: &str| list.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
            let seen = |kind: &str| count(&counts, kind) - count(&person.baseline, kind);
            let expected = [
                ("log_in_ok", m.log_ins),
                ("code_failed", m.codes_refused),
                ("refresh_reuse_detected", m.reuses),
                ("password_changed", m.password_changes),
                ("password_reset", m.resets),
                ("locked_down", m.lockdowns),
                ("two_factor_off", m.turned_off),
                ("two_factor_on", m.turned_on),
                ("passkey_added", m.passkeys_added),
                ("passkey_removed", m.passkeys_removed),
                ("passkey_used", m.passkeys_used),
                ("passkey_refused", m.passkeys_refused),
            ];
            for (kind, n) in expected {
                if seen(kind) != n {
                    return Err(format!("person {p}: {} {kind} events, the model has {n}", seen(kind)));
                }
            }
        }
        Ok(())
    }
}

async fn audit_counts(app: &TestApp, user_id: i64) -> Vec<(String, i64)> {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url).await.unwrap();
    sqlx::query_as("SELECT kind, COUNT(*) FROM audit_events WHERE user_id = $1 GROUP BY kind")
        .bind(user_id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// The instances: one on SQLite, two on one PostgreSQL database.
async fn instances() -> Vec<TestApp> {
    sqlx::any::install_default_drivers();
    let rules = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(rules.path(), RULES).unwrap();
    let (_, rules) = rules.keep().unwrap();
    let rules = rules.display().to_string();
    let settings: Vec<(&str, &str)> = vec![
        ("COOKIE_DOMAINS", "example.test"),
        ("PUBLIC_URL", "http://auth.example.test"),
        ("SIGNUP", "open"),
        ("ACCESS_RULES", &rules),
        ("REFRESH_GRACE_SECONDS", "0"),
        ("REMEMBER_DAYS", "0"),
    ];
    let first = spawn_app_with(&settings).await;
    if !first.database_url.starts_with("postgres") {
        return vec![first];
    }
    let (url, data) = (first.database_url.clone(), first._dir.path().display().to_string());
    let mut more = settings.clone();
    more.push(("DATABASE_URL", &url));
    more.push(("DATA_DIR", &data));
    let second = spawn_app_with(&more).await;
    second.clock.advance(first.clock_now() - second.clock_now());
    vec![first, second]
}

/// Runs `steps` on new people and browsers; the first failure, if any.
async fn run_sequence(apps: &[TestApp], steps: &[Step], tag: &str) -> Result<(), Failure> {
    // A fresh hour: every limit of earlier sequences has started over.
    for app in apps {
        app.clock.advance(WINDOW + 1);
    }
    let mut people = Vec::new();
    for p in 0..PEOPLE {
        let email = format!("{tag}-{p}@example.com");
        let setup = new_client();
        let app = &apps[0];
        let body = json!({"email": email, "name": "Model Person", "password": PASSWORD});
        assert_eq!(app.post_with(&setup, "/api/authentication/register", body).await.status, StatusCode::CREATED);
        let body = json!({"email": email, "password": PASSWORD});
        assert_eq!(app.post_with(&setup, "/api/authentication/log-in", body).await.status, StatusCode::OK);
        let g = app.post_with(&setup, "/api/2fa/generate", json!({})).await;
        let secret = totp::from_base32(g.body["secret"].as_str().unwrap()).unwrap();
        let code = totp::code_at(&secret, app.clock_now()).unwrap();
        let on = app.post_with(&setup, "/api/2fa/turn-on", json!({"twoFactorAuthenticationCode": code})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        let recovery = on.body["recoveryCodes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned());
        let me = app.get_with(&setup, "/api/authentication").await;
        let id = me.body["id"].as_i64().unwrap();
        app.post_with(&setup, "/api/authentication/log-out", json!({})).await;
        let baseline = audit_counts(app, id).await;
        people.push(Person { email, secret, recovery: recovery.collect(), id, baseline, keys: Vec::new() });
    }
    let now = apps[0].clock_now();
    // Turning on accepted the current step: the model starts there.
    let mut persons = vec![PersonModel::default(); PEOPLE];
    for p in &mut persons {
        p.last_step = now / 30;
    }
    let mut world = World {
        apps,
        people,
        browsers: (0..BROWSERS).map(|_| browser()).collect(),
        model: Model {
            now,
            people: persons,
            seats: vec![Seat::Out; BROWSERS],
            logins: Vec::new(),
            spent: vec![None; BROWSERS],
        },
    };
    // The set-up's code (turn-on) is in the next step's past: move on.
    world.advance(30);
    for (i, step) in steps.iter().enumerate() {
        world.run(*step).await.map_err(|e| format!("step {}: {e}", i + 1))?;
        world.check_everyone().await.map_err(|e| format!("after step {} ({step}): {e}", i + 1))?;
    }
    world.check_audit().await
}

/// Takes steps out of a failing sequence while it still fails.
async fn shrink(apps: &[TestApp], mut steps: Vec<Step>, tag: &str) -> Vec<Step> {
    let mut round = 0;
    let mut i = 0;
    while i < steps.len() {
        let mut shorter = steps.clone();
        shorter.remove(i);
        round += 1;
        if run_sequence(apps, &shorter, &format!("{tag}-shrink{round}")).await.is_err() {
            steps = shorter;
        } else {
            i += 1;
        }
    }
    steps
}

#[tokio::test]
async fn random_sequences_keep_the_security_invariants() {
    let count: u64 = std::env::var("MODEL_SEQUENCES").ok().and_then(|n| n.parse().ok()).unwrap_or(60);
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=count).map(|n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect(),
    };
    let apps = instances().await;
    let started = std::time::Instant::now();
    for (n, seed) in seeds.iter().enumerate() {
        let mut rng = Rng(*seed | 1);
        let steps = generate(&mut rng, apps.len());
        let tag = format!("model{n}");
        if let Err(first) = run_sequence(&apps, &steps, &tag).await {
            let small = shrink(&apps, steps, &tag).await;
            let script: Vec<String> = small.iter().enumerate().map(|(i, s)| format!("  {}. {s}", i + 1)).collect();
            let last = run_sequence(&apps, &small, &format!("{tag}-final")).await.err().unwrap_or_default();
            panic!(
                "seed {seed} (MODEL_SEED={seed} replays it) broke an invariant: {first}\nshrunk to {} steps:\n{}\n{last}",
                small.len(),
                script.join("\n")
            );
        }
    }
    let n = |what: usize| SEEN[what].load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{} sequences of {STEPS} to {} steps on {} instance(s) kept every invariant in {:.1} s: {} log-ins, {} code \
         attempts refused by the limit, {} copied refresh tokens caught, {} gate cookies of ended log-ins refused, {} \
         passwords changed, {} lockdowns (then {} right passwords refused), {} resets, two factors turned off {} times and on {}, \
         {} passkeys added, {} log-ins with one, {} removed ones refused",
        seeds.len(),
        STEPS + SPLICED,
        apps.len(),
        started.elapsed().as_secs_f64(),
        n(SEEN_LOG_INS),
        n(SEEN_THROTTLED),
        n(SEEN_REUSE),
        n(SEEN_ENDED_GATE),
        n(SEEN_PASSWORD_CHANGED),
        n(SEEN_LOCKDOWN),
        n(SEEN_LOCKED_REFUSED),
        n(SEEN_RESET),
        n(SEEN_TURNED_OFF),
        n(SEEN_TURNED_ON),
        n(SEEN_PASSKEY_ADDED),
        n(SEEN_PASSKEY_LOG_INS),
        n(SEEN_REMOVED_PASSKEY_REFUSED)
    );
}
