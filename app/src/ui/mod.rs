//! Pages and components. Every action shows progress while it runs and a
//! readable error when it fails; protected pages send a visitor without a
//! full session to the log-in page.

mod admin;
mod consent;
mod home;
mod login;
mod mailed;
pub mod outcome;
mod passkeys;
pub mod qr;
mod security;
pub mod session;
mod signup;
pub mod widgets;

pub use widgets::*;

pub use crate::time::format_utc;

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// The HTML document around the app, rendered on the server. It also sets
/// the page's Content-Security-Policy: scripts only from this origin or
/// carrying this response's nonce (the hydration loader), and wasm.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_page_csp(&options);
    // Passkeys work only on the portal's own origin (PUBLIC_URL, a domain
    // name): passkeys.js shows its buttons only when the page is there.
    #[cfg(feature = "ssr")]
    let passkey_origin =
        crate::server::app_state().ok().filter(|s| s.webauthn.enabled()).map(|s| s.gate.public_url.clone());
    #[cfg(not(feature = "ssr"))]
    let passkey_origin: Option<String> = None;
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                // No favicon file: an empty one spares every page a 404.
                <link rel="icon" href="data:,"/>
                <AutoReload options=options.clone()/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                // Passkeys: a small module of this origin (frontend/passkeys.js, shipped as /passkeys.js),
                // independent of the WebAssembly.
                {passkey_origin.map(|origin| view! { <meta name="passkey-origin" content=origin/> })}
                <script type="module" src="/passkeys.js"></script>
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
    // A form post that logs someone in ends in a redirect to the app the
    // gate sent them from (docs/PROXIES.md); browsers check `form-action`
    // on every redirect of a form's navigation, so the gated domains are
    // allowed as well as this origin.
    let gated: String = crate::server::app_state()
        .map(|state| {
            let schemes: &[&str] = if state.cookies.secure { &["https"] } else { &["https", "http"] };
            let mut sources = String::new();
            for domain in &state.gate.cookie_domains {
                for scheme in schemes {
                    sources.push_str(&format!(" {scheme}://{domain}:* {scheme}://*.{domain}:*"));
                }
            }
            sources
        })
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{connect}; object-src 'none'; base-uri 'self'; form-action 'self'{gated}; \
         frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The pages few visitors open, and seldom: an app's consent question and
/// the admin page. One lazily loaded chunk for both, behind one route type:
/// each lazy route type adds its own share to what every page loads.
struct OccasionalRoute {
    outcome: Option<outcome::FormOutcome>,
}

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for OccasionalRoute {
    fn data() -> Self {
        Self { outcome: outcome::page_outcome() }
    }

    fn view(this: Self) -> AnyView {
        match leptos_router::hooks::use_location().pathname.get_untracked().as_str() {
            "/admin" => admin::page(this.outcome),
            _ => consent::page(),
        }
    }
}

/// The home page and the log-out question: shown to people logged in,
/// never needed before that, so out of what every page loads.
struct HomeRoute;

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for HomeRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        match leptos_router::hooks::use_location().pathname.get_untracked().as_str() {
            "/logout" => view! { <home::LogOutPage/> }.into_any(),
            _ => view! { <home::HomePage/> }.into_any(),
        }
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
            // The router takes over every same-origin link once hydrated,
            // this one too: it would only rewrite the address, moving
            // neither scroll nor focus. The element's own listener runs
            // before the router's (on the window) and does what the
            // browser does without JavaScript.
            <a class="skip-link" href="#main" on:click=skip_to_main>"Skip to content"</a>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"2F"</span>
                    "Two-Factor Login"
                </A>
            </header>
            // Focusable by script and by the skip link, not by Tab.
            <main class="page" id="main" tabindex="-1">
                <FocusOnNavigation/>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view={leptos_router::Lazy::<HomeRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/signup") view={leptos_router::Lazy::<signup::SignUpRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/login") view={leptos_router::Lazy::<login::LogInRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/logout") view={leptos_router::Lazy::<HomeRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/security") view={leptos_router::Lazy::<security::SecurityRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/forgot-password") view={leptos_router::Lazy::<mailed::MailedRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/reset-password") view={leptos_router::Lazy::<mailed::MailedRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/verify-email") view={leptos_router::Lazy::<mailed::MailedRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/lockdown") view={leptos_router::Lazy::<mailed::MailedRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/consent") view={leptos_router::Lazy::<OccasionalRoute>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/admin") view={leptos_router::Lazy::<OccasionalRoute>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// The skip link, once hydrated: focus (and so the screen reader's and
/// the keyboard's place) moves to the page's main content.
fn skip_to_main(ev: leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    if let Some(main) = find("#main") {
        ev.prevent_default();
        let _ = main.focus();
        main.scroll_into_view();
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
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

/// Like `focus_later`, for a part of the page that may be drawn again (a
/// list that reloads after a change): focuses the element there now, and
/// the one that replaces it if it is replaced. Browser only.
pub fn focus_when_redrawn(selector: &'static str) {
    #[cfg(feature = "hydrate")]
    {
        let now = find(selector);
        if let Some(element) = &now {
            let _ = element.focus();
        }
        focus_when_present(selector, now, 0);
    }
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

/// `path?rd=…` when the page was opened on the way to an app behind the
/// gate (docs/PROXIES.md), so the next page keeps the way back; the server
/// checks `rd` before it sends anyone there.
pub(crate) fn with_return_to(path: &str, rd: Option<&str>) -> String {
    match rd.filter(|rd| !rd.is_empty()) {
        Some(rd) => format!("{path}?rd={}", encode_query_value(rd)),
        None => path.to_owned(),
    }
}

/// The `rd` of the current page's query, if any.
pub(crate) fn return_to() -> Memo<Option<String>> {
    let query = leptos_router::hooks::use_query_map();
    Memo::new(move |_| query.read().get("rd").filter(|rd| !rd.is_empty()))
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A full page load, so the server decides where to go next.
pub(crate) fn go_to_server(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = leptos::prelude::window().location().set_href(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}
