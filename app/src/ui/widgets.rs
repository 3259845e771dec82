//! The widgets every page shares: text fields with their hint and error
//! tied to them, busy-aware submit buttons, error notes that are announced
//! again on every failure, the hidden intent field of a form, and the copy
//! button. Also the helpers that pick a form's error from its action or
//! from the server's answer to the same form posted without JavaScript.

use leptos::prelude::*;

use super::outcome::{FormOutcome, Intent};
use crate::error::AppError;

/// The error of a form: announced each time it is shown, even when the
/// same message comes back (the node is drawn anew for every run).
#[component]
pub fn ErrorNote(
    #[prop(into)] error: Signal<Option<AppError>>,
    #[prop(into, optional)] busy: Signal<bool>,
) -> impl IntoView {
    // Gone while the form is busy, so the next answer is a new node.
    move || {
        (!busy.get())
            .then(|| error.get())
            .flatten()
            .map(|e| view! { <p class="alert alert-error" role="alert">{summary(&e)}</p> })
    }
}

/// What the form-level note says: the message, or for field errors a
/// pointer to the fields (whose own messages sit under them).
fn summary(e: &AppError) -> String {
    // `account` is not a form field: it names the account's state (locked,
    // unverified) for the page to offer the way out.
    match e.fields.keys().filter(|k| *k != "account").count() {
        0 => e.message.clone(),
        1 => "Please correct the highlighted field.".to_owned(),
        _ => "Please correct the highlighted fields.".to_owned(),
    }
}

/// A form's error: from the latest run of its action once it has run in
/// the browser, else from the server's answer to the same form posted
/// without JavaScript.
pub fn form_error<I, T>(
    action: Action<I, Result<T, AppError>>,
    outcome: &Option<FormOutcome>,
    intent: Intent,
) -> Signal<Option<AppError>>
where
    I: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    let posted = outcome.as_ref().and_then(|o| o.error_for(intent));
    Signal::derive(move || match action.value().get() {
        Some(result) => result.err(),
        None if action.version().get() == 0 => posted.clone(),
        None => None,
    })
}

/// The error of the latest run of an action, if it failed.
pub fn action_error<I, T>(action: Action<I, Result<T, AppError>>) -> Signal<Option<AppError>>
where
    I: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(|r| r.err()))
}

/// The message for one form field, from the form's error.
pub fn field_message(error: Signal<Option<AppError>>, name: &'static str) -> Signal<Option<String>> {
    Signal::derive(move || error.get().and_then(|e| e.fields.get(name).cloned()))
}

/// A submit button that shows progress. While busy it stays focusable and
/// says so (`aria-disabled`), and the form ignores a second submit.
#[component]
pub fn SubmitButton(
    #[prop(into)] pending: Signal<bool>,
    label: &'static str,
    busy_label: &'static str,
    #[prop(default = "btn btn-primary")] class: &'static str,
) -> impl IntoView {
    view! {
        <button type="submit" class=class aria-disabled=move || pending.get().then_some("true")>
            <Show when=move || pending.get() fallback=move || label>
                <span class="spinner" aria-hidden="true"></span>
                {busy_label}
            </Show>
        </button>
    }
}

/// A hidden field naming which form of the page was posted.
#[component]
pub fn IntentField(#[prop(into)] intent: Signal<Intent>) -> impl IntoView {
    view! { <input type="hidden" name="intent" value=move || intent.get().as_str()/> }
}

/// How an input looks and what the browser may help with.
#[derive(Clone, Copy, Default)]
pub struct InputKind {
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub inputmode: Option<&'static str>,
    pub class: Option<&'static str>,
    pub maxlength: Option<u32>,
    pub minlength: Option<u32>,
    pub placeholder: Option<&'static str>,
}

impl InputKind {
    pub const fn text(autocomplete: &'static str) -> Self {
        Self {
            kind: "text",
            autocomplete,
            inputmode: None,
            class: None,
            maxlength: None,
            minlength: None,
            placeholder: None,
        }
    }
    pub const fn email(autocomplete: &'static str) -> Self {
        Self { kind: "email", ..Self::text(autocomplete) }
    }
    pub const fn password(autocomplete: &'static str) -> Self {
        Self { kind: "password", ..Self::text(autocomplete) }
    }
    pub const fn new_password() -> Self {
        Self { minlength: Some(12), maxlength: Some(128), ..Self::password("new-password") }
    }
    /// A 6-digit code: numeric keyboard, the phone may fill it in, and
    /// `123 456` or `123-456` is accepted.
    pub const fn code() -> Self {
        Self {
            inputmode: Some("numeric"),
            class: Some("code-input"),
            maxlength: Some(9),
            placeholder: Some("123 456"),
            ..Self::text("one-time-code")
        }
    }
    pub const fn recovery() -> Self {
        Self {
            class: Some("code-input recovery-input"),
            maxlength: Some(20),
            placeholder: Some("abcd-efgh-jkmn"),
            ..Self::text("off")
        }
    }
}

/// A labelled input with its hint and error tied to it for screen readers
/// (`aria-describedby`, `aria-invalid`).
#[component]
pub fn TextField(
    label: &'static str,
    id: &'static str,
    name: &'static str,
    input: InputKind,
    value: RwSignal<String>,
    #[prop(into, optional)] error: Signal<Option<String>>,
    #[prop(optional)] hint: Option<&'static str>,
    /// The field may be left empty.
    #[prop(optional)]
    optional: bool,
    /// Focused when the page loads (the one field of a step, drawn again
    /// with its error after a post without JavaScript).
    #[prop(optional)]
    autofocus: bool,
    /// Filled in and fixed (an invitation's address).
    #[prop(optional)]
    readonly: bool,
) -> impl IntoView {
    let error_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = {
        let (error_id, hint_id) = (error_id.clone(), hint_id.clone());
        move || {
            let ids: Vec<&str> = [hint.map(|_| hint_id.as_str()), error.get().map(|_| error_id.as_str())]
                .into_iter()
                .flatten()
                .collect();
            (!ids.is_empty()).then(|| ids.join(" "))
        }
    };
    // The server's HTML carries the kept value. What a person typed before
    // the WebAssembly arrived is adopted by the signal when the page
    // hydrates, never overwritten; after that, a change of the signal (a
    // field emptied after success) is written to the input's property,
    // never its attribute, so a typed password is not copied into markup.
    let input_ref = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |hydrated: Option<()>| {
        let wanted = value.get();
        let Some(element) = input_ref.get_untracked() else { return };
        let shown = element.value();
        if hydrated.is_none() {
            if shown != wanted {
                value.set(shown);
            }
        } else if shown != wanted {
            element.set_value(&wanted);
        }
    });
    // A password can be shown once the page is hydrated; without
    // JavaScript it stays a plain password field. Only the input's type
    // changes, never its value, so the form posts what was typed.
    let is_password = input.kind == "password";
    let revealed = RwSignal::new(false);
    let ready = hydrated();
    let kind = move || if is_password && revealed.get() { "text" } else { input.kind };
    view! {
        <div class="field" class:has-error=move || error.get().is_some()>
            <div class="label-row">
                <label for=id>{label}</label>
            </div>
            <input node_ref=input_ref id=id name=name type=kind autocomplete=input.autocomplete inputmode=input.inputmode autofocus=autofocus
                class=input.class maxlength=input.maxlength minlength=input.minlength placeholder=input.placeholder readonly=readonly
                autocapitalize=(input.kind != "email" && input.autocomplete == "off").then_some("none")
                spellcheck=(input.autocomplete == "off" || input.inputmode.is_some()).then_some("false")
                required=!optional aria-invalid=move || error.get().is_some().then_some("true") aria-describedby=described
                value=value.get_untracked() on:input:target=move |ev| value.set(ev.target().value())/>
            // After the field: Tab goes from the email straight to the
            // password, then to this.
            <Show when=move || is_password && ready.get()>
                <button type="button" class="reveal" aria-controls=id aria-pressed=move || revealed.get().to_string()
                    on:click=move |_| revealed.update(|r| *r = !*r)>
                    "Show password"
                </button>
            </Show>
            {hint.map(|h| view! { <small id=hint_id class="hint">{h}</small> })}
            {move || error.get().map(|e| view! { <p id=error_id.clone() class="field-error">{e}</p> })}
        </div>
    }
}

/// Whether the page is hydrated: controls that need JavaScript (copy to
/// clipboard) appear only then. False on the server and in the first
/// client render, so both draw the same markup.
pub fn hydrated() -> ReadSignal<bool> {
    let (ready, set_ready) = signal(false);
    Effect::new(move |_| set_ready.set(true));
    ready
}

/// A button that copies `text` and says whether it worked: the clipboard
/// exists only in secure contexts (https or localhost) and may be refused.
#[component]
pub fn CopyButton(text: String, label: &'static str, #[prop(default = "btn")] class: &'static str) -> impl IntoView {
    let outcome = RwSignal::new(None::<bool>);
    let copy = move |_| {
        let text = text.clone();
        leptos::task::spawn_local(async move { outcome.set(Some(copy_to_clipboard(&text).await)) });
    };
    view! {
        <button type="button" class=class on:click=copy>
            {move || match outcome.get() {
                Some(true) => "Copied",
                Some(false) => "Copy unavailable: select the text",
                None => label,
            }}
        </button>
    }
}

async fn copy_to_clipboard(text: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        let Some(window) = web_sys::window() else { return false };
        // `navigator.clipboard` is undefined outside secure contexts.
        if !window.is_secure_context() {
            return false;
        }
        wasm_bindgen_futures::JsFuture::from(window.navigator().clipboard().write_text(text)).await.is_ok()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        false
    }
}
