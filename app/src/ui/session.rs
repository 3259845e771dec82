//! Keeping the browser's session alive. Access tokens last 15 minutes; when
//! a call answers `unauthenticated`, the page rotates the refresh token
//! and retries. Protected pages load the user through `RequireUser`, which
//! also tells the server the browser's time zone once hydrated.

use std::future::Future;

use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

use crate::api::{User, current_user, refresh, set_time_zone};
use crate::error::{AppError, ErrorKind};

/// Rotates the refresh token. A 409 means another request of this page
/// renewed the session a moment ago and its answer carries the new cookies:
/// that is a renewal too.
async fn renew() -> Result<(), AppError> {
    match refresh().await {
        Err(e) if e.error == ErrorKind::Conflict => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Runs `call`; if the access token has expired, renews the session and
/// retries. Calls made together (a page loading several things) renew
/// together: the ones that lost the race retry with the cookies the winner
/// brought, a few times while those are still on their way.
pub async fn with_refresh<T, F, Fut>(call: F) -> Result<T, AppError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    let mut result = call().await;
    for _ in 0..3 {
        match &result {
            Err(e) if e.error == ErrorKind::Unauthenticated => renew().await?,
            _ => break,
        }
        result = call().await;
    }
    result
}

/// What a protected page learns about the visitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SessionCheck {
    User(User),
    /// Rendered on the server with an expired access token but a refresh
    /// cookie: the browser restores the session after hydration.
    Restore,
    LoggedOut,
    Failed(AppError),
}

async fn check_session(can_restore: bool) -> SessionCheck {
    match current_user().await {
        Ok(u) => SessionCheck::User(u),
        Err(e) if e.error == ErrorKind::Unauthenticated => {
            if !can_restore {
                return SessionCheck::LoggedOut;
            }
            if cfg!(feature = "ssr") {
                return SessionCheck::Restore;
            }
            match renew().await {
                Ok(()) => match current_user().await {
                    Ok(u) => SessionCheck::User(u),
                    Err(_) => SessionCheck::LoggedOut,
                },
                Err(_) => SessionCheck::LoggedOut,
            }
        }
        Err(e) => SessionCheck::Failed(e),
    }
}

/// Moves on each time the server learns the browser's time zone (parts of
/// the page that show times read them again).
#[derive(Debug, Clone, Copy)]
pub struct TimeZoneLearned(pub RwSignal<u32>);

/// The browser's IANA time zone (`Intl.DateTimeFormat().resolvedOptions()`),
/// if it says one.
#[cfg(feature = "hydrate")]
fn browser_time_zone() -> Option<String> {
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
    let options = format.resolved_options();
    js_sys::Reflect::get(&options, &"timeZone".into()).ok()?.as_string().filter(|z| !z.is_empty())
}

/// Once hydrated, tells the server the browser's time zone if it differs
/// from the one the account has (`known`): times on the pages and in mail
/// are then written in it. Without JavaScript nothing is sent and times
/// stay in UTC, said as such. Draws nothing.
#[component]
fn LearnTimeZone(known: Option<String>) -> impl IntoView {
    let learned = use_context::<TimeZoneLearned>();
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(zone) = browser_time_zone().filter(|z| Some(z) != known.as_ref()) {
            leptos::task::spawn_local(async move {
                let sent = with_refresh(|| set_time_zone(zone.clone())).await;
                if let (Ok(_), Some(learned)) = (sent, learned) {
                    learned.0.update(|n| *n += 1);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&known, learned, set_time_zone);
    });
}

/// Loads the current user and renders `children` with it; sends a visitor
/// without a session to /login and shows other failures.
#[component]
pub fn RequireUser(children: fn(User) -> AnyView) -> impl IntoView {
    provide_context(TimeZoneLearned(RwSignal::new(0)));
    let check = Resource::new(
        || (),
        |_| {
            #[cfg(feature = "ssr")]
            let can_restore = crate::server::has_refresh_cookie();
            #[cfg(not(feature = "ssr"))]
            let can_restore = true;
            check_session(can_restore)
        },
    );
    // A Transition, not a Suspense: a resource the page reloads later (its
    // status after a change) must not take the page away meanwhile, which
    // would also drop the keyboard focus the change just placed.
    view! {
        <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match check.await {
                    SessionCheck::User(u) => {
                        let known = u.time_zone.clone();
                        view! { <LearnTimeZone known/> {children(u)} }.into_any()
                    }
                    SessionCheck::LoggedOut => view! { <Redirect path="/login"/> }.into_any(),
                    SessionCheck::Restore => view! { <Restore check/> }.into_any(),
                    SessionCheck::Failed(e) => view! {
                        <section class="card narrow">
                            <p class="alert alert-error" role="alert">{e.message}</p>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Restore(check: Resource<SessionCheck>) -> impl IntoView {
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match refresh().await {
                Ok(_) => check.refetch(),
                Err(_) => navigate("/login", Default::default()),
            }
        });
    });
    view! { <p class="muted loading">"Restoring your session…"</p> }
}
