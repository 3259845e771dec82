//! Pages and components. Every action shows progress while it runs and a
//! readable error when it fails; protected pages send a visitor without a
//! full session to the log-in page.

mod home;
mod login;
pub mod persist;
pub mod qr;
mod security;
pub mod session;
mod signup;

pub use security::format_utc;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::error::AppError;

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
    view! {
        <Stylesheet id="leptos" href="/pkg/twofactor.css"/>
        <Title text="Two-Factor Login"/>
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"2F"</span>
                    "Two-Factor Login"
                </A>
            </header>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/signup") view=signup::SignUpPage/>
                    <Route path=path!("/login") view=login::LogInPage/>
                    <Route path=path!("/security") view=security::SecurityPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
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
        <section class="card narrow">
            <h1>"Page not found"</h1>
            <p class="muted">"There is nothing at this address."</p>
            <A href="/">"Go to the home page"</A>
        </section>
    }
}

/// A dismissable error message for an action's failure.
#[component]
pub fn ErrorNote(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <p class="alert alert-error" role="alert">
                {move || error.get().map(|e| e.message).unwrap_or_default()}
            </p>
        </Show>
    }
}

/// The error of the latest run of an action, if it failed.
pub fn action_error<I, T>(action: Action<I, Result<T, AppError>>) -> Signal<Option<AppError>>
where
    I: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(|r| r.err()))
}

/// The message for one form field from a 400 answer.
pub fn field_error<I, T>(action: Action<I, Result<T, AppError>>, name: &'static str) -> Signal<Option<String>>
where
    I: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(|r| r.err()).and_then(|e| e.fields.get(name).cloned()))
}

/// A submit button that shows progress and is disabled while busy.
#[component]
pub fn SubmitButton(
    #[prop(into)] pending: Signal<bool>,
    label: &'static str,
    busy_label: &'static str,
) -> impl IntoView {
    view! {
        <button type="submit" class="btn btn-primary" disabled=move || pending.get() aria-busy=move || pending.get().to_string()>
            <Show when=move || pending.get() fallback=move || label>
                <span class="spinner" aria-hidden="true"></span>
                {busy_label}
            </Show>
        </button>
    }
}
