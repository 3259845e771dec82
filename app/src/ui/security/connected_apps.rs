//! Connected apps: the apps the person signs in to through the portal
//! (OpenID Connect), what each may know and when it last signed them in,
//! each with "Take back access". Each button is a real POST to /security;
//! once hydrated it acts in place and a status line says what happened.
//! The card is left out while no app is connected.

use super::*;
use crate::api::{ConnectedApp, fetch_connected_apps, revoke_app};

/// A scope in a few words, for the list.
fn scope_words(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "profile" => "your name",
        "email" => "your email address",
        "groups" => "your groups",
        "offline_access" => "staying signed in",
        _ => return None,
    })
}

#[component]
pub(super) fn ConnectedApps(changed: RwSignal<u32>) -> impl IntoView {
    let outcome = posted();
    let list = Resource::new(move || changed.get(), |_| with_refresh(fetch_connected_apps));
    let said = RwSignal::new(match outcome.as_ref().and_then(|o| o.shown.clone()) {
        Some(Shown::AppRevoked(name)) => format!("{name} can no longer sign you in without asking."),
        _ => String::new(),
    });
    let revoke = Action::new(|id: &String| {
        let id = id.clone();
        async move { with_refresh(|| revoke_app(id.clone())).await }
    });
    let pressed = RwSignal::new(None::<String>);
    let error = form_error(revoke, &outcome, Intent::RevokeApp);
    Effect::new(move |_| match revoke.value().get() {
        Some(Ok(done)) => {
            said.set(done.message);
            changed.update(|n| *n += 1);
            focus_later("#connected-apps-heading");
        }
        Some(Err(e)) if e.status() == 404 => changed.update(|n| *n += 1),
        _ => {}
    });
    let action = security_action();
    let row = move |app: ConnectedApp| {
        let id = app.client_id.clone();
        let busy = {
            let id = id.clone();
            Signal::derive(move || revoke.pending().get() && pressed.with(|p| p.as_ref() == Some(&id)))
        };
        let submit = {
            let id = id.clone();
            move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                if !revoke.pending().get_untracked() {
                    said.set(String::new());
                    pressed.set(Some(id.clone()));
                    revoke.dispatch(id.clone());
                }
            }
        };
        let knows: Vec<&str> = app.scopes.iter().filter_map(|s| scope_words(s)).collect();
        let knows = if knows.is_empty() {
            "Knows who you are.".to_owned()
        } else {
            format!("Knows who you are, and {}.", knows.join(", "))
        };
        let when = match app.signed_in_at {
            Some(at) => format!("Signed in {} UTC", format_utc(at)),
            None => "Not signed in now".to_owned(),
        };
        let label = format!("Take back access of {}", app.name);
        view! {
            <li data-testid="connected-app">
                <div class="log-in-what">
                    <strong class="log-in-browser">{app.name.clone()}</strong>
                    <p class="meta">{knows}</p>
                    <p class="meta">{when}</p>
                </div>
                <form class="inline" method="post" on:submit=submit action=move || format!("{}#connected-apps", action())>
                    <IntentField intent=Intent::RevokeApp/>
                    <input type="hidden" name="app" value=id.clone()/>
                    <button type="submit" class="btn" aria-label=label aria-disabled=move || busy.get().then_some("true")>
                        <Show when=move || busy.get() fallback=|| "Take back access">
                            <span class="spinner" aria-hidden="true"></span>
                            "Taking back…"
                        </Show>
                    </button>
                </form>
            </li>
        }
    };
    view! {
        <Transition fallback=|| ()>
            {move || list.get().map(|result| match result {
                Ok(apps) if apps.is_empty() && said.get_untracked().is_empty() => ().into_any(),
                Ok(apps) => view! {
                    <section class="card" id="connected-apps" data-testid="connected-apps" aria-labelledby="connected-apps-heading">
                        <h2 id="connected-apps-heading" tabindex="-1">"Connected apps"</h2>
                        <p class="muted">"Apps you sign in to with this account. Taking back an app's access ends its sign-ins; it asks you again next time."</p>
                        <p class="log-ins-said" class:alert=move || !said.get().is_empty() class:alert-ok=move || !said.get().is_empty() aria-live="polite" aria-atomic="true" data-testid="connected-apps-said">{move || said.get()}</p>
                        <ErrorNote error busy=revoke.pending()/>
                        <ul class="log-in-list">{apps.into_iter().map(row).collect_view()}</ul>
                    </section>
                }.into_any(),
                Err(e) => view! { <p class="alert alert-error" role="alert">{e.message}</p> }.into_any(),
            })}
        </Transition>
    }
}
