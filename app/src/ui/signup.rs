//! Sign-up: name, email, password. Fields are checked in the browser with
//! the same newtypes the server uses, then the account is created and the
//! new user is logged in.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{User, log_in, parse_registration, register};
use crate::error::AppError;

use super::{ErrorNote, SubmitButton, action_error, field_error};

#[derive(Clone)]
struct SignUp {
    name: String,
    email: String,
    password: String,
}

async fn sign_up(input: SignUp) -> Result<User, AppError> {
    // Same parser as the server: field errors show without a round trip.
    parse_registration(&input.email, &input.name, &input.password)?;
    let user = register(input.email.clone(), input.name, input.password.clone()).await?;
    log_in(input.email, input.password).await?;
    Ok(user)
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let action = Action::new(|input: &SignUp| sign_up(input.clone()));
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            navigate("/security", Default::default());
        }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        action.dispatch(SignUp { name: name.get(), email: email.get(), password: password.get() });
    };
    let general = Signal::derive(move || action_error(action).get().filter(|e| e.fields.is_empty()));
    view! {
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <p class="muted">"You can turn on two-factor authentication right after."</p>
            <form on:submit=on_submit novalidate>
                <Field label="Name" id="name" error=field_error(action, "name")>
                    <input id="name" name="name" type="text" autocomplete="name" required bind:value=name/>
                </Field>
                <Field label="Email" id="email" error=field_error(action, "email")>
                    <input id="email" name="email" type="email" autocomplete="email" required bind:value=email/>
                </Field>
                <Field label="Password" id="password" error=field_error(action, "password")>
                    <input id="password" name="password" type="password" autocomplete="new-password"
                        minlength="12" maxlength="128" required aria-describedby="password-hint" bind:value=password/>
                    <small id="password-hint" class="hint">"12 to 128 characters. A few unrelated words work well."</small>
                </Field>
                <ErrorNote error=general/>
                <SubmitButton pending=action.pending() label="Create account" busy_label="Creating account…"/>
            </form>
            <p class="switch">"Already have an account? " <A href="/login">"Log in"</A></p>
        </section>
    }
}

/// A labelled form field with its error message under it.
#[component]
pub fn Field(
    label: &'static str,
    id: &'static str,
    #[prop(into)] error: Signal<Option<String>>,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="field" class:has-error=move || error.get().is_some()>
            <label for=id>{label}</label>
            {children()}
            <Show when=move || error.get().is_some()>
                <p class="field-error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </div>
    }
}
