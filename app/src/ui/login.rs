//! The log-in wizard. Step 1: email and password. Step 2, only when 2FA is
//! on: the six-digit code, or a recovery code (`?with=recovery`). The step
//! is server state: after a correct password the password-stage cookie
//! says "code step", so a reload, a browser without JavaScript and a
//! hydrated page all draw the same step. Both forms are real POSTs to
//! /login, enhanced in place once the WebAssembly has loaded.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{authenticate_two_factor, log_in, log_out, parse_email, parse_second_factor};
use crate::error::ErrorKind;

use super::outcome::{Intent, page_outcome};
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

/// The second factors of a password step the server holds, awaiting its
/// second factor: (an authenticator app, a passkey).
fn code_step_factors() -> Option<(bool, bool)> {
    #[cfg(feature = "ssr")]
    {
        crate::server::password_stage_factors()
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

#[component]
pub fn LogInPage() -> impl IntoView {
    let outcome = page_outcome();
    let pending_factors = SharedValue::new(code_step_factors).into_inner();
    let step = RwSignal::new(if pending_factors.is_some() { Step::Code } else { Step::Password });
    // What the code step offers: the app's code, a passkey, or both.
    let factors = RwSignal::new(pending_factors.unwrap_or((true, false)));
    let has_app = Signal::derive(move || factors.get().0);
    let has_passkey = Signal::derive(move || factors.get().1);
    let email = RwSignal::new(outcome.as_ref().map(|o| o.field("email")).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let notice = RwSignal::new(None::<String>);
    let query = use_query_map();
    let use_recovery = Memo::new(move |_| query.read().get("with").as_deref() == Some("recovery"));
    let navigate = use_navigate();
    // Sent here by the gate in front of another app: the forms keep `rd`,
    // and once logged in the server (which checks it) sends the browser on.
    let return_to = return_to();
    let signup_open = super::signup::signup_open();
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
    let code_action = Action::new(|(code, recovery): &(String, bool)| {
        let (code, recovery) = (code.clone(), *recovery);
        async move {
            if recovery {
                parse_second_factor(None, Some(&code))?;
                authenticate_two_factor(None, Some(code)).await
            } else {
                parse_second_factor(Some(&code), None)?;
                authenticate_two_factor(Some(code), None).await
            }
        }
    });
    let restart = Action::new(|_: &()| log_out());

    // A timed-out code step sent back here by the server (no JavaScript).
    let timed_out =
        outcome.as_ref().and_then(|o| o.error_for(Intent::Password)).filter(|e| e.error == ErrorKind::Unauthenticated);
    if let Some(e) = timed_out {
        notice.set(Some(e.message));
    }
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
                factors.set((res.user.is_two_factor_authentication_enabled, res.passkey));
                step.set(Step::Code);
                focus_later("#code, #recovery");
            } else {
                finished(&go_home);
            }
        }
    });
    Effect::new(move |_| match code_action.value().get() {
        Some(Ok(_)) => finished(&navigate),
        // The password step expired (5 minutes) or was never done here.
        Some(Err(e)) if e.error == ErrorKind::Unauthenticated => {
            code.set(String::new());
            notice.set(Some("Your log-in timed out. Enter your password again.".into()));
            step.set(Step::Password);
            focus_later("#email");
        }
        _ => {}
    });
    Effect::new(move |_| {
        if restart.value().get().is_some() {
            code.set(String::new());
            step.set(Step::Password);
            focus_later("main h1");
        }
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
        code_action.dispatch((code.get_untracked(), use_recovery.get_untracked()));
    };
    let submit_restart = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        restart.dispatch(());
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
            <Show when=move || step.get() == Step::Password fallback=move || view! {
                <h1 tabindex="-1">{title}</h1>
                <Show when=move || has_passkey.get() && !use_recovery.get()>
                    <PasskeyStep next=after_passkey has_app/>
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
                            error=field_message(code_error, "twoFactorAuthenticationCode")/>
                    }>
                        <TextField label="Recovery code" id="recovery" name="recovery" input=InputKind::recovery() value=code
                            error=field_message(code_error, "recoveryCode")/>
                    </Show>
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
                <form class="switch" method="post" action=form_action on:submit=submit_restart>
                    <IntentField intent=Intent::Restart/>
                    <button type="submit" class="link">"Use a different account"</button>
                </form>
            }>
                <h1 tabindex="-1">"Log in"</h1>
                {move || notice.get().map(|n| view! { <p class="alert alert-info" role="status">{n}</p> })}
                <form method="post" action=form_action on:submit=submit_password novalidate>
                    <IntentField intent=Intent::Password/>
                    <TextField label="Email" id="email" name="email" input=InputKind::email("username") value=email
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
