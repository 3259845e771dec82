//! Sent here by the gate for an app that wants a second factor shown now
//! (an access rule with `fresh`, or `remembered = false` after a
//! remembered browser's log-in), or logged in from a remembered browser
//! (changes to the protection want a second factor): a code from the app,
//! a recovery code or a passkey, written into this log-in; then on to the
//! app. A real POST
//! to /security, done in place once hydrated.

use super::*;
use crate::api::step_up;

#[component]
pub(super) fn StepUp(passkeys: Signal<bool>, for_gate: bool, on_done: Callback<()>) -> impl IntoView {
    let outcome = posted();
    let code = RwSignal::new(String::new());
    let send = Action::new(|typed: &String| {
        let typed = typed.clone();
        async move {
            let (code, recovery) = code_or_recovery(&typed)?;
            with_refresh(|| step_up(code.clone(), recovery.clone(), None)).await
        }
    });
    let error = form_error(send, &outcome, Intent::StepUp);
    Effect::new(move |_| {
        if let Some(Ok(_)) = send.value().get() {
            on_done.run(());
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !send.pending().get_untracked() {
            send.dispatch(code.get_untracked());
        }
    };
    let return_to = return_to();
    let next = move || with_return_to("/login", return_to.get().as_deref());
    // Drawn again after a refused code (no JavaScript), the page must still
    // know the gate sent it.
    let action = move || {
        let rd = return_to.get().map(|rd| format!("&rd={}", crate::ui::encode_query_value(&rd)));
        format!("/security?need=two-factor{}", rd.unwrap_or_default())
    };
    view! {
        <div class="panel" id="step-up" data-testid="step-up">
            <h2 id="step-up-heading" tabindex="-1">"Show your second factor"</h2>
            <p class="muted">{if for_gate {
                "The app you were opening wants your second factor now, not a remembered browser or an earlier log-in. You stay logged in; this log-in counts as just confirmed."
            } else {
                "This browser is remembered, so your log-in did not ask for your second factor. To change how your account is protected, show it now."
            }}</p>
            <form method="post" action=action novalidate on:submit=submit>
                <IntentField intent=Intent::StepUp/>
                <TextField label="6-digit code or recovery code" id="step-up-code" name="code"
                    input=InputKind { maxlength: Some(20), placeholder: Some("123 456"), ..InputKind::code() }
                    value=code error=field_message(error, "code") autofocus=true/>
                <ErrorNote error=error busy=send.pending()/>
                <SubmitButton pending=send.pending() label="Continue" busy_label="Checking…"/>
            </form>
            <Show when=move || passkeys.get()>
                <div data-passkey-panel data-testid="step-up-passkey">
                    <p class="passkey-or">"or"</p>
                    <button type="button" class="btn" data-passkey="step-up" data-next=next>"Use a passkey"</button>
                    <p data-passkey-status role="status" aria-live="polite"></p>
                </div>
            </Show>
        </div>
    }
}
