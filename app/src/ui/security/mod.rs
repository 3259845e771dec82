//! Security settings: the enrolment wizard (1. generate a secret, 2. scan
//! the QR code or type the grouped key, 3. confirm a code, 4. save the
//! recovery codes), recovery codes, turning 2FA off, password and sessions,
//! and the recent security activity. Every form is a POST to /security with
//! a hidden `intent`, enhanced in place once hydrated. The QR code is drawn
//! from the otpauth URI by the same code on the server and in the browser.

mod activity;
mod connected_apps;
mod enrol;
mod log_ins;
mod password;
mod remembered;
mod step_up;
mod two_factor;

use activity::RecentActivity;
use connected_apps::ConnectedApps;
pub(crate) use enrol::RecoveryCodes;
use enrol::{Enrol, Wizard};
use log_ins::LogIns;
use password::PasswordAndSessions;
use remembered::RememberedBrowsers;
use step_up::StepUp;
use two_factor::TwoFactorOn;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{
    ActivityEvent, GenerateResponse, TurnOnResponse, User, change_password, fetch_activity, fetch_two_factor_status,
    generate_two_factor, log_out_everywhere, parse_any_second_factor, parse_code, parse_new_password,
    regenerate_recovery_codes, turn_off_two_factor, turn_on_two_factor,
};
use crate::domain::{SecondFactor, group_secret};
use crate::error::AppError;
use crate::time::format_utc;

use super::home::LogOutButton;
use super::outcome::{FormOutcome, Intent, Shown, page_outcome};
use super::session::{RequireUser, with_refresh};
use super::{
    CopyButton, ErrorNote, InputKind, IntentField, SubmitButton, TextField, field_message, focus_later, form_error,
    hydrated, qr, return_to, with_return_to,
};

/// Where the page's forms post: `/security`, keeping the way back to an
/// app behind the gate when there is one.
fn security_action() -> impl Fn() -> String + Copy + Send + Sync + 'static {
    let return_to = return_to();
    move || with_return_to("/security", return_to.get().as_deref())
}

/// A typed second factor as the API takes it: a code from the app
/// (`twoFactorAuthenticationCode`) or a recovery code (`recoveryCode`),
/// told apart by their shapes.
fn code_or_recovery(typed: &str) -> Result<(Option<String>, Option<String>), AppError> {
    Ok(match parse_any_second_factor(typed)? {
        SecondFactor::Totp(_) => (Some(typed.to_owned()), None),
        SecondFactor::Recovery(_) => (None, Some(typed.to_owned())),
    })
}

/// The page's post outcome, handed to the components inside `RequireUser`.
#[derive(Clone)]
struct Posted(Option<FormOutcome>);

fn posted() -> Option<FormOutcome> {
    use_context::<Posted>().and_then(|p| p.0)
}

/// The security page is the largest part of the browser code and the one
/// a visitor needs least often, so its view is a lazily loaded WebAssembly
/// chunk (built with `cargo leptos build --split`); the log-in and sign-up
/// pages ship without it. The post outcome is read in `data`, which runs
/// during hydration, before the chunk has arrived.
pub struct SecurityRoute {
    outcome: Option<FormOutcome>,
}

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for SecurityRoute {
    fn data() -> Self {
        Self { outcome: page_outcome() }
    }

    fn view(this: Self) -> AnyView {
        provide_context(Posted(this.outcome));
        view! {
            <Title text="Security"/>
            <RequireUser children=|u| view! { <Security user=u/> }.into_any()/>
        }
        .into_any()
    }
}

#[component]
fn Security(user: User) -> impl IntoView {
    let outcome = posted();
    let enabled = RwSignal::new(user.is_two_factor_authentication_enabled);
    // Bumped after every change, so the status and the activity reload.
    let changed = RwSignal::new(0u32);
    let first_codes = match outcome.as_ref().and_then(|o| o.shown.clone()) {
        Some(Shown::RecoveryCodes(codes)) => Some(codes),
        _ => None,
    };
    let fresh_codes = RwSignal::new(first_codes);
    // Passkeys also turn two-factor authentication on (without the app).
    let status = Resource::new(move || changed.get(), |_| with_refresh(fetch_two_factor_status));
    let passkeys_on = Signal::derive(move || status.get().and_then(Result::ok).is_some_and(|s| s.passkeys > 0));
    // A log-in within the last 5 minutes stands in for the password: the
    // password fields are hidden until the server asks for one.
    let recent = Signal::derive(move || status.get().and_then(Result::ok).is_some_and(|s| s.recent_log_in));
    // Sent here by the gate in front of another app (docs/PROXIES.md).
    let sent_by_gate = use_query_map().read_untracked().get("need").as_deref() == Some("two-factor");
    let return_to = return_to();
    // Sent by the gate while protection is on: the app wants a second
    // factor shown now (see `StepUp`), asked before the way back.
    // Protection turned on here answers the gate itself (that log-in has
    // its second factor); so does a second factor shown in `StepUp`.
    let answered = RwSignal::new(false);
    let asks_again = Signal::derive(move || sent_by_gate && !answered.get() && (enabled.get() || passkeys_on.get()));
    // Logged in from a remembered browser: changes to the protection want
    // a second factor, shown here first.
    let remembered_only =
        Signal::derive(move || !answered.get() && status.get().and_then(Result::ok).is_some_and(|s| s.remembered_only));
    // The way back to the gated app is the page's main action when shown.
    let continue_shown = Signal::derive(move || {
        return_to.get().is_some()
            && (!sent_by_gate || enabled.get() || passkeys_on.get())
            && fresh_codes.get().is_none()
            && !asks_again.get()
    });
    // The first passkey comes with recovery codes: `frontend/passkeys.js`
    // hands them over (`data-codes` of the add panel) and says so with a
    // `passkey-codes` event; the passkeys card shows them with the app's
    // widget, and the page takes in that protection is on.
    let passkey_codes = RwSignal::new(None::<Vec<String>>);
    let codes_listener = window_event_listener_untyped("passkey-codes", move |ev| {
        if let Some(codes) = two_factor::take_json_attribute::<Vec<String>>("passkey-codes", "data-codes") {
            ev.prevent_default();
            answered.set(true);
            passkey_codes.set(Some(codes));
            changed.update(|n| *n += 1);
            focus_later("#recovery-heading");
        }
    });
    let added_listener = window_event_listener_untyped("passkey-added", move |ev| {
        ev.prevent_default();
        changed.update(|n| *n += 1);
    });
    // Dropping the handles leaves the listeners: remove them with the page.
    on_cleanup(move || {
        codes_listener.remove();
        added_listener.remove();
    });
    view! {
        <section class="card" id="two-factor">
            <p class="eyebrow">"Security"</p>
            <h1 tabindex="-1">"Two-factor authentication"</h1>
            <p class="muted signed-in">
                "Signed in as " <strong class="email">{user.email.clone()}</strong> ". "
                <A href="/">"Back to home"</A>
            </p>
            <Show when=move || sent_by_gate && !enabled.get()>
                <p class="alert alert-info" role="status" data-testid="gate-needs-2fa">
                    "The app you were opening needs two-factor authentication. Turn it on below, then open the app again."
                </p>
            </Show>
            // On the way to an app behind the gate: the way back, as the
            // page's main action, naming the app. Not while the app is known
            // to need a second factor not yet in place, nor over recovery
            // codes still to be saved. Checked by the server when followed
            // (GET /login?rd=).
            <Show when=move || asks_again.get() || remembered_only.get()>
                <StepUp passkeys=passkeys_on for_gate=sent_by_gate on_done=Callback::new(move |_| {
                    match return_to.get_untracked().filter(|_| sent_by_gate) {
                        Some(rd) => crate::ui::go_to_server(&with_return_to("/login", Some(&rd))),
                        None => {
                            answered.set(true);
                            changed.update(|n| *n += 1);
                        }
                    }
                })/>
            </Show>
            {move || {
                let rd = return_to.get()?;
                let ready = !sent_by_gate || enabled.get() || passkeys_on.get();
                (ready && fresh_codes.get().is_none() && !asks_again.get()).then(|| view! {
                    <p class="actions" data-testid="gate-continue">
                        // A full page load (not the router): the server decides.
                        <a class="btn btn-primary" href=with_return_to("/login", Some(&rd)) rel="external">
                            {format!("Continue to {}", app_host(&rd))}
                        </a>
                        {move || (!enabled.get() && !passkeys_on.get())
                            .then_some(view! { <span class="muted">" It may ask for two-factor authentication first."</span> })}
                    </p>
                })
            }}
            <Show when=move || fresh_codes.get().is_some()>
                <RecoveryCodes codes=fresh_codes.get().unwrap_or_default() on_done=Callback::new(move |_| {
                    fresh_codes.set(None);
                    focus_later("main h1");
                })/>
            </Show>
            <Show when=move || fresh_codes.get().is_none()>
                <Show when=move || enabled.get() fallback=move || view! {
                    <Enrol passkeys_on recent primary=Signal::derive(move || !continue_shown.get()) on_done=Callback::new(move |codes: Vec<String>| {
                        answered.set(true);
                        enabled.set(true);
                        fresh_codes.set(Some(codes));
                        changed.update(|n| *n += 1);
                        focus_later("#recovery-heading");
                    })/>
                }>
                    <TwoFactorOn
                        changed
                        on_codes=Callback::new(move |codes| {
                            fresh_codes.set(Some(codes));
                            changed.update(|n| *n += 1);
                            focus_later("#recovery-heading");
                        })
                        on_off=Callback::new(move |_| {
                            enabled.set(false);
                            changed.update(|n| *n += 1);
                            focus_later("main h1");
                        })
                    />
                </Show>
            </Show>
        </section>
        <super::passkeys::PasskeysCard changed outcome=posted() action=Signal::derive(security_action())
            codes_here=Signal::derive(move || passkeys_on.get() && !enabled.get()) recent codes=passkey_codes/>
        <PasswordAndSessions changed/>
        <LogIns changed/>
        <RememberedBrowsers changed/>
        <ConnectedApps changed/>
        <RecentActivity changed/>
    }
}

/// The host of an app's address, to name it on the way back.
fn app_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_app_is_named_by_its_host() {
        assert_eq!(super::app_host("https://notes.example.com/a?b=1"), "notes.example.com");
        assert_eq!(super::app_host("http://wiki.example.test:8080"), "wiki.example.test:8080");
    }
}
