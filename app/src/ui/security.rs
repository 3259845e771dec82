//! Security settings and the enrolment wizard: 1. generate a secret,
//! 2. scan the QR code (or type the grouped key), 3. confirm a code. The
//! QR code is drawn here, in the browser, from the otpauth URI.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{GenerateResponse, User, generate_two_factor, parse_code, turn_on_two_factor};
use crate::domain::group_secret;

use super::home::{LogOutButton, RequireUser};
use super::persist::{self, ENROL_STEP};
use super::{ErrorNote, SubmitButton, action_error, qr};

#[component]
pub fn SecurityPage() -> impl IntoView {
    view! { <RequireUser children=|u| view! { <Security user=u/> }.into_any()/> }
}

#[component]
fn Security(user: User) -> impl IntoView {
    let enabled = RwSignal::new(user.is_two_factor_authentication_enabled);
    let just_enabled = RwSignal::new(false);
    view! {
        <section class="card">
            <p class="eyebrow">"Security"</p>
            <h1>"Two-factor authentication"</h1>
            <p class="muted">
                "Signed in as " <strong>{user.email.clone()}</strong> ". "
                <A href="/">"Back to home"</A>
            </p>
            <Show when=move || enabled.get() fallback=move || view! {
                <Enrol on_done=Callback::new(move |_| { enabled.set(true); just_enabled.set(true); })/>
            }>
                <div class="success" data-testid="twofa-on">
                    <span class="badge badge-on">"On"</span>
                    <div>
                        <h2>{move || if just_enabled.get() { "All set: two-factor authentication is on" } else { "Two-factor authentication is on" }}</h2>
                        <p class="muted">"From now on, logging in asks for the code from your authenticator app after your password."</p>
                    </div>
                </div>
            </Show>
            <div class="actions"><LogOutButton/></div>
        </section>
    }
}

#[component]
fn Enrol(on_done: Callback<()>) -> impl IntoView {
    let generate = Action::new(|_: &()| generate_two_factor());
    let code = RwSignal::new(String::new());
    let confirm = Action::new(|code: &String| {
        let code = code.clone();
        async move {
            parse_code(&code)?;
            turn_on_two_factor(code).await
        }
    });
    let restarted = RwSignal::new(false);

    // After a reload in the middle of the wizard the pending secret is gone
    // from the page (it is never stored in the browser), so start over with
    // a fresh one and say so.
    Effect::new(move |_| {
        if persist::load(ENROL_STEP).as_deref() == Some("scan") {
            restarted.set(true);
            generate.dispatch(());
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = generate.value().get() {
            persist::save(ENROL_STEP, "scan");
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = confirm.value().get() {
            persist::forget(ENROL_STEP);
            on_done.run(());
        }
    });

    let pending_secret = move || generate.value().get().and_then(|r| r.ok());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        confirm.dispatch(code.get_untracked());
    };

    view! {
        <Show when=move || pending_secret().is_some() fallback=move || view! {
            <div class="intro">
                <p>"Add a second step to logging in: after your password, you type a 6-digit code from an app such as Google Authenticator, Authy or 1Password."</p>
                <ErrorNote error=action_error(generate)/>
                <button class="btn btn-primary" on:click=move |_| { restarted.set(false); generate.dispatch(()); }
                    disabled=move || generate.pending().get()>
                    {move || if generate.pending().get() { "Preparing…" } else { "Set up two-factor authentication" }}
                </button>
            </div>
        }>
            <ol class="wizard">
                <li>
                    <h2>"1. Scan this QR code"</h2>
                    <Show when=move || restarted.get()>
                        <p class="alert alert-info" role="status">"The page was reloaded, so here is a new key. Scan this one."</p>
                    </Show>
                    <p class="muted">"In your authenticator app, choose to add an account and scan:"</p>
                    {move || pending_secret().map(|s: GenerateResponse| view! { <QrAndKey secret=s/> })}
                </li>
                <li>
                    <h2>"2. Enter the code your app shows"</h2>
                    <form on:submit=submit novalidate class="inline-form">
                        <div class="field">
                            <label for="enrol-code">"6-digit code"</label>
                            <input id="enrol-code" name="code" class="code-input" type="text" inputmode="numeric"
                                autocomplete="one-time-code" maxlength="9" placeholder="123 456" required bind:value=code/>
                        </div>
                        <SubmitButton pending=confirm.pending() label="Turn on" busy_label="Checking…"/>
                    </form>
                    <ErrorNote error=action_error(confirm)/>
                </li>
            </ol>
        </Show>
    }
}

#[component]
fn QrAndKey(secret: GenerateResponse) -> impl IntoView {
    let svg = qr::svg_for(&secret.otpauth_url).unwrap_or_default();
    let grouped = group_secret(&secret.secret);
    let raw = secret.secret.clone();
    let copied = RwSignal::new(false);
    let copy = move |_| {
        copy_to_clipboard(&raw);
        copied.set(true);
    };
    view! {
        <div class="enrol-grid">
            <div class="qr" role="img" aria-label="QR code for your authenticator app" inner_html=svg></div>
            <div class="manual">
                <p class="muted">"Can't scan? Enter this key by hand (time-based, 6 digits):"</p>
                <code class="secret" data-testid="manual-key">{grouped}</code>
                <button type="button" class="btn btn-small" on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy key" }}
                </button>
            </div>
        </div>
    }
}

fn copy_to_clipboard(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(text);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
    }
}
