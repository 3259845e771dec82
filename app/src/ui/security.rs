//! Security settings: the enrolment wizard (1. generate a secret, 2. scan
//! the QR code or type the grouped key, 3. confirm a code, 4. save the
//! recovery codes), recovery codes, turning 2FA off, password and sessions,
//! and the recent security activity. Every form is a POST to /security with
//! a hidden `intent`, enhanced in place once hydrated. The QR code is drawn
//! from the otpauth URI by the same code on the server and in the browser.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{
    ActivityEvent, GenerateResponse, User, change_password, fetch_activity, fetch_two_factor_status,
    generate_two_factor, log_out_everywhere, parse_any_second_factor, parse_code, parse_new_password,
    regenerate_recovery_codes, turn_off_two_factor, turn_on_two_factor,
};
use crate::domain::{SecondFactor, group_secret};
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
    // Sent here by the gate in front of another app (docs/PROXIES.md).
    let sent_by_gate = use_query_map().read_untracked().get("need").as_deref() == Some("two-factor");
    let return_to = return_to();
    view! {
        <section class="card">
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
            // On the way to an app behind the gate: the way back, checked by
            // the server when followed (GET /login?rd=).
            {move || return_to.get().map(|rd| view! {
                <p class="switch" data-testid="gate-continue">
                    // A full page load (not the router): the server decides.
                    <a href=with_return_to("/login", Some(&rd)) rel="external">"Continue to the app you were opening"</a>
                    {move || (!enabled.get()).then_some(" (it may need two-factor authentication first)")}
                </p>
            })}
            <Show when=move || fresh_codes.get().is_some()>
                <RecoveryCodes codes=fresh_codes.get().unwrap_or_default() on_done=Callback::new(move |_| {
                    fresh_codes.set(None);
                    focus_later("main h1");
                })/>
            </Show>
            <Show when=move || fresh_codes.get().is_none()>
                <Show when=move || enabled.get() fallback=move || view! {
                    <Enrol passkeys_on on_done=Callback::new(move |codes: Vec<String>| {
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
            codes_here=Signal::derive(move || passkeys_on.get() && !enabled.get())/>
        <PasswordAndSessions changed/>
        <RecentActivity changed/>
    }
}

#[component]
fn Enrol(passkeys_on: Signal<bool>, on_done: Callback<Vec<String>>) -> impl IntoView {
    let outcome = posted();
    let password = RwSignal::new(String::new());
    let generate = Action::new(|password: &String| {
        let password = (!password.is_empty()).then(|| password.clone());
        async move { with_refresh(|| generate_two_factor(None, password.clone())).await }
    });
    let code = RwSignal::new(String::new());
    let confirm = Action::new(|code: &String| {
        let code = code.clone();
        async move { with_refresh(|| turn_on_two_factor(code.clone())).await }
    });
    // The secret drawn by the server after a post without JavaScript, until
    // the browser asks for a new one.
    let posted_secret = match outcome.as_ref().and_then(|o| o.shown.clone()) {
        Some(Shown::Enrolment(secret)) => Some(secret),
        _ => None,
    };
    let pending_secret = Signal::derive(move || match generate.value().get() {
        Some(result) => result.ok(),
        None => posted_secret.clone(),
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = generate.value().get() {
            password.set(String::new());
            code.set(String::new());
            confirm.value().set(None);
            focus_later("#scan-heading");
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(res)) = confirm.value().get() {
            on_done.run(res.recovery_codes);
        }
    });
    let start_error = form_error(generate, &outcome, Intent::Enrol);
    let confirm_error = form_error(confirm, &outcome, Intent::Confirm);

    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !generate.pending().get_untracked() {
            generate.dispatch(password.get_untracked());
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !confirm.pending().get_untracked() {
            confirm.dispatch(code.get_untracked());
        }
    };

    view! {
        <Show when=move || pending_secret.get().is_some() fallback=move || view! {
            <div class="intro">
                <Transition fallback=|| view! { <span class="badge badge-off">"Off"</span> }>
                    {move || if passkeys_on.get() {
                        view! {
                            <span class="badge badge-on" data-testid="on-with-passkey">"On with a passkey"</span>
                            <p>"Your passkey is the second step after your password. You can add an authenticator app too (Google Authenticator, Authy, 1Password), for when the passkey is not at hand."</p>
                        }.into_any()
                    } else {
                        view! {
                            <span class="badge badge-off">"Off"</span>
                            <p>"Add a second step to logging in: after your password, you type a 6-digit code from an app such as Google Authenticator, Authy or 1Password."</p>
                        }.into_any()
                    }}
                </Transition>
                <form method="post" action=security_action() on:submit=start novalidate>
                    <IntentField intent=Intent::Enrol/>
                    <TextField label="Your password" id="enrol-password" name="password"
                        input=InputKind::password("current-password") value=password
                        error=field_message(start_error, "password")
                        hint="Needed if you logged in more than 5 minutes ago." optional=true/>
                    <ErrorNote error=start_error busy=generate.pending()/>
                    // With a passkey, two-factor authentication is on already:
                    // this adds the app beside it.
                    <Transition fallback=move || view! {
                        <SubmitButton pending=generate.pending() label="Set up two-factor authentication" busy_label="Preparing…"/>
                    }>
                        {move || if passkeys_on.get() {
                            view! { <SubmitButton pending=generate.pending() label="Add an authenticator app" busy_label="Preparing…"/> }.into_any()
                        } else {
                            view! { <SubmitButton pending=generate.pending() label="Set up two-factor authentication" busy_label="Preparing…"/> }.into_any()
                        }}
                    </Transition>
                </form>
            </div>
        }>
            <ol class="wizard">
                <li>
                    <h2 id="scan-heading" tabindex="-1">"1. Scan this QR code"</h2>
                    <p class="muted">"In your authenticator app, choose to add an account and scan:"</p>
                    {move || pending_secret.get().map(|s: GenerateResponse| view! { <QrAndKey secret=s/> })}
                </li>
                <li>
                    <h2>"2. Enter the code your app shows"</h2>
                    <form method="post" action=security_action() on:submit=submit novalidate class="inline-form">
                        <IntentField intent=Intent::Confirm/>
                        <TextField label="6-digit code" id="enrol-code" name="code" input=InputKind::code() value=code
                            error=field_message(confirm_error, "twoFactorAuthenticationCode")/>
                        <SubmitButton pending=confirm.pending() label="Turn on" busy_label="Checking…"/>
                    </form>
                    <ErrorNote error=confirm_error busy=confirm.pending()/>
                </li>
            </ol>
        </Show>
    }
}

#[component]
fn QrAndKey(secret: GenerateResponse) -> impl IntoView {
    // Drawn by the same code on the server (no JavaScript needed to see it)
    // and in the browser (after "Set up" once hydrated).
    let svg = qr::svg_for(&secret.otpauth_url).unwrap_or_default();
    let grouped = group_secret(&secret.secret);
    let ready = hydrated();
    view! {
        <div class="enrol-grid">
            <div class="qr" role="img" aria-label="QR code for your authenticator app" inner_html=svg></div>
            <div class="manual">
                <p class="muted">"Can't scan? Enter this key by hand (time-based, 6 digits):"</p>
                <code class="secret" data-testid="manual-key">{grouped}</code>
                <Show when=move || ready.get()>
                    <CopyButton text=secret.secret.clone() label="Copy key" class="btn btn-small"/>
                </Show>
            </div>
        </div>
    }
}

/// The recovery codes, shown once, with copy and download.
#[component]
fn RecoveryCodes(codes: Vec<String>, on_done: Callback<()>) -> impl IntoView {
    let text = format!(
        "Two-Factor Login recovery codes\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        codes.join("\n")
    );
    let href = format!("data:text/plain;charset=utf-8,{}", percent_encode(&text));
    let all = codes.join("\n");
    let ready = hydrated();
    let return_to = return_to();
    // Without JavaScript "I have saved them" simply reloads the page.
    let done = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        on_done.run(());
    };
    view! {
        <div class="recovery" data-testid="recovery-codes">
            <h2 id="recovery-heading" tabindex="-1">"Save your recovery codes"</h2>
            <p>"If you lose your phone, each of these codes lets you log in once. They are shown only now: copy them or download them, and keep them somewhere safe."</p>
            <ol class="codes">
                {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
            </ol>
            <form class="actions" method="get" action="/security" on:submit=done>
                // A GET form replaces the query: the way back to the gated
                // app rides along as a field.
                {move || return_to.get().map(|rd| view! { <input type="hidden" name="rd" value=rd/> })}
                <Show when=move || ready.get()>
                    <CopyButton text=all.clone() label="Copy codes"/>
                </Show>
                <a class="btn" href=href download="twofactor-recovery-codes.txt">"Download .txt"</a>
                <button type="submit" class="btn btn-primary">"I have saved them"</button>
            </form>
        </div>
    }
}

#[component]
fn TwoFactorOn(changed: RwSignal<u32>, on_codes: Callback<Vec<String>>, on_off: Callback<()>) -> impl IntoView {
    let outcome = posted();
    let status = Resource::new(move || changed.get(), |_| with_refresh(fetch_two_factor_status));
    let regen_code = RwSignal::new(String::new());
    let regen = Action::new(|code: &String| {
        let code = code.clone();
        async move {
            parse_code(&code)?;
            with_refresh(|| regenerate_recovery_codes(code.clone())).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(res)) = regen.value().get() {
            regen_code.set(String::new());
            on_codes.run(res.recovery_codes);
        }
    });
    let regen_error = form_error(regen, &outcome, Intent::Regenerate);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::Regenerate && o.error.is_some());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !regen.pending().get_untracked() {
            regen.dispatch(regen_code.get_untracked());
        }
    };
    view! {
        <div class="success" data-testid="twofa-on">
            <span class="badge badge-on">"On"</span>
            <div>
                <h2>"Two-factor authentication is on"</h2>
                <p class="muted">"Logging in asks for the code from your authenticator app after your password."</p>
                <p class="muted" data-testid="codes-left">
                    <Suspense fallback=|| "Counting recovery codes…">
                        {move || status.get().map(|r| match r {
                            Ok(s) => format!("{} of 10 recovery codes left.", s.recovery_codes_left),
                            Err(e) => e.message,
                        })}
                    </Suspense>
                </p>
            </div>
        </div>
        <details class="panel" open=open>
            <summary>"Make new recovery codes"</summary>
            <p class="muted">"The old codes stop working. Enter a current code from your app to confirm."</p>
            <form class="inline-form" method="post" action=security_action() novalidate on:submit=submit>
                <IntentField intent=Intent::Regenerate/>
                <TextField label="6-digit code" id="regen-code" name="code" input=InputKind::code() value=regen_code
                    error=field_message(regen_error, "twoFactorAuthenticationCode")/>
                <SubmitButton pending=regen.pending() label="Make new codes" busy_label="Checking…"/>
            </form>
            <ErrorNote error=regen_error busy=regen.pending()/>
        </details>
        <TurnOff on_off/>
    }
}

#[component]
fn TurnOff(on_off: Callback<()>) -> impl IntoView {
    let outcome = posted();
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let action = Action::new(|(password, code): &(String, String)| {
        let (password, code) = (password.clone(), code.clone());
        async move {
            let (c, r) = match parse_any_second_factor(&code)? {
                SecondFactor::Totp(_) => (Some(code), None),
                SecondFactor::Recovery(_) => (None, Some(code)),
            };
            with_refresh(|| turn_off_two_factor(password.clone(), c.clone(), r.clone())).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            password.set(String::new());
            code.set(String::new());
            on_off.run(());
        }
    });
    let error = form_error(action, &outcome, Intent::TurnOff);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::TurnOff && o.error.is_some());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !action.pending().get_untracked() {
            action.dispatch((password.get_untracked(), code.get_untracked()));
        }
    };
    view! {
        <details class="panel" data-testid="turn-off" open=open>
            <summary>"Turn off two-factor authentication"</summary>
            <p class="muted">"Your account will be protected by your password alone. Confirm with your password and a code from your app or a recovery code."</p>
            <form method="post" action=security_action() novalidate on:submit=submit>
                <IntentField intent=Intent::TurnOff/>
                <TextField label="Password" id="off-password" name="password" input=InputKind::password("current-password")
                    value=password/>
                <TextField label="6-digit code or recovery code" id="off-code" name="code"
                    input=InputKind { maxlength: Some(20), placeholder: Some("123 456"), ..InputKind::code() }
                    value=code error=field_message(error, "code")/>
                <ErrorNote error=error busy=action.pending()/>
                <SubmitButton pending=action.pending() label="Turn off two-factor authentication" busy_label="Turning off…"
                    class="btn btn-danger"/>
            </form>
        </details>
    }
}

#[component]
fn PasswordAndSessions(changed: RwSignal<u32>) -> impl IntoView {
    let outcome = posted();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let changed_before = outcome.as_ref().is_some_and(|o| o.shown == Some(Shown::PasswordChanged));
    let done = RwSignal::new(changed_before);
    let change = Action::new(|(current, new): &(String, String)| {
        let (current, new) = (current.clone(), new.clone());
        async move {
            parse_new_password(&new)?;
            with_refresh(|| change_password(current.clone(), new.clone())).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = change.value().get() {
            current.set(String::new());
            new.set(String::new());
            done.set(true);
            changed.update(|n| *n += 1);
        }
    });
    let change_error = form_error(change, &outcome, Intent::ChangePassword);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::ChangePassword);
    let everywhere = Action::new(|_: &()| with_refresh(log_out_everywhere));
    let everywhere_error = form_error(everywhere, &outcome, Intent::Everywhere);
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = everywhere.value().get() {
            navigate("/login", Default::default());
        }
    });
    let submit_change = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !change.pending().get_untracked() {
            done.set(false);
            change.dispatch((current.get_untracked(), new.get_untracked()));
        }
    };
    let submit_everywhere = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !everywhere.pending().get_untracked() {
            everywhere.dispatch(());
        }
    };
    view! {
        <section class="card">
            <h2>"Password and sessions"</h2>
            <details class="panel" open=open>
                <summary>"Change password"</summary>
                <form method="post" action=security_action() novalidate on:submit=submit_change>
                    <IntentField intent=Intent::ChangePassword/>
                    <TextField label="Current password" id="current-password" name="currentPassword"
                        input=InputKind::password("current-password") value=current/>
                    <TextField label="New password" id="new-password" name="newPassword" input=InputKind::new_password()
                        value=new error=field_message(change_error, "newPassword")
                        hint="12 to 128 characters. Your other devices will be logged out."/>
                    <ErrorNote error=change_error busy=change.pending()/>
                    <Show when=move || done.get()>
                        <p class="alert alert-ok" role="status">"Password changed. Other devices were logged out."</p>
                    </Show>
                    <SubmitButton pending=change.pending() label="Change password" busy_label="Saving…"/>
                </form>
            </details>
            <div class="actions">
                <form class="inline" method="post" action=security_action() on:submit=submit_everywhere>
                    <IntentField intent=Intent::Everywhere/>
                    <SubmitButton pending=everywhere.pending() label="Log out everywhere" busy_label="Logging out…" class="btn"/>
                </form>
                <LogOutButton/>
            </div>
            <ErrorNote error=everywhere_error busy=everywhere.pending()/>
        </section>
    }
}

#[component]
fn RecentActivity(changed: RwSignal<u32>) -> impl IntoView {
    let events = Resource::new(move || changed.get(), |_| with_refresh(fetch_activity));
    let list = |events: Vec<ActivityEvent>, testid: &'static str| {
        if events.is_empty() {
            view! { <p class="muted">"Nothing yet."</p> }.into_any()
        } else {
            view! {
                <ul class="activity" data-testid=testid>
                    {events.into_iter().map(|e| view! { <ActivityRow event=e/> }).collect_view()}
                </ul>
            }
            .into_any()
        }
    };
    view! {
        <section class="card">
            <h2>"Recent activity"</h2>
            <p class="muted">"Changes to your account's protection, then log-ins and failed attempts. Times are UTC."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || events.get().map(|r| match r {
                    Ok(a) => view! {
                        <h3 class="activity-heading">"Security changes"</h3>
                        {list(a.changes, "changes")}
                        <h3 class="activity-heading">"Log-ins and attempts"</h3>
                        {list(a.events, "activity")}
                    }.into_any(),
                    Err(e) => view! { <p class="alert alert-error" role="alert">{e.message}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ActivityRow(event: ActivityEvent) -> impl IntoView {
    let detail = [event.ip.clone(), event.user_agent.as_deref().map(short_agent)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    view! {
        <li class:warning=event.kind.is_warning()>
            <span class="what">{event.kind.label()}</span>
            <span class="when">{format_utc(event.at)}</span>
            <span class="where">{detail}</span>
        </li>
    }
}

/// The browser's name from a user agent, enough to recognise a device.
fn short_agent(ua: &str) -> String {
    for (needle, name) in
        [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl")]
    {
        if ua.contains(needle) {
            return name.to_owned();
        }
    }
    ua.chars().take(40).collect()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_shortened() {
        assert_eq!(
            short_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"),
            "Chrome"
        );
        assert_eq!(short_agent("curl/8.5.0"), "curl");
    }
}
