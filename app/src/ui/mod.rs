//! Pages and components. Every action shows progress while it runs and a
//! readable error when it fails; protected pages send a visitor without a
//! full session to the log-in page.

mod home;
mod login;
pub mod outcome;
pub mod qr;
mod security;
pub mod session;
mod signup;

pub use security::format_utc;

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::error::AppError;
use outcome::{FormOutcome, Intent};

/// The HTML document around the app, rendered on the server. It also sets
/// the page's Content-Security-Policy: scripts only from this origin or
/// carrying this response's nonce (the hydration loader), and wasm.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_page_csp(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                // No favicon file: an empty one spares every page a 404.
                <link rel="icon" href="data:,"/>
                <AutoReload options=options.clone()/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[cfg(feature = "ssr")]
fn set_page_csp(options: &LeptosOptions) {
    use leptos::nonce::use_nonce;
    let Some(res) = use_context::<leptos_axum::ResponseOptions>() else { return };
    let nonce = use_nonce().map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    // `cargo leptos watch` reloads the page over a websocket on its own port.
    let connect = if options.env == leptos::config::Env::DEV {
        format!(" ws://{}:{}", options.site_addr.ip(), options.reload_port)
    } else {
        String::new()
    };
    let policy = format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{connect}; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Every route renders in full before it is sent (`SsrMode::Async`):
    // streamed fragments would need JavaScript to be put in place, and
    // every page must work without it.
    view! {
        <Title formatter=|page: String| if page.is_empty() { "Two-Factor Login".to_owned() } else { format!("{page} · Two-Factor Login") }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"2F"</span>
                    "Two-Factor Login"
                </A>
            </header>
            <main class="page" id="main">
                <FocusOnNavigation/>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/signup") view=signup::SignUpPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=login::LogInPage ssr=SsrMode::Async/>
                    <Route path=path!("/security") view={leptos_router::Lazy::<security::SecurityRoute>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// After a client-side route change, focus moves to the new page's `h1`
/// (as a full page load would start at the top), not to `<body>`.
#[component]
fn FocusOnNavigation() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    Effect::new(move |previous: Option<String>| {
        let path = location.pathname.get();
        match previous {
            None => mark_hydrated(),
            Some(p) if p != path => focus_new_heading(),
            Some(_) => {}
        }
        path
    });
}

/// How long focus waits for a new element to appear (a protected page
/// first loads the user).
#[cfg(feature = "hydrate")]
const FOCUS_WAIT_MS: u32 = 5_000;
#[cfg(feature = "hydrate")]
const FOCUS_POLL_MS: u32 = 20;

#[cfg(feature = "hydrate")]
fn find(selector: &str) -> Option<web_sys::HtmlElement> {
    use wasm_bindgen::JsCast;
    web_sys::window()?.document()?.query_selector(selector).ok()??.dyn_into::<web_sys::HtmlElement>().ok()
}

/// Focuses the first element matching `selector` once it is on the page
/// and is not `stale` (the element of the view being replaced).
#[cfg(feature = "hydrate")]
fn focus_when_present(selector: &'static str, stale: Option<web_sys::HtmlElement>, waited: u32) {
    match find(selector) {
        Some(element) if stale.as_ref() != Some(&element) => {
            let _ = element.focus();
        }
        _ if waited < FOCUS_WAIT_MS => leptos::prelude::set_timeout(
            move || focus_when_present(selector, stale, waited + FOCUS_POLL_MS),
            std::time::Duration::from_millis(u64::from(FOCUS_POLL_MS)),
        ),
        _ => {}
    }
}

/// Moves focus to the `h1` of the page a route change is drawing.
fn focus_new_heading() {
    #[cfg(feature = "hydrate")]
    focus_when_present("main h1", find("main h1"), 0);
}

/// Moves keyboard focus to the first element matching `selector` once the
/// current change has reached the page. Browser only.
pub fn focus_later(selector: &'static str) {
    #[cfg(feature = "hydrate")]
    focus_when_present(selector, None, 0);
    #[cfg(not(feature = "hydrate"))]
    let _ = selector;
}

/// `<html data-hydrated>` once the WebAssembly runs the page (the browser
/// tests wait for it; styles may use it).
fn mark_hydrated() {
    #[cfg(feature = "hydrate")]
    if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = root.set_attribute("data-hydrated", "");
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Page not found"/>
        <section class="card narrow">
            <h1 tabindex="-1">"Page not found"</h1>
            <p class="muted">"There is nothing at this address."</p>
            <A href="/">"Go to the home page"</A>
        </section>
    }
}

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
    match e.fields.len() {
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
    view! {
        <div class="field" class:has-error=move || error.get().is_some()>
            <label for=id>{label}</label>
            <input id=id name=name type=input.kind autocomplete=input.autocomplete inputmode=input.inputmode
                class=input.class maxlength=input.maxlength minlength=input.minlength placeholder=input.placeholder
                autocapitalize=(input.kind != "email" && input.autocomplete == "off").then_some("none")
                spellcheck=(input.autocomplete == "off" || input.inputmode.is_some()).then_some("false")
                required aria-invalid=move || error.get().is_some().then_some("true") aria-describedby=described
                // The server's HTML carries the kept value; after that the
                // property follows the signal (never the attribute, so a
                // typed password is not copied into the markup).
                value=value.get_untracked() prop:value=value
                on:input:target=move |ev| value.set(ev.target().value())/>
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
