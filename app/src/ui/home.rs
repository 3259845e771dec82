//! The protected home page: who is logged in and whether 2FA is on; after
//! a log-in with a recovery code, how many are left and a way to new ones.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{User, fetch_recovery_log_in, log_out};

use super::session::{RequireUser, with_refresh};
use super::{ErrorNote, SubmitButton, action_error};

#[component]
pub fn HomePage() -> impl IntoView {
    view! { <RequireUser children=|u| view! { <Home user=u/> }.into_any()/> }
}

#[component]
fn Home(user: User) -> impl IntoView {
    let on = user.is_two_factor_authentication_enabled;
    // Asked of the log-in itself, so it holds after a post without
    // JavaScript as after one in place.
    let recovery = Resource::new(|| (), |_| with_refresh(fetch_recovery_log_in));
    view! {
        <Title text="Home"/>
        <section class="card">
            <p class="eyebrow">"Signed in"</p>
            <h1 tabindex="-1">"Welcome, " {user.name.clone()}</h1>
            <dl class="facts">
                <div><dt>"Email"</dt><dd data-testid="user-email">{user.email.clone()}</dd></div>
                <div>
                    <dt>"Two-factor authentication"</dt>
                    <dd>
                        <span class=if on { "badge badge-on" } else { "badge badge-off" } data-testid="twofa-status">
                            {if on { "On" } else { "Off" }}
                        </span>
                    </dd>
                </div>
            </dl>
            // A group's deadline for two factors: the days left, or (once
            // it passed) that the apps send this log-in to turn them on.
            {user.two_factor_due.clone().map(|due| view! {
                <p class=if due.overdue { "alert alert-error" } else { "alert alert-info" } data-testid="two-factor-due">
                    {due.message} " " <A href="/security?need=two-factor">"Turn them on"</A>
                </p>
            })}
            {(!user.is_email_verified).then(|| view! {
                <p class="alert alert-info" data-testid="verify-email">
                    "Confirm your email address: open the link we emailed you. "
                    <A href="/verify-email">"Send it again"</A>
                </p>
            })}
            <Transition fallback=|| ()>
                {move || recovery.get().and_then(Result::ok).flatten().map(|left| view! { <RecoveryCodesLeft left/> })}
            </Transition>
            {(!on).then(|| view! {
                <div class="callout">
                    <p>"Protect your account with a code from an authenticator app on your phone."</p>
                    <A href="/security" attr:class="btn btn-primary">"Turn on two-factor authentication"</A>
                </div>
            })}
            <div class="actions">
                <A href="/security" attr:class="btn">"Security settings"</A>
                {user.is_admin.then(|| view! { <A href="/admin" attr:class="btn" attr:data-testid="admin-link">"Administration"</A> })}
                <LogOutButton/>
            </div>
        </section>
    }
}

/// Said after a log-in with a recovery code: that code is spent, how many
/// are left, and where to make a new set.
#[component]
fn RecoveryCodesLeft(left: i64) -> impl IntoView {
    let count = match left {
        0 => "You have no recovery codes left.".to_owned(),
        1 => "You have 1 recovery code left.".to_owned(),
        n => format!("You have {n} recovery codes left."),
    };
    view! {
        <div class="callout" class:callout-warning=left <= 3 data-testid="recovery-codes-left">
            <p>
                "You logged in with a recovery code; it works only once. " {count}
                " Make a new set before you run out, and if you lost your phone, set up your app again."
            </p>
            <A href="/security#two-factor" attr:class="btn btn-primary">"Make new recovery codes"</A>
        </div>
    }
}

/// `GET /logout` (a typed or bookmarked address): logging out is a POST,
/// so this page asks, with the button; logged out already, it leads to
/// the log-in page.
#[component]
pub fn LogOutPage() -> impl IntoView {
    view! { <RequireUser children=|u| view! { <LogOutConfirm user=u/> }.into_any()/> }
}

#[component]
fn LogOutConfirm(user: User) -> impl IntoView {
    view! {
        <Title text="Log out"/>
        <section class="card narrow">
            <h1 tabindex="-1">"Log out?"</h1>
            <p>"You are signed in as " <strong data-testid="user-email">{user.email.clone()}</strong> "."</p>
            <div class="actions">
                <LogOutButton primary=true/>
                <A href="/" attr:class="btn btn-quiet">"Stay signed in"</A>
            </div>
        </section>
    }
}

/// Log out: a POST to /logout (the server clears the cookies and sends
/// the browser to /login); enhanced in place with JavaScript.
#[component]
pub fn LogOutButton(#[prop(optional)] primary: bool) -> impl IntoView {
    let action = Action::new(|_: &()| log_out());
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            navigate("/login", Default::default());
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !action.pending().get_untracked() {
            action.dispatch(());
        }
    };
    view! {
        <form class="inline" method="post" action="/logout" on:submit=submit>
            <SubmitButton
                pending=action.pending()
                label="Log out"
                busy_label="Logging out…"
                class=if primary { "btn btn-primary" } else { "btn btn-quiet" }
            />
        </form>
        <ErrorNote error=action_error(action) busy=action.pending()/>
    }
}
