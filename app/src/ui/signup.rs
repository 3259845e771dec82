//! Sign-up: name, email, password. A real POST to /signup that works
//! without JavaScript; once hydrated, fields are checked in the browser with
//! the same newtypes the server uses, then the account is created and the
//! new user is logged in.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{LinkCheck, User, accept_invitation, check_link, log_in, parse_registration, register};
use crate::error::AppError;

use super::outcome::{FormOutcome, Intent, page_outcome};
use super::{
    ErrorNote, InputKind, IntentField, SubmitButton, TextField, field_message, form_error, return_to, with_return_to,
};

#[derive(Clone)]
struct SignUp {
    name: String,
    email: String,
    password: String,
    /// An invitation's token (empty: an open sign-up).
    invite: String,
}

async fn sign_up(input: SignUp) -> Result<User, AppError> {
    // Same parser as the server: field errors show without a round trip.
    parse_registration(&input.email, &input.name, &input.password)?;
    let user = if input.invite.is_empty() {
        register(input.email.clone(), input.name, input.password.clone()).await?
    } else {
        accept_invitation(input.invite, input.email.clone(), input.name, input.password.clone()).await?
    };
    log_in(input.email, input.password).await?;
    Ok(user)
}

/// Whether anyone may sign up here (`SIGNUP`), as the server says.
pub(crate) fn signup_open() -> bool {
    let open = || {
        #[cfg(feature = "ssr")]
        {
            crate::server::app_state().map(|state| state.gate.signup_open).unwrap_or(true)
        }
        #[cfg(not(feature = "ssr"))]
        {
            true
        }
    };
    leptos::prelude::SharedValue::new(open).into_inner()
}

/// Sign-up happens once per person: its view is a lazily loaded chunk (as
/// the security page's), which keeps it out of what every page loads. What
/// the server shared for hydration is read in `data`, which runs before the
/// chunk has arrived, in the order the server read it.
pub struct SignUpRoute {
    outcome: Option<FormOutcome>,
    open: bool,
    /// An invitation's link (`/signup?invite=…`), checked by the server.
    invitation: Option<(String, Resource<Result<LinkCheck, AppError>>)>,
}

#[leptos_router::lazy_route]
impl leptos_router::LazyRoute for SignUpRoute {
    fn data() -> Self {
        let outcome = page_outcome();
        let open = signup_open();
        let kept = outcome.as_ref().map(|o| o.field("invite")).filter(|t| !t.is_empty());
        let invite = kept.unwrap_or_else(|| {
            leptos_router::hooks::use_query_map().with_untracked(|q| q.get("invite")).unwrap_or_default()
        });
        let invitation = (!invite.is_empty()).then(|| {
            let link = invite.clone();
            (invite, Resource::new(|| (), move |_| check_link("invite".into(), link.clone())))
        });
        Self { outcome, open, invitation }
    }

    fn view(this: Self) -> AnyView {
        match this.invitation {
            None => {
                view! { <SignUpPage outcome=this.outcome open=this.open invite=String::new() bound=String::new()/> }
                    .into_any()
            }
            Some((invite, checked)) => {
                let outcome = this.outcome;
                view! {
                    <Suspense fallback=|| view! { <p class="muted loading">"Checking the link…"</p> }>
                        {move || {
                            let (outcome, invite) = (outcome.clone(), invite.clone());
                            Suspend::new(async move {
                                match checked.await {
                                    Ok(c) if c.live => {
                                        view! { <SignUpPage outcome open=true invite bound=c.email/> }.into_any()
                                    }
                                    Ok(c) => view! {
                                        <Title text="Create your account"/>
                                        <section class="card narrow">
                                            <h1 tabindex="-1">"Create your account"</h1>
                                            {super::mailed::dead_link(c)}
                                        </section>
                                    }
                                    .into_any(),
                                    Err(e) => view! { <p class="alert alert-error">{e.message}</p> }.into_any(),
                                }
                            })
                        }}
                    </Suspense>
                }
                .into_any()
            }
        }
    }
}

/// The form; `invite` an invitation's token, `bound` the address it is
/// for (the email box is then filled and fixed).
#[component]
fn SignUpPage(outcome: Option<FormOutcome>, open: bool, invite: String, bound: String) -> impl IntoView {
    let kept = |name: &str| outcome.as_ref().map(|o| o.field(name)).unwrap_or_default();
    let name = RwSignal::new(kept("name"));
    let email = RwSignal::new(if bound.is_empty() { kept("email") } else { bound.clone() });
    let token = StoredValue::new(invite.clone());
    let password = RwSignal::new(String::new());
    let action = Action::new(|input: &SignUp| sign_up(input.clone()));
    let navigate = use_navigate();
    // On the way to an app behind the gate: the security page keeps the way back.
    let return_to = return_to();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            navigate(&with_return_to("/security", return_to.get_untracked().as_deref()), Default::default());
        }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if action.pending().get_untracked() {
            return;
        }
        action.dispatch(SignUp {
            name: name.get(),
            email: email.get(),
            password: password.get(),
            invite: token.get_value(),
        });
    };
    let error = form_error(action, &outcome, Intent::SignUp);
    let (invite, fixed) = ((!invite.is_empty()).then_some(invite), !bound.is_empty());
    view! {
        <Title text="Create your account"/>
        <section class="card narrow">
            <h1 tabindex="-1">"Create your account"</h1>
            <Show when=move || open fallback=|| view! {
                <p class="alert alert-info" role="status" data-testid="signup-closed">
                    "New accounts are made by the administrator here. Ask them for one."
                </p>
            }>
            <p class="muted">"You can turn on two-factor authentication right after."</p>
            <form method="post" action=move || with_return_to("/signup", return_to.get().as_deref()) on:submit=on_submit novalidate>
                <IntentField intent=Intent::SignUp/>
                {invite.clone().map(|v| view! { <input type="hidden" name="invite" value=v/> })}
                <TextField label="Name" id="name" name="name" input=InputKind::text("name") value=name
                    error=field_message(error, "name")/>
                <TextField label="Email" id="email" name="email" input=InputKind::email("email") value=email
                    error=field_message(error, "email") readonly=fixed/>
                <TextField label="Password" id="password" name="password" input=InputKind::new_password() value=password
                    error=field_message(error, "password") hint="12 to 128 characters, hard to guess: a few unrelated words work well."/>
                <ErrorNote error=error busy=action.pending()/>
                <SubmitButton pending=action.pending() label="Create account" busy_label="Creating account…"/>
            </form>
            </Show>
            <p class="switch">"Already have an account? " <A href=move || with_return_to("/login", return_to.get().as_deref())>"Log in"</A></p>
        </section>
    }
}
