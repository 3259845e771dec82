//! `/consent`: an app asks to sign the person in for the first time (or
//! for more than before). The page says which app and what it would
//! know; Allow or Deny is a plain form post to `/oidc/consent`, which
//! sends the browser back to the app either way. It works the same with
//! and without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{ConsentView, User, describe_consent};

use super::session::{RequireUser, with_refresh};

/// The page, drawn by `OccasionalRoute` (a lazily loaded chunk: most
/// visitors never see it).
pub(super) fn page() -> AnyView {
    view! { <RequireUser children=|u| view! { <Consent user=u/> }.into_any()/> }.into_any()
}

/// What a scope lets the app know, in words.
fn scope_words(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Who you are: an identifier for your account (not your email address)",
        "profile" => "Your name",
        "email" => "Your email address, and whether you confirmed it",
        "groups" => "The groups you are in",
        "offline_access" => "Keep you signed in to the app for as long as you stay logged in here",
        _ => return None,
    })
}

#[component]
fn Consent(user: User) -> impl IntoView {
    let query = use_query_map();
    let request = Memo::new(move |_| query.read().to_query_string());
    let view_of = Resource::new(move || request.get(), |q| with_refresh(move || describe_consent(q.clone())));
    view! {
        <Title text="Allow access"/>
        <section class="card narrow">
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || view_of.get().map(|answer| match answer {
                    Ok(view) => view! { <Ask view email=user.email.clone()/> }.into_any(),
                    Err(e) => view! {
                        <h1 tabindex="-1">"This sign-in request cannot be answered"</h1>
                        <p class="alert alert-error" role="alert">{e.message}</p>
                        <p><a href="/">"Go to your account"</a></p>
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Ask(view: ConsentView, email: String) -> impl IntoView {
    let query = use_query_map();
    // Every parameter of the request goes back with the answer.
    let fields =
        query.read_untracked().latest_values().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let items = view.scopes.iter().filter_map(|s| scope_words(s)).map(|w| view! { <li>{w}</li> }).collect_view();
    view! {
        <p class="eyebrow">"Sign in to an app"</p>
        <h1 tabindex="-1" data-testid="consent-app">{format!("Allow {} to sign you in?", view.client_name)}</h1>
        <p>"You are logged in as " <strong>{email}</strong> ". " {view.client_name.clone()} " will know:"</p>
        <ul class="facts-list" data-testid="consent-scopes">{items}</ul>
        <p class="muted">"You are asked once. You can take this back later on your security page."</p>
        <form method="post" action="/oidc/consent" class="actions">
            {fields.into_iter().map(|(name, value)| view! { <input type="hidden" name=name value=value/> }).collect_view()}
            <button type="submit" class="btn btn-primary" name="decision" value="allow">"Allow"</button>
            <button type="submit" class="btn" name="decision" value="deny">"Deny"</button>
        </form>
    }
}
