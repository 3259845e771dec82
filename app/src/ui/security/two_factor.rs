//! The card shown while two-factor is on: new recovery codes, and turning
//! it off.

use super::*;

#[component]
pub(super) fn TwoFactorOn(
    changed: RwSignal<u32>,
    on_codes: Callback<Vec<String>>,
    on_off: Callback<()>,
) -> impl IntoView {
    let outcome = posted();
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
    view! {
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
        <details class="panel" open=open>
            <summary>"Make new recovery codes"</summary>
            <p class="muted">"The old codes stop working. Enter a current code from your app to confirm."</p>
            <form class="inline-form" method="post" action=security_action() novalidate on:submit=submit>
                <IntentField intent=Intent::Regenerate/>
                <TextField label="6-digit code" id="regen-code" name="code" input=InputKind::code() value=regen_code
                    error=field_message(regen_error, "twoFactorAuthenticationCode")/>
                <SubmitButton pending=regen.pending() label="Make new codes" busy_label="Checking…"/>
            </form>
            <ErrorNote error=regen_error busy=regen.pending()/>
        </details>
        <TurnOff on_off/>
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
            let (c, r) = match parse_any_second_factor(&code)? {
                SecondFactor::Totp(_) => (Some(code), None),
                SecondFactor::Recovery(_) => (None, Some(code)),
            };
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
        <details class="panel" data-testid="turn-off" open=open>
            <summary>"Turn off two-factor authentication"</summary>
            <p class="muted">"Your account will be protected by your password alone. Confirm with your password and a code from your app or a recovery code."</p>
            <form method="post" action=security_action() novalidate on:submit=submit>
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
