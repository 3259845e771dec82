//! The log-in wizard. Step 1: email and password. Step 2, only when 2FA is
//! on: the six-digit code. The email and the step survive a reload (in
//! sessionStorage); the password and the code never leave the form.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{authenticate_two_factor, log_in, parse_email, parse_second_factor};
use crate::error::ErrorKind;

use super::persist::{self, LOGIN_EMAIL, LOGIN_STEP};
use super::signup::Field;
use super::{ErrorNote, SubmitButton, action_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Password,
    Code,
}

#[component]
pub fn LogInPage() -> impl IntoView {
    let step = RwSignal::new(Step::Password);
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let notice = RwSignal::new(None::<String>);
    let navigate = use_navigate();

    // Restore the wizard after hydration (storage exists only in the browser,
    // and reading it during render would differ from the server's HTML).
    Effect::new(move |_| {
        if let Some(saved) = persist::load(LOGIN_EMAIL) {
            email.set(saved);
        }
        if persist::load(LOGIN_STEP).as_deref() == Some("code") {
            step.set(Step::Code);
        }
    });

    let password_action = Action::new(|(email, password): &(String, String)| {
        let (email, password) = (email.clone(), password.clone());
        async move {
            parse_email(&email)?;
            log_in(email, password).await
        }
    });
    let use_recovery = RwSignal::new(false);
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

    let go_home = navigate.clone();
    Effect::new(move |_| {
        if let Some(Ok(res)) = password_action.value().get() {
            password.set(String::new());
            if res.two_factor_required {
                persist::save(LOGIN_STEP, "code");
                step.set(Step::Code);
            } else {
                persist::forget(LOGIN_STEP);
                go_home("/", Default::default());
            }
        }
    });
    Effect::new(move |_| match code_action.value().get() {
        Some(Ok(_)) => {
            persist::forget(LOGIN_STEP);
            navigate("/", Default::default());
        }
        // The password step expired (5 minutes) or was never done here.
        Some(Err(e)) if e.error == ErrorKind::Unauthenticated => {
            persist::forget(LOGIN_STEP);
            code.set(String::new());
            notice.set(Some("Your log-in timed out. Enter your password again.".into()));
            step.set(Step::Password);
        }
        _ => {}
    });

    let submit_password = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        notice.set(None);
        persist::save(LOGIN_EMAIL, &email.get_untracked());
        password_action.dispatch((email.get_untracked(), password.get_untracked()));
    };
    let submit_code = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        code_action.dispatch((code.get_untracked(), use_recovery.get_untracked()));
    };
    let back = move |_| {
        persist::forget(LOGIN_STEP);
        code.set(String::new());
        use_recovery.set(false);
        step.set(Step::Password);
    };
    let toggle_recovery = move |_| {
        code.set(String::new());
        code_action.value().set(None);
        use_recovery.update(|r| *r = !*r);
    };
    let code_error =
        Signal::derive(move || action_error(code_action).get().filter(|e| e.error != ErrorKind::Unauthenticated));

    view! {
        <section class="card narrow">
            <ol class="steps" aria-label="Log-in steps">
                <li class:current=move || step.get() == Step::Password>"Password"</li>
                <li class:current=move || step.get() == Step::Code>"Code"</li>
            </ol>
            <Show when=move || step.get() == Step::Password fallback=move || view! {
                <Show when=move || use_recovery.get() fallback=|| view! {
                    <h1>"Enter your code"</h1>
                    <p class="muted">"Open your authenticator app and type the 6-digit code for this account."</p>
                }>
                    <h1>"Use a recovery code"</h1>
                    <p class="muted">"Type one of the recovery codes you saved when you turned on two-factor authentication. Each works once."</p>
                </Show>
                <form on:submit=submit_code novalidate>
                    <Show when=move || use_recovery.get() fallback=move || view! {
                        <div class="field">
                            <label for="code">"Authentication code"</label>
                            <input id="code" name="code" class="code-input" type="text" inputmode="numeric"
                                autocomplete="one-time-code" maxlength="9" placeholder="123 456" required autofocus
                                bind:value=code/>
                        </div>
                    }>
                        <div class="field">
                            <label for="recovery">"Recovery code"</label>
                            <input id="recovery" name="recovery" class="code-input recovery-input" type="text"
                                autocomplete="off" autocapitalize="none" spellcheck="false" maxlength="20"
                                placeholder="abcd-efgh-jkmn" required autofocus bind:value=code/>
                        </div>
                    </Show>
                    <ErrorNote error=code_error/>
                    <SubmitButton pending=code_action.pending() label="Verify" busy_label="Verifying…"/>
                </form>
                <p class="switch">
                    <button type="button" class="link" on:click=toggle_recovery>
                        {move || if use_recovery.get() { "Use the code from your app instead" } else { "Lost your phone? Use a recovery code" }}
                    </button>
                </p>
                <p class="switch">
                    <button type="button" class="link" on:click=back>"Use a different account"</button>
                </p>
            }>
                <h1>"Log in"</h1>
                <Show when=move || notice.get().is_some()>
                    <p class="alert alert-info" role="status">{move || notice.get().unwrap_or_default()}</p>
                </Show>
                <form on:submit=submit_password novalidate>
                    <Field label="Email" id="email" error=Signal::derive(|| None::<String>)>
                        <input id="email" name="email" type="email" autocomplete="username" required bind:value=email/>
                    </Field>
                    <Field label="Password" id="password" error=Signal::derive(|| None::<String>)>
                        <input id="password" name="password" type="password" autocomplete="current-password"
                            required bind:value=password/>
                    </Field>
                    <ErrorNote error=action_error(password_action)/>
                    <SubmitButton pending=password_action.pending() label="Continue" busy_label="Checking…"/>
                </form>
                <p class="switch">"New here? " <A href="/signup">"Create an account"</A></p>
            </Show>
        </section>
    }
}
