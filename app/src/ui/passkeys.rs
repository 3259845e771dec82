//! The passkey parts of the pages. The WebAuthn calls are made by
//! `frontend/passkeys.js` (a small module of this origin) from the buttons
//! drawn here (`data-passkey=…`); it shows the panels only when the
//! browser can use passkeys, and the fallback notes say what to do
//! otherwise. Renaming and removing are ordinary forms posted to
//! /security, so they work without JavaScript.

use leptos::prelude::*;

use crate::api::{PasskeyView, fetch_passkeys};

use super::outcome::{FormOutcome, Intent};
use super::security::RecoveryCodes;
use super::session::with_refresh;
use super::{InputKind, IntentField, TextField, format_utc};

/// "Sign in with a passkey" under the password form: no password, the
/// passkey and its PIN or biometric instead. `next` is where to go after.
#[component]
pub fn PasskeySignIn(#[prop(into)] next: Signal<String>) -> impl IntoView {
    view! {
        <div class="passkey-option" data-passkey-panel data-testid="passkey-sign-in">
            <p class="passkey-or">"or"</p>
            <button type="button" class="btn" data-passkey="sign-in" data-next=next>"Sign in with a passkey"</button>
            <p data-passkey-status role="status" aria-live="polite"></p>
        </div>
    }
}

/// The passkey as the code step's second factor.
#[component]
pub fn PasskeyStep(#[prop(into)] next: Signal<String>, #[prop(into)] has_app: Signal<bool>) -> impl IntoView {
    view! {
        <div data-passkey-panel data-testid="passkey-step">
            <p class="muted">"Use the passkey or security key you added to this account: your device asks for your fingerprint, face or PIN."</p>
            <button type="button" class="btn btn-primary" data-passkey="second-factor" data-next=next>"Use your passkey"</button>
            <p data-passkey-status role="status" aria-live="polite"></p>
            <Show when=move || has_app.get()>
                <p class="passkey-or">"or type the code from your app"</p>
            </Show>
        </div>
        <p class="alert alert-info passkey-fallback" data-testid="passkey-needs-js">
            {move || if has_app.get() {
                "Passkeys need JavaScript and a browser that supports them, which this page does not have. Type the code from your app instead."
            } else {
                "Passkeys need JavaScript and a browser that supports them, which this page does not have. Use one of your recovery codes instead."
            }}
        </p>
    }
}

fn describe(p: &PasskeyView) -> String {
    let used = p.last_used_at.map(|t| format!("last used {}", format_utc(t))).unwrap_or_else(|| "never used".into());
    let sync = if p.synced {
        "synced to your other devices"
    } else if p.syncable {
        "can sync to your other devices"
    } else {
        "on this device or key only"
    };
    format!("Added {} · {used} · {sync}", format_utc(p.created_at))
}

/// The security page's card: the list, each with rename and remove, and
/// the panel to add one. `action` is where the forms post.
#[component]
pub fn PasskeysCard(
    changed: RwSignal<u32>,
    outcome: Option<FormOutcome>,
    action: Signal<String>,
    /// The account has passkeys and no app: new recovery codes are made
    /// here, with the password as proof.
    codes_here: Signal<bool>,
    /// Logged in within the last 5 minutes: the password field of the add
    /// panel stays hidden (`frontend/passkeys.js` shows it if the server
    /// asks for the password after all).
    #[prop(into)]
    recent: Signal<bool>,
    /// The recovery codes the first passkey came with, until saved.
    codes: RwSignal<Option<Vec<String>>>,
) -> impl IntoView {
    let list = Resource::new(move || changed.get(), |_| with_refresh(fetch_passkeys));
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let codes_error = outcome.as_ref().and_then(|o| o.error_for(Intent::PasskeyCodes));
    let codes_open = codes_error.is_some();
    let outcome = StoredValue::new(outcome);
    view! {
        <section class="card" id="passkeys" data-testid="passkeys" aria-labelledby="passkeys-heading">
            <h2 id="passkeys-heading" tabindex="-1">"Passkeys and security keys"</h2>
            <p class="muted">"A passkey proves it is you with your device's fingerprint, face or PIN, or with a security key you plug in. Use one after your password instead of a code, or to sign in without a password."</p>
            <Suspense fallback=|| view! { <p class="muted">"Loading your passkeys…"</p> }>
                {move || list.get().map(|result| match result {
                    Ok(l) if l.passkeys.is_empty() => view! {
                        <p class="muted" data-testid="no-passkeys">"You have no passkeys yet."</p>
                    }.into_any(),
                    Ok(l) => view! {
                        <ul class="passkey-list">
                            {l.passkeys.into_iter().map(|p| view! {
                                <PasskeyItem passkey=p outcome=outcome.get_value() action/>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => view! { <p class="alert alert-error" role="alert">{e.message}</p> }.into_any(),
                })}
            </Suspense>
            // The flag comes from a resource: read under a Transition, so the
            // server waits for it instead of drawing the page twice.
            <Transition fallback=|| ()>
            <Show when=move || codes_here.get()>
                <details class="panel" id="passkey-new-codes" open=codes_open data-testid="passkey-new-codes">
                    <summary>"Make new recovery codes"</summary>
                    <form method="post" action=move || format!("{}#passkey-new-codes", action.get()) novalidate>
                        <IntentField intent=Intent::PasskeyCodes/>
                        <p class="muted">"The old codes stop working."</p>
                        <div class="field">
                            <label for="codes-password">"Your password"</label>
                            <input id="codes-password" name="password" type="password" autocomplete="current-password"
                                aria-invalid=codes_open.then_some("true")/>
                            <small class="hint">"Needed if you logged in more than 5 minutes ago."</small>
                        </div>
                        {codes_error.clone().map(|e| view! { <p class="alert alert-error" role="alert">{e.message}</p> })}
                        <button type="submit" class="btn">"Make new codes"</button>
                    </form>
                </details>
            </Show>
            </Transition>
            <Show when=move || codes.get().is_some()>
                <div data-testid="passkey-recovery-codes">
                    <RecoveryCodes codes=codes.get().unwrap_or_default() lost="your passkey" on_done=Callback::new(move |_| {
                        codes.set(None);
                        changed.update(|n| *n += 1);
                        super::focus_later("#passkeys-heading");
                    })/>
                </div>
            </Show>
            <div class="passkey-add" data-passkey-panel data-testid="add-passkey">
                <h3>"Add a passkey"</h3>
                <TextField label="Name" id="passkey-name" name="name" input=InputKind::text("off") value=name
                    hint="So you can tell them apart, such as “Laptop” or “Blue key”."/>
                <Transition fallback=|| ()>
                    <div hidden=move || recent.get() data-password-wrap>
                        <TextField label="Your password" id="passkey-password" name="password"
                            input=InputKind::password("current-password") value=password
                            hint="Needed because you logged in more than 5 minutes ago." optional=true/>
                    </div>
                </Transition>
                // One main action per view: the set-up above has it.
                <button type="button" class="btn" data-passkey="register"
                    data-name-field="passkey-name" data-password-field="passkey-password">"Add a passkey"</button>
                <p data-passkey-status role="status" aria-live="polite"></p>
                // Filled by `frontend/passkeys.js` only before the page runs.
                <div class="recovery" id="passkey-codes" data-passkey-codes hidden></div>
            </div>
            <p class="muted passkey-fallback" data-testid="passkeys-need-js">
                "Adding a passkey needs JavaScript and a browser that supports passkeys. You can still rename and remove the ones you have."
            </p>
        </section>
    }
}

#[component]
fn PasskeyItem(passkey: PasskeyView, outcome: Option<FormOutcome>, action: Signal<String>) -> impl IntoView {
    // A failed post without JavaScript names the passkey it was about.
    let mine = outcome.filter(|o| o.field("passkey") == passkey.id);
    let error_for = |intent: Intent| mine.as_ref().and_then(|o| o.error_for(intent));
    let rename_error = error_for(Intent::RenamePasskey);
    let remove_error = error_for(Intent::RemovePasskey);
    let (rename_open, remove_open) = (rename_error.is_some(), remove_error.is_some());
    let rename_id = format!("rename-{}", passkey.id);
    let remove_id = format!("remove-{}", passkey.id);
    let summary = describe(&passkey);
    let anchor = format!("passkey-{}", passkey.id);
    let here = {
        let anchor = anchor.clone();
        move || format!("{}#{anchor}", action.get())
    };
    view! {
        <li data-testid="passkey" id=anchor>
            <strong class="passkey-name">{passkey.name.clone()}</strong>
            <p class="meta">{summary}</p>
            <details class="panel" open=rename_open>
                <summary>"Rename"</summary>
                <form method="post" action=here.clone() novalidate>
                    <IntentField intent=Intent::RenamePasskey/>
                    <input type="hidden" name="passkey" value=passkey.id.clone()/>
                    <div class="field">
                        <label for=rename_id.clone()>"New name"</label>
                        <input id=rename_id name="name" type="text" maxlength="64" autocomplete="off"
                            value=passkey.name.clone() aria-invalid=rename_open.then_some("true")/>
                    </div>
                    {rename_error.map(|e| view! { <p class="alert alert-error" role="alert">{e.message}</p> })}
                    <button type="submit" class="btn">"Save name"</button>
                </form>
            </details>
            <details class="panel" open=remove_open>
                <summary>"Remove"</summary>
                <form method="post" action=here novalidate>
                    <IntentField intent=Intent::RemovePasskey/>
                    <input type="hidden" name="passkey" value=passkey.id.clone()/>
                    <p class="muted">"It will no longer log you in. If it is your only second factor and you have no authenticator app, two-factor authentication turns off."</p>
                    <div class="field">
                        <label for=remove_id.clone()>"Your password"</label>
                        <input id=remove_id name="password" type="password" autocomplete="current-password"
                            aria-invalid=remove_open.then_some("true")/>
                        <small class="hint">"Needed if you logged in more than 5 minutes ago."</small>
                    </div>
                    {remove_error.map(|e| view! { <p class="alert alert-error" role="alert">{e.message}</p> })}
                    <button type="submit" class="btn btn-danger">"Remove passkey"</button>
                </form>
            </details>
        </li>
    }
}
