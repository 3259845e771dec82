//! The pages mail leads to, and the one that sends it: "Forgot your
//! password?", setting a new password from a reset link, confirming the
//! email address (or asking for the message again), and the lockdown a
//! security notice offers. Opening a link changes nothing: a button
//! confirms, so a mail scanner that fetches links does no harm.
//!
//! Each page has one form, a real POST to its own address (the token
//! rides in a hidden field, and the address bar drops it once posted),
//! enhanced in place with JavaScript. A lazily loaded chunk, like the
//! security page: most visits never need it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_location, use_query_map};

use crate::api::{
    LinkCheck, check_link, forgot_password, lockdown, parse_email, parse_new_password, resend_verification,
    reset_password, verify_email,
};
use crate::error::AppError;

use super::outcome::{FormOutcome, Intent, page_outcome};
use super::{ErrorNote, InputKind, IntentField, SubmitButton, TextField, field_message, focus_later, form_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Forgot,
    Reset,
    Verify,
    Lockdown,
}

impl Page {
    fn from_path(path: &str) -> Self {
        match path {
            "/reset-password" => Page::Reset,
            "/verify-email" => Page::Verify,
            "/lockdown" => Page::Lockdown,
            _ => Page::Forgot,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Page::Forgot => "/forgot-password",
            Page::Reset => "/reset-password",
            Page::Verify => "/verify-email",
            Page::Lockdown => "/lockdown",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Forgot => "Forgot your password?",
            Page::Reset => "Set a new password",
            Page::Verify => "Confirm your email address",
            Page::Lockdown => "Lock your account?",
        }
    }

    /// The heading once the form did its job (`asking_again`: the
    /// confirmation page without a token, asking for a new link).
    fn done_title(self, asking_again: bool) -> &'static str {
        match self {
            Page::Forgot => "Check your email",
            Page::Verify if asking_again => "Check your email",
            Page::Verify => "Email address confirmed",
            Page::Reset => "Your new password is set",
            Page::Lockdown => "Your account is locked",
        }
    }
}

/// The four pages share one lazily loaded view; the path says which.
pub struct MailedRoute {
    outcome: Option<FormOutcome>,
}

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for MailedRoute {
    fn data() -> Self {
        Self { outcome: page_outcome() }
    }

    fn view(this: Self) -> AnyView {
        let page = Page::from_path(&use_location().pathname.get_untracked());
        view! { <Mailed page outcome=this.outcome/> }.into_any()
    }
}

/// What the form sends: the email (forgot, or asking for a new
/// confirmation), or the link's token and a new password.
#[derive(Clone)]
struct Sent {
    page: Page,
    token: String,
    email: String,
    password: String,
}

async fn send(input: Sent) -> Result<(), AppError> {
    match input.page {
        Page::Forgot => {
            parse_email(&input.email)?;
            forgot_password(input.email).await
        }
        Page::Verify if input.token.is_empty() => {
            parse_email(&input.email)?;
            resend_verification(input.email).await
        }
        Page::Verify => verify_email(input.token).await,
        Page::Reset => {
            parse_new_password(&input.password)?;
            reset_password(input.token, input.password).await
        }
        Page::Lockdown => lockdown(input.token).await,
    }
}

#[component]
fn Mailed(page: Page, outcome: Option<FormOutcome>) -> impl IntoView {
    let query = use_query_map();
    let from_query = |name: &str| query.with_untracked(|q| q.get(name)).unwrap_or_default();
    let kept = |name: &str| outcome.as_ref().map(|o| o.field(name)).filter(|v| !v.is_empty());
    let token = kept("token").unwrap_or_else(|| from_query("token"));
    let email = RwSignal::new(kept("email").unwrap_or_default());
    let password = RwSignal::new(String::new());
    let action = Action::new(|input: &Sent| send(input.clone()));
    // Done: after a post without JavaScript the server sends the browser to
    // `?done=1`; with it, the action's answer says so.
    let done_before = from_query("done") == "1";
    let done = Signal::derive(move || done_before || matches!(action.value().get(), Some(Ok(()))));
    // The form that had focus is gone once it did its job: focus goes to
    // the heading that now says what happened (not to the page's body).
    Effect::new(move |_| {
        if matches!(action.value().get(), Some(Ok(()))) {
            focus_later("main h1");
        }
    });
    let error = form_error(action, &outcome, Intent::Mailed);
    let has_token = !token.is_empty();
    let submit = {
        let token = token.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if action.pending().get_untracked() {
                return;
            }
            action.dispatch(Sent {
                page,
                token: token.clone(),
                email: email.get_untracked(),
                password: password.get_untracked(),
            });
        }
    };
    let asking_again = page == Page::Verify && !has_token;
    // A link is read before anything is typed: a dead one says so at once
    // (and what is true, if it did its job), with the way on.
    let kind = match page {
        Page::Reset => "reset",
        Page::Verify => "verify",
        Page::Lockdown => "lockdown",
        Page::Forgot => "",
    };
    let checked = (has_token && !kind.is_empty() && !done_before).then(|| {
        let token = token.clone();
        Resource::new(|| (), move |_| check_link(kind.to_owned(), token.clone()))
    });
    let title = if asking_again { "Confirm your email address" } else { page.title() };
    let heading = move || if done.get() { page.done_title(asking_again) } else { title };
    let form = move || {
        let token = token.clone();
        let submit = submit.clone();
        let (intro, fields, label, busy, class): (&str, AnyView, &str, &str, &str) = match page {
            Page::Forgot => (
                "Type the email address of your account. If an account has it, we email a link to set a new \
                 password. The link does not log you in: two-factor authentication stays on.",
                view! {
                    <TextField label="Email" id="email" name="email" input=InputKind::email("username") value=email
                        error=field_message(error, "email")/>
                }
                .into_any(),
                "Email me a link",
                "Sending…",
                "btn btn-primary",
            ),
            Page::Verify if asking_again => (
                "Lost the message that confirms your address, or its link expired? Type the address and we send a \
                 new one.",
                view! {
                    <TextField label="Email" id="email" name="email" input=InputKind::email("username") value=email
                        error=field_message(error, "email")/>
                }
                .into_any(),
                "Send it again",
                "Sending…",
                "btn btn-primary",
            ),
            Page::Verify => (
                "Confirm that this email address is yours.",
                ().into_any(),
                "Confirm my email address",
                "Confirming…",
                "btn btn-primary",
            ),
            Page::Reset => (
                "Choose a new password for your account. Every session of the account ends; then log in with the \
                 new password and, if two-factor authentication is on, your code or passkey as usual.",
                view! {
                    <TextField label="New password" id="newPassword" name="newPassword" input=InputKind::new_password()
                        value=password error=field_message(error, "newPassword")
                        hint="12 to 128 characters. A few unusual words make a strong one."/>
                }
                .into_any(),
                "Set the new password",
                "Saving…",
                "btn btn-primary",
            ),
            Page::Lockdown => (
                "Use this if a security notice told you of something you did not do. Every session of your account \
                 ends at once, on every device and on the apps behind this portal, and nobody can log in until the \
                 password is reset through a link we email you now.",
                ().into_any(),
                "Lock my account",
                "Locking…",
                "btn btn-danger",
            ),
        };
        let needs_token = matches!(page, Page::Reset | Page::Lockdown);
        if needs_token && token.is_empty() {
            return view! {
                <p class="muted">"This page opens from a link in an email we sent you. Open the link from the message."</p>
            }
            .into_any();
        }
        view! {
            <p class="muted">{intro}</p>
            <form method="post" action=page.path() on:submit=submit novalidate>
                <IntentField intent=Intent::Mailed/>
                {(!token.is_empty()).then(|| view! { <input type="hidden" name="token" value=token.clone()/> })}
                {fields}
                <ErrorNote error=error busy=action.pending()/>
                <SubmitButton pending=action.pending() label=label busy_label=busy class=class/>
            </form>
        }
        .into_any()
    };
    // What happened, in a live region drawn with the page (empty until
    // then), so a screen reader announces the text when it is set.
    let done_text = move || {
        done.get().then_some(match page {
            Page::Forgot => {
                "If an account has that address, we emailed it a link to set a new password. It works for 30 \
                 minutes. No message after a few minutes? Look in the spam folder, or ask again."
            }
            Page::Verify if asking_again => {
                "If an account has that address and it is not confirmed yet, we emailed it a new link."
            }
            Page::Verify => "Your email address is confirmed. Thank you.",
            Page::Reset => {
                "Your new password is set and every session of your account has ended. Log in with it (and your \
                 code or passkey, if two-factor authentication is on)."
            }
            Page::Lockdown => "Your account is locked and every session has ended, on every device.",
        })
    };
    // After a lockdown, log-in is refused until the password is reset:
    // the reset is the way on, not a log-in.
    let finished = move || match page {
        Page::Lockdown => view! {
            <p>
                "Next, set a new password: open the message we just emailed you and use its link (it works for 30 \
                 minutes). Until then nobody can log in, you included."
            </p>
            // A full page load: the next page reads its own address afresh.
            <p class="actions">
                <a href="/forgot-password" class="btn btn-primary" rel="external" data-testid="lockdown-next">
                    "Set a new password"
                </a>
            </p>
            <p class="muted">
                "No message, or its link expired? The button mails you a fresh one. Once the new password is set, \
                 log in and open the security page: it marks the log-in that set this off and says what to check."
            </p>
        }
        .into_any(),
        _ => view! {
            <p class="actions"><A href="/login" attr:class="btn btn-primary">"Go to log in"</A></p>
        }
        .into_any(),
    };
    let checked_form = move || match checked {
        None => form().into_any(),
        Some(checked) => {
            let form = form.clone();
            view! {
                <Suspense fallback=|| view! { <p class="muted loading">"Checking the link…"</p> }>
                    {move || {
                        let form = form.clone();
                        Suspend::new(async move {
                            match checked.await {
                                Ok(c) if !c.live => dead_link(c),
                                _ => form(),
                            }
                        })
                    }}
                </Suspense>
            }
            .into_any()
        }
    };
    let bad_link = Signal::derive(move || {
        error.get().is_some_and(|e| e.message.contains("link is not valid")) && page != Page::Forgot
    });
    view! {
        <Title text=title/>
        <section class="card narrow">
            <h1 tabindex="-1">{heading}</h1>
            <div role="status" data-testid="mailed-status">
                {move || done_text().map(|text| view! { <p class="alert alert-success">{text}</p> })}
            </div>
            <Show when=move || done.get() fallback=checked_form>
                {finished}
            </Show>
            <Show when=move || bad_link.get()>
                <p class="switch">
                    {match page {
                        Page::Verify => view! { <A href="/verify-email">"Send a new confirmation link"</A> }.into_any(),
                        _ => view! { <A href="/forgot-password">"Ask for a new password link"</A> }.into_any(),
                    }}
                </p>
            </Show>
            <Show when=move || page == Page::Forgot && !done.get()>
                <p class="switch"><A href="/login">"Back to log in"</A></p>
            </Show>
        </section>
    }
}

/// A link that cannot be used: what is true, and the one way on as the
/// primary action.
pub(super) fn dead_link(check: LinkCheck) -> AnyView {
    let class = if check.done { "alert alert-info" } else { "alert alert-error" };
    view! {
        <p class=class role="status" data-testid="link-state">{check.message}</p>
        // A full page load: the next page reads its own address afresh.
        <p class="actions"><a href=check.next class="btn btn-primary" rel="external">{check.next_label}</a></p>
    }
    .into_any()
}
