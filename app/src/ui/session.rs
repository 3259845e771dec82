//! Keeping the browser's session alive. Access tokens last 15 minutes; when
//! a call answers `unauthenticated`, the page rotates the refresh token
//! and retries. Protected pages load the user through `RequireUser`.

use std::future::Future;

use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

use crate::api::{User, current_user, refresh};
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

/// Loads the current user and renders `children` with it; sends a visitor
/// without a session to /login and shows other failures.
#[component]
pub fn RequireUser(children: fn(User) -> AnyView) -> impl IntoView {
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
    view! {
        <Suspense fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match check.await {
                    SessionCheck::User(u) => children(u),
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
        </Suspense>
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
