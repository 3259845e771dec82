//! The card shown while two-factor is on: new recovery codes, moving the
//! app to a new phone, and turning it off.

use super::*;

#[component]
pub(super) fn TwoFactorOn(
    changed: RwSignal<u32>,
    on_codes: Callback<Vec<String>>,
    on_off: Callback<()>,
) -> impl IntoView {
    let outcome = posted();
    // The new phone's wizard, once proof was given (from a post without
    // JavaScript, the pending key the server drew).
    let moving = RwSignal::new(match outcome.as_ref().and_then(|o| o.shown.clone()) {
        Some(Shown::Enrolment(secret)) => Some(secret),
        _ => None,
    });
    let moved = RwSignal::new(outcome.as_ref().is_some_and(|o| o.shown == Some(Shown::KeyReplaced)));
    let status = Resource::new(move || changed.get(), |_| with_refresh(fetch_two_factor_status));
    let regen_code = RwSignal::new(String::new());
    let regen = Action::new(|code: &String| {
        let code = code.clone();
        async move {
            parse_code(&code)?;
            with_refresh(|| regenerate_recovery_codes(code.clone())).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(res)) = regen.value().get() {
            regen_code.set(String::new());
            on_codes.run(res.recovery_codes);
        }
    });
    let regen_error = form_error(regen, &outcome, Intent::Regenerate);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::Regenerate && o.error.is_some());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !regen.pending().get_untracked() {
            regen.dispatch(regen_code.get_untracked());
        }
    };
    let passkeys = Signal::derive(move || status.get().and_then(Result::ok).map_or(0, |s| s.passkeys));
    view! {
        // Exists before its text: a screen reader announces the change.
        <div role="status" data-testid="moved-status">
            {move || moved.get().then(|| view! {
                <p class="alert alert-ok" id="moved-status" tabindex="-1">
                    "Your new phone is set up: codes from the old one no longer work. Your recovery codes and your log-ins are unchanged."
                </p>
            })}
        </div>
        <div class="success" data-testid="twofa-on">
            <span class="badge badge-on">"On"</span>
            <div>
                <h2>"Two-factor authentication is on"</h2>
                <p class="muted">"Logging in asks for the code from your authenticator app after your password."</p>
                <p class="muted" data-testid="codes-left">
                    <Suspense fallback=|| "Counting recovery codes…">
                        {move || status.get().map(|r| match r {
                            Ok(s) => format!("{} of 10 recovery codes left.", s.recovery_codes_left),
                            Err(e) => e.message,
                        })}
                    </Suspense>
                </p>
            </div>
        </div>
        <Show when=move || moving.get().is_some()>
            <MovingWizard moving on_moved=Callback::new(move |_| {
                moving.set(None);
                moved.set(true);
                changed.update(|n| *n += 1);
                focus_later("#moved-status");
            })/>
        </Show>
        <Show when=move || moving.get().is_none()>
        <details class="panel" id="new-codes" open=open>
            <summary>"Make new recovery codes"</summary>
            <p class="muted">"The old codes stop working. Enter a current code from your app to confirm."</p>
            <form class="inline-form" method="post" action=move || format!("{}#new-codes", security_action()())
                novalidate on:submit=submit>
                <IntentField intent=Intent::Regenerate/>
                <TextField label="6-digit code" id="regen-code" name="code" input=InputKind::code() value=regen_code
                    error=field_message(regen_error, "twoFactorAuthenticationCode")/>
                <SubmitButton pending=regen.pending() label="Make new codes" busy_label="Checking…"/>
            </form>
            <ErrorNote error=regen_error busy=regen.pending()/>
        </details>
        <NewPhone passkeys on_secret=Callback::new(move |secret| {
            // A recovery code given as proof is used up: recount.
            changed.update(|n| *n += 1);
            moved.set(false);
            moving.set(Some(secret));
            focus_later("#scan-heading");
        })/>
        <TurnOff on_off/>
        </Show>
    }
}

/// "Set up on a new phone": proof first (a current code, a recovery code,
/// or a passkey once the page runs), then the same wizard as the first
/// set-up. The old phone keeps working until the new one is confirmed.
#[component]
fn NewPhone(passkeys: Signal<i64>, on_secret: Callback<GenerateResponse>) -> impl IntoView {
    let outcome = posted();
    let code = RwSignal::new(String::new());
    let start = Action::new(|code: &String| {
        let code = code.clone();
        async move {
            let (c, r) = code_or_recovery(&code)?;
            with_refresh(|| generate_two_factor(c.clone(), None, r.clone(), None)).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(secret)) = start.value().get() {
            code.set(String::new());
            on_secret.run(secret);
        }
    });
    // A passkey's answer is checked by `frontend/passkeys.js`, which hands
    // the new key over in the `data-secret` of the panel and says so with
    // a `new-phone-secret` event.
    let ready = hydrated();
    let listener = window_event_listener_untyped("new-phone-secret", move |ev| {
        if let Some(secret) = take_json_attribute::<GenerateResponse>("new-phone-proof", "data-secret") {
            ev.prevent_default();
            on_secret.run(secret);
        }
    });
    // Dropping the handle leaves the listener: remove it with the panel.
    on_cleanup(move || listener.remove());
    let error = form_error(start, &outcome, Intent::Enrol);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::Enrol && o.error.is_some());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !start.pending().get_untracked() {
            start.dispatch(code.get_untracked());
        }
    };
    view! {
        <details class="panel" id="new-phone" data-testid="new-phone" open=open>
            <summary>"Set up on a new phone"</summary>
            <p class="muted">"Changed phones, or lost yours? Prove it is you, then scan a new QR code with the new phone. The old phone's codes keep working until the new one is confirmed; your recovery codes and your log-ins stay as they are."</p>
            <form method="post" action=move || format!("{}#new-phone", security_action()()) novalidate on:submit=submit>
                <IntentField intent=Intent::Enrol/>
                <TextField label="6-digit code or recovery code" id="phone-code" name="code"
                    input=InputKind { maxlength: Some(20), placeholder: Some("123 456"), ..InputKind::code() }
                    value=code error=field_message(error, "code")
                    hint="A code from the old phone, or one of your recovery codes if it is gone (that code is then used up)."/>
                <ErrorNote error=error busy=start.pending()/>
                <SubmitButton pending=start.pending() label="Continue" busy_label="Checking…" class="btn"/>
            </form>
            <Show when=move || ready.get() && passkeys.get().is_positive()>
                <div data-passkey-panel id="new-phone-proof" data-testid="new-phone-passkey">
                    <p class="passkey-or">"or"</p>
                    <button type="button" class="btn" data-passkey="proof">"Use a passkey instead"</button>
                    <p data-passkey-status role="status" aria-live="polite"></p>
                </div>
            </Show>
        </details>
    }
}

/// The wizard for the new phone, and its confirmation.
#[component]
fn MovingWizard(moving: RwSignal<Option<GenerateResponse>>, on_moved: Callback<()>) -> impl IntoView {
    let outcome = posted();
    let code = RwSignal::new(String::new());
    let confirm = Action::new(|code: &String| {
        let code = code.clone();
        async move { with_refresh(|| turn_on_two_factor(code.clone())).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = confirm.value().get() {
            code.set(String::new());
            on_moved.run(());
        }
    });
    let error = form_error(confirm, &outcome, Intent::Confirm);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !confirm.pending().get_untracked() {
            confirm.dispatch(code.get_untracked());
        }
    };
    // Leaving keeps the old phone: the pending key is never used.
    let cancel = move |ev: leptos::ev::MouseEvent| {
        ev.prevent_default();
        moving.set(None);
        focus_later("#new-phone summary");
    };
    view! {
        <div class="panel" data-testid="new-phone-wizard">
            <p class="muted">"Scan this with the new phone. Until you enter its code below, the old phone keeps working."</p>
            <Wizard secret=moving.into() code confirm error submit label="Use the new phone"/>
            <p class="actions">
                <a href=move || security_action()() on:click=cancel>"Cancel and keep the old phone"</a>
            </p>
        </div>
    }
}

/// Reads and removes a JSON attribute that `frontend/passkeys.js` left on an
/// element for the page (it hands results over this way, then sends an
/// event). `None` before hydration, or when there is none.
pub(super) fn take_json_attribute<T: serde::de::DeserializeOwned>(id: &str, name: &str) -> Option<T> {
    #[cfg(feature = "hydrate")]
    {
        let element = web_sys::window()?.document()?.get_element_by_id(id)?;
        let text = element.get_attribute(name)?;
        let _ = element.remove_attribute(name);
        serde_json::from_str(&text).ok()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (id, name);
        None
    }
}

#[component]
pub(super) fn TurnOff(on_off: Callback<()>) -> impl IntoView {
    let outcome = posted();
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let action = Action::new(|(password, code): &(String, String)| {
        let (password, code) = (password.clone(), code.clone());
        async move {
            let (c, r) = code_or_recovery(&code)?;
            with_refresh(|| turn_off_two_factor(password.clone(), c.clone(), r.clone())).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            password.set(String::new());
            code.set(String::new());
            on_off.run(());
        }
    });
    let error = form_error(action, &outcome, Intent::TurnOff);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::TurnOff && o.error.is_some());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !action.pending().get_untracked() {
            action.dispatch((password.get_untracked(), code.get_untracked()));
        }
    };
    view! {
        <details class="panel" id="turn-off" data-testid="turn-off" open=open>
            <summary>"Turn off two-factor authentication"</summary>
            <p class="muted">"Your account will be protected by your password alone. Confirm with your password and a code from your app or a recovery code."</p>
            <form method="post" action=move || format!("{}#turn-off", security_action()()) novalidate on:submit=submit>
                <IntentField intent=Intent::TurnOff/>
                <TextField label="Password" id="off-password" name="password" input=InputKind::password("current-password")
                    value=password error=field_message(error, "password")/>
                <TextField label="6-digit code or recovery code" id="off-code" name="code"
                    input=InputKind { maxlength: Some(20), placeholder: Some("123 456"), ..InputKind::code() }
                    value=code error=field_message(error, "code")/>
                <ErrorNote error=error busy=action.pending()/>
                <SubmitButton pending=action.pending() label="Turn off two-factor authentication" busy_label="Turning off…"
                    class="btn btn-danger"/>
            </form>
        </details>
    }
}
