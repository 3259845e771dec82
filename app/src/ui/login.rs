//! The log-in wizard. Step 1: email and password. Step 2, only when 2FA is
//! on: the six-digit code, or a recovery code (`?with=recovery`). The step
//! is server state: after a correct password the password-stage cookie
//! says "code step", so a reload, a browser without JavaScript and a
//! hydrated page all draw the same step. Both forms are real POSTs to
//! /login, enhanced in place once the WebAssembly has loaded. The code
//! step names the account it logs in, says when it ends (and, hydrated,
//! warns a minute before), and submits six digits by itself.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use serde::{Deserialize, Serialize};

use crate::api::{authenticate_two_factor, log_in, log_out, parse_email, parse_second_factor};
use crate::error::ErrorKind;
use crate::time::format_utc;

use super::outcome::{FormOutcome, Intent, page_outcome};
use super::passkeys::{PasskeySignIn, PasskeyStep};
use super::{
    ErrorNote, InputKind, IntentField, SubmitButton, TextField, field_message, focus_later, form_error, go_to_server,
    return_to, with_return_to,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Password,
    Code,
}

/// How long a password step waits for its second factor (the server's
/// password-stage token lives as long).
const STEP_SECONDS: i64 = 5 * 60;
/// How long six typed digits wait before they submit themselves.
#[cfg(feature = "hydrate")]
const AUTO_SUBMIT_MS: u64 = 500;
/// The code step's warning comes this long before it ends.
const WARN_SECONDS: i64 = 60;

/// A password step this browser holds, awaiting its second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    /// An authenticator app is on offer.
    app: bool,
    /// A passkey is on offer.
    passkey: bool,
    /// When the step ends (Unix seconds, the server's clock).
    ends_at: i64,
    /// Seconds left when the page was drawn: the browser counts down from
    /// this, whatever its own clock says.
    seconds_left: i64,
}

/// The password step the request's cookie holds, read from the token
/// alone (no database).
fn pending_step() -> Option<Pending> {
    #[cfg(feature = "ssr")]
    {
        use crate::server::crypto::tokens::{CookieKind, Stage};
        let state = crate::server::app_state().ok()?;
        let headers = crate::server::request_headers().ok()?;
        let now = state.now();
        let token = state.cookies.from_headers(CookieKind::Access, &headers)?;
        let claims = state.keys.verify(token, Stage::Password, now)?;
        let (app, passkey) = claims.factors();
        Some(Pending { app, passkey, ends_at: claims.exp, seconds_left: (claims.exp - now).max(0) })
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

/// The email of the account the pending password step logs in: read on
/// the server from the password-stage cookie's account, never from the
/// address. In the browser the password step's answer names it instead.
async fn pending_email(pending: bool) -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        use crate::server::auth::PasswordSession;
        if !pending {
            return None;
        }
        let state = crate::server::app_state().ok()?;
        crate::server::extract::<PasswordSession>(&state).await.ok().map(|s| s.user.email)
    }
    #[cfg(not(feature = "ssr"))]
    {
        let _ = pending;
        None
    }
}

/// Where the code step's countdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Countdown {
    Running,
    EndingSoon,
    Ended,
}

/// The browser's clock, in Unix seconds.
fn browser_now() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        (js_date_now() / 1000.0) as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn js_date_now() -> f64;
}

/// Moves `countdown` to `EndingSoon` a minute before `seconds_left` runs
/// out and to `Ended` when it does, unless `round` has moved on (the step
/// was left or started again) by then. Browser only.
fn start_countdown(seconds_left: i64, countdown: RwSignal<Countdown>, round: RwSignal<u32>) {
    let this_round = round.get_untracked();
    let at = |state: Countdown, seconds: i64| {
        let run = move || {
            // The page may be gone by then.
            if round.try_get_untracked() == Some(this_round) {
                countdown.set(state);
            }
        };
        #[cfg(feature = "hydrate")]
        leptos::prelude::set_timeout(run, std::time::Duration::from_secs(seconds.max(0) as u64));
        #[cfg(not(feature = "hydrate"))]
        let _ = (run, seconds);
    };
    countdown.set(Countdown::Running);
    at(Countdown::EndingSoon, seconds_left - WARN_SECONDS);
    at(Countdown::Ended, seconds_left);
}

/// `HH:MM` of a Unix time, in UTC.
fn clock_time(secs: i64) -> String {
    let full = format_utc(secs);
    full.get(full.len().saturating_sub(5)..).unwrap_or_default().to_owned()
}

/// Six digits, typed or pasted with a space or a hyphen (`123 456`).
fn six_digits(typed: &str) -> bool {
    typed.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        && typed.chars().filter(char::is_ascii_digit).count() == 6
}

/// The log-in page, in a lazily loaded chunk like the other pages (what
/// every page loads stays within its budget). What the server knows — the
/// post outcome, a password step awaiting its second factor, whether
/// sign-up is open — is read in `data`, which runs during hydration before
/// the chunk has arrived.
pub struct LogInRoute {
    outcome: Option<FormOutcome>,
    pending: Option<Pending>,
    signup_open: bool,
    remember_days: i64,
}

/// For how many days the code step offers not to ask again on this
/// browser (`REMEMBER_DAYS`; 0: not offered), as the server says.
fn remember_days() -> i64 {
    let days = || {
        #[cfg(feature = "ssr")]
        {
            crate::server::app_state().map(|state| state.remember_seconds / 86_400).unwrap_or(0)
        }
        #[cfg(not(feature = "ssr"))]
        {
            0
        }
    };
    SharedValue::new(days).into_inner()
}

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for LogInRoute {
    fn data() -> Self {
        Self {
            outcome: page_outcome(),
            pending: SharedValue::new(pending_step).into_inner(),
            signup_open: super::signup::signup_open(),
            remember_days: remember_days(),
        }
    }

    fn view(this: Self) -> AnyView {
        view! {
            <LogInPage outcome=this.outcome pending=this.pending signup_open=this.signup_open
                remember_days=this.remember_days/>
        }
        .into_any()
    }
}

#[component]
fn LogInPage(
    outcome: Option<FormOutcome>,
    pending: Option<Pending>,
    signup_open: bool,
    remember_days: i64,
) -> impl IntoView {
    let step = RwSignal::new(if pending.is_some() { Step::Code } else { Step::Password });
    // What the code step offers: the app's code, a passkey, or both.
    let factors = RwSignal::new(pending.map(|p| (p.app, p.passkey)).unwrap_or((true, false)));
    // Whose log-in the code step finishes: the server reads it for the
    // first page; the password step's answer says it once hydrated.
    let pending_account = Resource::new(move || pending.is_some(), pending_email);
    let account = RwSignal::new(None::<String>);
    let shown_account = Signal::derive(move || account.get().or_else(|| pending_account.get().flatten()));
    // When the code step ends, and where its countdown stands.
    let ends_at = RwSignal::new(pending.map(|p| p.ends_at));
    let countdown = RwSignal::new(Countdown::Running);
    let round = RwSignal::new(0_u32);
    // What a screen reader is told when a step changes in place: a live
    // region on the page from the start, so the text is read out.
    let announce = RwSignal::new(String::new());
    let has_app = Signal::derive(move || factors.get().0);
    let has_passkey = Signal::derive(move || factors.get().1);
    let email = RwSignal::new(outcome.as_ref().map(|o| o.field("email")).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    // "Don't ask again on this browser", as ticked (kept after a refused code).
    let remember = RwSignal::new(outcome.as_ref().is_some_and(|o| o.field("remember") == "on"));
    let notice = RwSignal::new(None::<String>);
    let query = use_query_map();
    let use_recovery = Memo::new(move |_| query.read().get("with").as_deref() == Some("recovery"));
    let navigate = use_navigate();
    // Sent here by the gate in front of another app: the forms keep `rd`,
    // and once logged in the server (which checks it) sends the browser on.
    let return_to = return_to();
    let form_action = move || with_return_to("/login", return_to.get().as_deref());
    // Where a passkey log-in (a full page load by passkeys.js) goes on to.
    let after_passkey = Signal::derive(move || match return_to.get() {
        Some(rd) => with_return_to("/login", Some(&rd)),
        None => "/".to_owned(),
    });
    let finished = move |navigate: &dyn Fn(&str, leptos_router::NavigateOptions)| match return_to.get_untracked() {
        Some(rd) => go_to_server(&with_return_to("/login", Some(&rd))),
        None => navigate("/", Default::default()),
    };

    let password_action = Action::new(|(email, password): &(String, String)| {
        let (email, password) = (email.clone(), password.clone());
        async move {
            parse_email(&email)?;
            log_in(email, password).await
        }
    });
    let code_action = Action::new(|(code, recovery, remember): &(String, bool, bool)| {
        let (code, recovery, remember) = (code.clone(), *recovery, remember.then_some(true));
        async move {
            if recovery {
                parse_second_factor(None, Some(&code))?;
                authenticate_two_factor(None, Some(code), remember).await
            } else {
                parse_second_factor(Some(&code), None)?;
                authenticate_two_factor(Some(code), None, remember).await
            }
        }
    });
    // "Use a different account" (false) or "Log in again" after the code
    // step ran out (true).
    let restart = Action::new(|timed_out: &bool| {
        let timed_out = *timed_out;
        async move { log_out().await.map(|_| timed_out) }
    });

    // A timed-out code step sent back here by the server (no JavaScript).
    let timed_out =
        outcome.as_ref().and_then(|o| o.error_for(Intent::Password)).filter(|e| e.error == ErrorKind::Unauthenticated);
    if let Some(e) = timed_out {
        notice.set(Some(e.message));
    }
    // The countdown, in the browser: from the hydrated first page, or from
    // a password step done in place (then `round` moves on).
    Effect::new(move |_| {
        round.track();
        if step.get_untracked() != Step::Code {
            return;
        }
        let left = match (pending, round.get_untracked()) {
            (Some(p), 0) => p.seconds_left,
            _ => STEP_SECONDS,
        };
        start_countdown(left, countdown, round);
    });
    let password_error = Signal::derive({
        let posted = form_error(password_action, &outcome, Intent::Password);
        move || posted.get().filter(|e| e.error != ErrorKind::Unauthenticated)
    });
    let code_intent = Signal::derive(move || if use_recovery.get() { Intent::Recovery } else { Intent::Code });
    let code_error = Signal::derive({
        let code_posted = form_error(code_action, &outcome, Intent::Code);
        let recovery_posted = form_error(code_action, &outcome, Intent::Recovery);
        move || {
            let e = if use_recovery.get() { recovery_posted.get() } else { code_posted.get() };
            e.filter(|e| e.error != ErrorKind::Unauthenticated)
        }
    });

    let go_home = navigate.clone();
    Effect::new(move |_| {
        if let Some(Ok(res)) = password_action.value().get() {
            password.set(String::new());
            if res.two_factor_required {
                let app = res.user.is_two_factor_authentication_enabled;
                factors.set((app, res.passkey));
                account.set(Some(res.user.email.clone()));
                ends_at.set(Some(browser_now() + STEP_SECONDS));
                step.set(Step::Code);
                round.update(|r| *r += 1);
                announce.set(format!(
                    "Password accepted. Logging in as {}. {}",
                    res.user.email,
                    if app { "Enter the code from your app." } else { "Use your passkey to finish." }
                ));
                // The first field of the new step, or its heading when a
                // passkey is all it offers.
                focus_later(if app { "#code, #recovery" } else { "#code-heading" });
            } else {
                finished(&go_home);
            }
        }
    });
    let timed_out_words = "Your log-in timed out. Enter your password again.";
    Effect::new(move |_| match code_action.value().get() {
        Some(Ok(_)) => finished(&navigate),
        // The password step expired (5 minutes) or was never done here.
        Some(Err(e)) if e.error == ErrorKind::Unauthenticated => {
            code.set(String::new());
            notice.set(Some(timed_out_words.into()));
            announce.set(timed_out_words.into());
            step.set(Step::Password);
            round.update(|r| *r += 1);
            focus_later("#email");
        }
        // A wrong code: the field is emptied for the next one and has the
        // focus back; the error note (an alert) is read out. A recovery
        // code is kept, to mend a typo.
        Some(Err(_)) => {
            if use_recovery.get_untracked() {
                focus_later("#recovery");
            } else {
                code.set(String::new());
                focus_later("#code");
            }
        }
        None => {}
    });
    Effect::new(move |_| {
        if let Some(result) = restart.value().get() {
            let timed_out = result.unwrap_or(false);
            code.set(String::new());
            code_action.value().set(None);
            round.update(|r| *r += 1);
            if timed_out {
                // The same person again: their email is kept.
                email.set(shown_account.get_untracked().unwrap_or_default());
                notice.set(Some(timed_out_words.into()));
                announce.set(timed_out_words.into());
            } else {
                email.set(String::new());
                notice.set(None);
                announce.set("You left that log-in. Enter the email and password of the account to use.".into());
            }
            account.set(None);
            step.set(Step::Password);
            focus_later(if timed_out { "#password" } else { "#email" });
        }
    });
    // Six digits submit by themselves once hydrated, typed or pasted
    // (`123 456` too); a recovery code waits for its button. Not on the
    // first run: a value the browser restored is not a new code. After a
    // short pause, so an Enter or a click that follows the last digit
    // submits once, and the page is not taken away from under it.
    Effect::new(move |previous: Option<String>| {
        let typed = code.get();
        if previous.is_some() && six_digits(&typed) {
            let runs = code_action.version().get_untracked();
            let still_wanted = move || {
                step.try_get_untracked() == Some(Step::Code)
                    && use_recovery.try_get_untracked() == Some(false)
                    && code.try_get_untracked().as_deref() == Some(typed.as_str())
                    && code_action.version().try_get_untracked() == Some(runs)
                    && code_action.pending().try_get_untracked() == Some(false)
            };
            let submit = move || {
                if still_wanted() {
                    code_action.dispatch((code.get_untracked(), false, remember.get_untracked()));
                }
            };
            #[cfg(feature = "hydrate")]
            leptos::prelude::set_timeout(submit, std::time::Duration::from_millis(AUTO_SUBMIT_MS));
            #[cfg(not(feature = "hydrate"))]
            let _ = submit;
        }
        code.get_untracked()
    });

    let submit_password = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if password_action.pending().get_untracked() {
            return;
        }
        notice.set(None);
        password_action.dispatch((email.get_untracked(), password.get_untracked()));
    };
    let submit_code = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if code_action.pending().get_untracked() {
            return;
        }
        code_action.dispatch((code.get_untracked(), use_recovery.get_untracked(), remember.get_untracked()));
    };
    let submit_restart = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        restart.dispatch(false);
    };
    let log_in_again = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        restart.dispatch(true);
    };
    // Switching between the app's code and a recovery code empties the field.
    Effect::new(move |previous: Option<bool>| {
        let now = use_recovery.get();
        if previous.is_some_and(|p| p != now) {
            code.set(String::new());
            code_action.value().set(None);
            focus_later(if now { "#recovery" } else { "#code" });
        }
        now
    });

    let title = move || match step.get() {
        Step::Password => "Log in",
        Step::Code if use_recovery.get() => "Use a recovery code",
        Step::Code if !has_app.get() => "Use your passkey",
        Step::Code => "Enter your code",
    };

    view! {
        <Title text=title/>
        <section class="card narrow">
            <ol class="steps" aria-label="Log-in steps">
                <li class:current=move || step.get() == Step::Password
                    aria-current=move || (step.get() == Step::Password).then_some("step")>"Password"</li>
                <li class:current=move || step.get() == Step::Code
                    aria-current=move || (step.get() == Step::Code).then_some("step")>"Code"</li>
            </ol>
            <p class="visually-hidden" role="status" data-testid="login-status">{move || announce.get()}</p>
            <Show when=move || step.get() == Step::Password fallback=move || view! {
                <h1 id="code-heading" tabindex="-1">{title}</h1>
                <div class="account-line">
                    <Transition fallback=|| ()>
                        {move || shown_account.get().map(|who| view! {
                            <p>"Logging in as " <strong data-testid="login-account">{who}</strong></p>
                        })}
                    </Transition>
                    <form class="switch inline" method="post" action=form_action on:submit=submit_restart>
                        <IntentField intent=Intent::Restart/>
                        <button type="submit" class="link">"Use a different account"</button>
                    </form>
                </div>
                {move || ends_at.get().map(|at| view! {
                    <p class="hint step-ends" data-testid="step-ends">
                        "This step ends at " {clock_time(at)} " UTC, 5 minutes after your password."
                    </p>
                })}
                // Filled in as the end nears (hydrated only): a region that
                // is on the page before its words, so they are read out.
                <p role="status" data-testid="step-timer"
                    class=move || match countdown.get() {
                        Countdown::Running => "step-timer",
                        Countdown::EndingSoon => "step-timer alert alert-info",
                        Countdown::Ended => "step-timer alert alert-error",
                    }>
                    {move || match countdown.get() {
                        Countdown::Running => "",
                        Countdown::EndingSoon => "This step ends in 1 minute.",
                        Countdown::Ended => "This step has ended: log in again to get a new one.",
                    }}
                </p>
                <Show when=move || countdown.get() == Countdown::Ended>
                    <form class="switch" method="post" action=form_action on:submit=log_in_again>
                        <IntentField intent=Intent::Restart/>
                        <SubmitButton pending=restart.pending() label="Log in again" busy_label="Starting again…"/>
                    </form>
                </Show>
                <Show when=move || has_passkey.get() && !use_recovery.get()>
                    <PasskeyStep next=after_passkey has_app/>
                </Show>
                // No code form to hold the box (a passkey is the only second
                // factor): it stands under the passkey's button, where
                // passkeys.js reads it as it reads the form's.
                <Show when=move || (remember_days > 0) && has_passkey.get() && !has_app.get() && !use_recovery.get()>
                    {remember_box(remember, remember_days)}
                </Show>
                <Show when=move || has_app.get() || use_recovery.get()>
                <p class="muted">
                    {move || if use_recovery.get() {
                        "Type one of the recovery codes you saved when you turned on two-factor authentication. Each works once."
                    } else {
                        "Open your authenticator app and type the 6-digit code for this account."
                    }}
                </p>
                <form method="post" action=form_action on:submit=submit_code novalidate>
                    <IntentField intent=code_intent/>
                    <Show when=move || use_recovery.get() fallback=move || view! {
                        <TextField label="Authentication code" id="code" name="code" input=InputKind::code() value=code
                            error=field_message(code_error, "twoFactorAuthenticationCode") autofocus=true/>
                    }>
                        <TextField label="Recovery code" id="recovery" name="recovery" input=InputKind::recovery() value=code
                            error=field_message(code_error, "recoveryCode") autofocus=true/>
                    </Show>
                    {(remember_days > 0).then(|| remember_box(remember, remember_days))}
                    <ErrorNote error=code_error busy=code_action.pending()/>
                    <SubmitButton pending=code_action.pending() label="Verify" busy_label="Verifying…"/>
                </form>
                </Show>
                <p class="switch">
                    <A href=move || if use_recovery.get() { "/login".to_owned() } else { "/login?with=recovery".to_owned() }>
                        {move || match (use_recovery.get(), has_app.get()) {
                            (true, true) => "Use the code from your app instead",
                            (true, false) => "Use your passkey instead",
                            (false, true) => "Lost your phone? Use a recovery code",
                            (false, false) => "Lost your passkey? Use a recovery code",
                        }}
                    </A>
                </p>
            }>
                <h1 tabindex="-1">"Log in"</h1>
                // Read out through the status region above when it comes in
                // place; drawn by the server, it is part of the page.
                {move || notice.get().map(|n| view! { <p class="alert alert-info" data-testid="login-notice">{n}</p> })}
                <form method="post" action=form_action on:submit=submit_password novalidate>
                    <IntentField intent=Intent::Password/>
                    <TextField label="Email" id="email" name="email" input=InputKind::email("username webauthn") value=email
                        error=field_message(password_error, "email")/>
                    <TextField label="Password" id="password" name="password" input=InputKind::password("current-password")
                        value=password/>
                    <ErrorNote error=password_error busy=password_action.pending()/>
                    <SubmitButton pending=password_action.pending() label="Continue" busy_label="Checking…"/>
                </form>
                <Show when=move || password_error.get().is_some_and(|e| e.fields.get("account").is_some_and(|a| a == "unverified"))>
                    <A href="/verify-email" attr:class="btn">"Send the confirmation email again"</A>
                </Show>
                <p class="switch"><A href="/forgot-password">"Forgot your password?"</A></p>
                <PasskeySignIn next=after_passkey/>
                <Show when=move || signup_open>
                    <p class="switch">"New here? " <A href=move || with_return_to("/signup", return_to.get().as_deref())>"Create an account"</A></p>
                </Show>
            </Show>
        </section>
    }
}

/// "Don't ask again on this browser for N days": a box of the code form,
/// or under the passkey's button (`#remember`, read by passkeys.js).
fn remember_box(remember: RwSignal<bool>, days: i64) -> impl IntoView {
    view! {
        <label for="remember" class="check">
            <input id="remember" name="remember" type="checkbox" prop:checked=move || remember.get()
                checked=remember.get_untracked()
                on:change=move |ev| remember.set(event_target_checked(&ev))/>
            {format!("Don't ask again on this browser for {days} days")}
        </label>
    }
}
