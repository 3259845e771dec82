//! Security settings: the enrolment wizard (1. generate a secret, 2. scan
//! the QR code or type the grouped key, 3. confirm a code, 4. save the
//! recovery codes), recovery codes, turning 2FA off, password and sessions,
//! and the recent security activity. The QR code is drawn here, in the
//! browser, from the otpauth URI.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{
    ActivityEvent, GenerateResponse, User, change_password, fetch_activity, fetch_two_factor_status,
    generate_two_factor, log_out_everywhere, parse_code, parse_new_password, parse_second_factor,
    regenerate_recovery_codes, turn_off_two_factor, turn_on_two_factor,
};
use crate::domain::group_secret;

use super::home::LogOutButton;
use super::persist::{self, ENROL_STEP};
use super::session::{RequireUser, with_refresh};
use super::{ErrorNote, SubmitButton, action_error, field_error, qr};

#[component]
pub fn SecurityPage() -> impl IntoView {
    view! { <RequireUser children=|u| view! { <Security user=u/> }.into_any()/> }
}

#[component]
fn Security(user: User) -> impl IntoView {
    let enabled = RwSignal::new(user.is_two_factor_authentication_enabled);
    // Bumped after every change, so the status and the activity reload.
    let changed = RwSignal::new(0u32);
    let fresh_codes = RwSignal::new(None::<Vec<String>>);
    view! {
        <section class="card">
            <p class="eyebrow">"Security"</p>
            <h1>"Two-factor authentication"</h1>
            <p class="muted">
                "Signed in as " <strong>{user.email.clone()}</strong> ". "
                <A href="/">"Back to home"</A>
            </p>
            <Show when=move || fresh_codes.get().is_some()>
                <RecoveryCodes codes=fresh_codes.get().unwrap_or_default() on_done=Callback::new(move |_| fresh_codes.set(None))/>
            </Show>
            <Show when=move || fresh_codes.get().is_none()>
                <Show when=move || enabled.get() fallback=move || view! {
                    <Enrol on_done=Callback::new(move |codes: Vec<String>| {
                        enabled.set(true);
                        fresh_codes.set(Some(codes));
                        changed.update(|n| *n += 1);
                    })/>
                }>
                    <TwoFactorOn
                        changed
                        on_codes=Callback::new(move |codes| { fresh_codes.set(Some(codes)); changed.update(|n| *n += 1); })
                        on_off=Callback::new(move |_| { enabled.set(false); changed.update(|n| *n += 1); })
                    />
                </Show>
            </Show>
        </section>
        <PasswordAndSessions changed/>
        <RecentActivity changed/>
    }
}

#[component]
fn Enrol(on_done: Callback<Vec<String>>) -> impl IntoView {
    let generate = Action::new(|_: &()| with_refresh(|| generate_two_factor(None)));
    let code = RwSignal::new(String::new());
    let confirm = Action::new(|code: &String| {
        let code = code.clone();
        async move {
            parse_code(&code)?;
            with_refresh(|| turn_on_two_factor(code.clone())).await
        }
    });
    let restarted = RwSignal::new(false);

    // After a reload in the middle of the wizard the pending secret is gone
    // from the page (it is never stored in the browser), so start over with
    // a fresh one and say so.
    Effect::new(move |_| {
        if persist::load(ENROL_STEP).as_deref() == Some("scan") {
            restarted.set(true);
            generate.dispatch(());
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = generate.value().get() {
            persist::save(ENROL_STEP, "scan");
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(res)) = confirm.value().get() {
            persist::forget(ENROL_STEP);
            on_done.run(res.recovery_codes);
        }
    });

    let pending_secret = move || generate.value().get().and_then(|r| r.ok());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        confirm.dispatch(code.get_untracked());
    };

    view! {
        <Show when=move || pending_secret().is_some() fallback=move || view! {
            <div class="intro">
                <span class="badge badge-off">"Off"</span>
                <p>"Add a second step to logging in: after your password, you type a 6-digit code from an app such as Google Authenticator, Authy or 1Password."</p>
                <ErrorNote error=action_error(generate)/>
                <button class="btn btn-primary" on:click=move |_| { restarted.set(false); generate.dispatch(()); }
                    disabled=move || generate.pending().get()>
                    {move || if generate.pending().get() { "Preparing…" } else { "Set up two-factor authentication" }}
                </button>
            </div>
        }>
            <ol class="wizard">
                <li>
                    <h2>"1. Scan this QR code"</h2>
                    <Show when=move || restarted.get()>
                        <p class="alert alert-info" role="status">"The page was reloaded, so here is a new key. Scan this one."</p>
                    </Show>
                    <p class="muted">"In your authenticator app, choose to add an account and scan:"</p>
                    {move || pending_secret().map(|s: GenerateResponse| view! { <QrAndKey secret=s/> })}
                </li>
                <li>
                    <h2>"2. Enter the code your app shows"</h2>
                    <form on:submit=submit novalidate class="inline-form">
                        <div class="field">
                            <label for="enrol-code">"6-digit code"</label>
                            <input id="enrol-code" name="code" class="code-input" type="text" inputmode="numeric"
                                autocomplete="one-time-code" maxlength="9" placeholder="123 456" required bind:value=code/>
                        </div>
                        <SubmitButton pending=confirm.pending() label="Turn on" busy_label="Checking…"/>
                    </form>
                    <ErrorNote error=action_error(confirm)/>
                </li>
            </ol>
        </Show>
    }
}

#[component]
fn QrAndKey(secret: GenerateResponse) -> impl IntoView {
    let svg = qr::svg_for(&secret.otpauth_url).unwrap_or_default();
    let grouped = group_secret(&secret.secret);
    view! {
        <div class="enrol-grid">
            <div class="qr" role="img" aria-label="QR code for your authenticator app" inner_html=svg></div>
            <div class="manual">
                <p class="muted">"Can't scan? Enter this key by hand (time-based, 6 digits):"</p>
                <code class="secret" data-testid="manual-key">{grouped}</code>
                <CopyButton text=secret.secret.clone() label="Copy key" class="btn btn-small"/>
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
    view! {
        <div class="recovery" data-testid="recovery-codes">
            <h2>"Save your recovery codes"</h2>
            <p>"If you lose your phone, each of these codes lets you log in once. They are shown only now: copy them or download them, and keep them somewhere safe."</p>
            <ol class="codes">
                {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
            </ol>
            <div class="actions">
                <CopyButton text=all label="Copy codes"/>
                <a class="btn" href=href download="twofactor-recovery-codes.txt">"Download .txt"</a>
                <button type="button" class="btn btn-primary" on:click=move |_| on_done.run(())>"I have saved them"</button>
            </div>
        </div>
    }
}

#[component]
fn TwoFactorOn(changed: RwSignal<u32>, on_codes: Callback<Vec<String>>, on_off: Callback<()>) -> impl IntoView {
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
        <details class="panel">
            <summary>"Make new recovery codes"</summary>
            <p class="muted">"The old codes stop working. Enter a current code from your app to confirm."</p>
            <form class="inline-form" novalidate on:submit=move |ev| { ev.prevent_default(); regen.dispatch(regen_code.get_untracked()); }>
                <div class="field">
                    <label for="regen-code">"6-digit code"</label>
                    <input id="regen-code" class="code-input" type="text" inputmode="numeric" autocomplete="one-time-code"
                        maxlength="9" placeholder="123 456" required bind:value=regen_code/>
                </div>
                <SubmitButton pending=regen.pending() label="Make new codes" busy_label="Checking…"/>
            </form>
            <ErrorNote error=action_error(regen)/>
        </details>
        <TurnOff on_off/>
    }
}

#[component]
fn TurnOff(on_off: Callback<()>) -> impl IntoView {
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let recovery = RwSignal::new(false);
    let action = Action::new(|(password, code, recovery): &(String, String, bool)| {
        let (password, code, recovery) = (password.clone(), code.clone(), *recovery);
        async move {
            let (c, r) = if recovery { (None, Some(code)) } else { (Some(code), None) };
            parse_second_factor(c.as_deref(), r.as_deref())?;
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
    view! {
        <details class="panel" data-testid="turn-off">
            <summary>"Turn off two-factor authentication"</summary>
            <p class="muted">"Your account will be protected by your password alone. Confirm with your password and a code."</p>
            <form novalidate on:submit=move |ev| { ev.prevent_default(); action.dispatch((password.get_untracked(), code.get_untracked(), recovery.get_untracked())); }>
                <div class="field">
                    <label for="off-password">"Password"</label>
                    <input id="off-password" type="password" autocomplete="current-password" required bind:value=password/>
                </div>
                <div class="field">
                    <label for="off-code">{move || if recovery.get() { "Recovery code" } else { "6-digit code" }}</label>
                    <input id="off-code" class="code-input" type="text" autocomplete="one-time-code" maxlength="20"
                        inputmode=move || if recovery.get() { "text" } else { "numeric" }
                        placeholder=move || if recovery.get() { "abcd-efgh-jkmn" } else { "123 456" } required bind:value=code/>
                    <button type="button" class="link small" on:click=move |_| { code.set(String::new()); recovery.update(|r| *r = !*r); }>
                        {move || if recovery.get() { "Use the code from your app instead" } else { "Use a recovery code instead" }}
                    </button>
                </div>
                <ErrorNote error=action_error(action)/>
                <button type="submit" class="btn btn-danger" disabled=move || action.pending().get()>
                    {move || if action.pending().get() { "Turning off…" } else { "Turn off two-factor authentication" }}
                </button>
            </form>
        </details>
    }
}

#[component]
fn PasswordAndSessions(changed: RwSignal<u32>) -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let done = RwSignal::new(false);
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
    let everywhere = Action::new(|_: &()| with_refresh(log_out_everywhere));
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = everywhere.value().get() {
            navigate("/login", Default::default());
        }
    });
    view! {
        <section class="card">
            <h2>"Password and sessions"</h2>
            <details class="panel">
                <summary>"Change password"</summary>
                <form novalidate on:submit=move |ev| { ev.prevent_default(); done.set(false); change.dispatch((current.get_untracked(), new.get_untracked())); }>
                    <div class="field">
                        <label for="current-password">"Current password"</label>
                        <input id="current-password" type="password" autocomplete="current-password" required bind:value=current/>
                    </div>
                    <div class="field" class:has-error=move || field_error(change, "newPassword").get().is_some()>
                        <label for="new-password">"New password"</label>
                        <input id="new-password" type="password" autocomplete="new-password" minlength="12" maxlength="128" required bind:value=new/>
                        <small class="hint">"12 to 128 characters. Your other devices will be logged out."</small>
                    </div>
                    <ErrorNote error=action_error(change)/>
                    <Show when=move || done.get()>
                        <p class="alert alert-ok" role="status">"Password changed. Other devices were logged out."</p>
                    </Show>
                    <SubmitButton pending=change.pending() label="Change password" busy_label="Saving…"/>
                </form>
            </details>
            <div class="actions">
                <button class="btn" on:click=move |_| { everywhere.dispatch(()); } disabled=move || everywhere.pending().get()>
                    {move || if everywhere.pending().get() { "Logging out…" } else { "Log out everywhere" }}
                </button>
                <LogOutButton/>
            </div>
            <ErrorNote error=action_error(everywhere)/>
        </section>
    }
}

#[component]
fn RecentActivity(changed: RwSignal<u32>) -> impl IntoView {
    let events = Resource::new(move || changed.get(), |_| with_refresh(fetch_activity));
    view! {
        <section class="card">
            <h2>"Recent activity"</h2>
            <p class="muted">"Log-ins, failed attempts and security changes on your account. Times are UTC."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || events.get().map(|r| match r {
                    Ok(a) if a.events.is_empty() => view! { <p class="muted">"Nothing yet."</p> }.into_any(),
                    Ok(a) => view! {
                        <ul class="activity" data-testid="activity">
                            {a.events.into_iter().map(|e| view! { <ActivityRow event=e/> }).collect_view()}
                        </ul>
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

/// `2026-11-25 12:30` from Unix seconds (UTC), using the days-to-civil
/// conversion of the proleptic Gregorian calendar.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A button that copies `text` and says whether it worked: the clipboard
/// exists only in secure contexts (https or localhost) and may be refused.
#[component]
fn CopyButton(text: String, label: &'static str, #[prop(default = "btn")] class: &'static str) -> impl IntoView {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_800_000_010), "2027-01-15 08:00");
        assert_eq!(format_utc(1_795_609_800), "2026-11-25 12:30");
    }

    #[test]
    fn agents_are_shortened() {
        assert_eq!(
            short_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"),
            "Chrome"
        );
        assert_eq!(short_agent("curl/8.5.0"), "curl");
    }
}
