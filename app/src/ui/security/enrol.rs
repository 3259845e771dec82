//! Turning two-factor on with an authenticator app: the wizard (a secret,
//! its QR code and grouped key, a code to confirm) and the recovery codes
//! shown once at its end.

use super::*;

#[component]
pub(super) fn Enrol(
    passkeys_on: Signal<bool>,
    /// Logged in within the last 5 minutes: no password needed.
    recent: Signal<bool>,
    /// Its button is the page's main action (no way back to an app is).
    primary: Signal<bool>,
    on_done: Callback<Vec<String>>,
) -> impl IntoView {
    let outcome = posted();
    let password = RwSignal::new(String::new());
    let generate = Action::new(|password: &String| {
        let password = (!password.is_empty()).then(|| password.clone());
        async move { with_refresh(|| generate_two_factor(None, password.clone(), None, None)).await }
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
                <form method="post" action=move || format!("{}#two-factor", security_action()()) on:submit=start
                    novalidate>
                    <IntentField intent=Intent::Enrol/>
                    // Read under a Transition: the server waits for the status.
                    <Transition fallback=|| ()>
                        <Show when=move || !recent.get() || start_error.get().is_some_and(|e| e.fields.contains_key("password"))>
                            <TextField label="Your password" id="enrol-password" name="password"
                                input=InputKind::password("current-password") value=password
                                error=field_message(start_error, "password")
                                hint="Needed because you logged in more than 5 minutes ago."/>
                        </Show>
                    </Transition>
                    <ErrorNote error=start_error busy=generate.pending()/>
                    // With a passkey, two-factor authentication is on already:
                    // this adds the app beside it.
                    <Transition fallback=move || view! {
                        <SubmitButton pending=generate.pending() label="Set up two-factor authentication" busy_label="Preparing…"/>
                    }>
                        {move || {
                            let label = if passkeys_on.get() { "Add an authenticator app" } else { "Set up two-factor authentication" };
                            let class = if primary.get() { "btn btn-primary" } else { "btn" };
                            view! { <SubmitButton pending=generate.pending() label busy_label="Preparing…" class/> }
                        }}
                    </Transition>
                </form>
            </div>
        }>
            <Wizard secret=pending_secret code confirm error=confirm_error submit label="Turn on"/>
        </Show>
    }
}

/// The wizard's steps once a secret is pending: its QR code and grouped
/// key, then the code that confirms it. Setting up the app and moving it
/// to a new phone both use it.
#[component]
pub(super) fn Wizard(
    secret: Signal<Option<GenerateResponse>>,
    code: RwSignal<String>,
    confirm: Action<String, Result<TurnOnResponse, AppError>>,
    error: Signal<Option<AppError>>,
    submit: impl Fn(leptos::ev::SubmitEvent) + 'static,
    label: &'static str,
    /// Where the confirming form posts without JavaScript (its anchor).
    #[prop(default = "#two-factor")]
    anchor: &'static str,
) -> impl IntoView {
    let action = security_action();
    view! {
        <ol class="wizard">
            <li>
                <h2 id="scan-heading" tabindex="-1">"1. Scan this QR code"</h2>
                <p class="muted">"In your authenticator app, choose to add an account and scan:"</p>
                {move || secret.get().map(|s: GenerateResponse| view! { <QrAndKey secret=s/> })}
            </li>
            <li>
                <h2>"2. Enter the code your app shows"</h2>
                <form method="post" action=move || format!("{}{anchor}", action()) on:submit=submit novalidate
                    class="inline-form">
                    <IntentField intent=Intent::Confirm/>
                    <TextField label="6-digit code" id="enrol-code" name="code" input=InputKind::code() value=code
                        error=field_message(error, "twoFactorAuthenticationCode")/>
                    <SubmitButton pending=confirm.pending() label busy_label="Checking…"/>
                </form>
                <ErrorNote error busy=confirm.pending()/>
            </li>
        </ol>
    }
}

#[component]
pub(super) fn QrAndKey(secret: GenerateResponse) -> impl IntoView {
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
pub(crate) fn RecoveryCodes(
    codes: Vec<String>,
    on_done: Callback<()>,
    /// What the codes stand in for, when it is lost.
    #[prop(default = "your phone")]
    lost: &'static str,
) -> impl IntoView {
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
            <p>{format!("If you lose {lost}, each of these codes lets you log in once. They are shown only now: copy them or download them, and keep them somewhere safe.")}</p>
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

pub(super) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
