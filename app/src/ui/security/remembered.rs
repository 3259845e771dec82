//! Remembered browsers: those where the person ticked "Don't ask again on
//! this browser" at the code step, each with "Forget", and "Forget all".
//! A forgotten browser is asked for a second factor at its next log-in.
//! Real POSTs to /security, acted on in place once hydrated; the card is
//! left out while no browser is remembered.

use super::*;
use crate::api::{RememberedBrowserView, fetch_remembered_browsers, forget_remembered_browsers};

#[component]
pub(super) fn RememberedBrowsers(changed: RwSignal<u32>) -> impl IntoView {
    let outcome = posted();
    let learned = use_context::<crate::ui::session::TimeZoneLearned>();
    let list =
        Resource::new(move || (changed.get(), learned.map(|l| l.0.get())), |_| with_refresh(fetch_remembered_browsers));
    let said = RwSignal::new(match outcome.as_ref().and_then(|o| o.shown.clone()) {
        Some(Shown::BrowsersForgotten(message)) => message,
        _ => String::new(),
    });
    // One browser's id, or None for all of them.
    let forget = Action::new(|id: &Option<String>| {
        let id = id.clone();
        async move {
            let all = id.is_none().then_some(true);
            with_refresh(|| forget_remembered_browsers(id.clone(), all)).await
        }
    });
    let pressed = RwSignal::new(None::<Option<String>>);
    let error = form_error(forget, &outcome, Intent::ForgetBrowsers);
    Effect::new(move |_| match forget.value().get() {
        Some(Ok(done)) => {
            said.set(done.message);
            changed.update(|n| *n += 1);
            // The list reloads and the card is drawn again: its new heading.
            crate::ui::focus_when_redrawn("#remembered-heading");
        }
        Some(Err(e)) if e.status() == 404 => changed.update(|n| *n += 1),
        _ => {}
    });
    let action = security_action();
    let button = move |id: Option<String>, label: String, words: &'static str| {
        let busy = {
            let id = id.clone();
            Signal::derive(move || forget.pending().get() && pressed.with(|p| p.as_ref() == Some(&id)))
        };
        let submit = {
            let id = id.clone();
            move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                if !forget.pending().get_untracked() {
                    said.set(String::new());
                    pressed.set(Some(id.clone()));
                    forget.dispatch(id.clone());
                }
            }
        };
        view! {
            <form class="inline" method="post" on:submit=submit action=move || format!("{}#remembered", action())>
                <IntentField intent=Intent::ForgetBrowsers/>
                {match id {
                    Some(id) => view! { <input type="hidden" name="browser" value=id/> }.into_any(),
                    None => view! { <input type="hidden" name="all" value="1"/> }.into_any(),
                }}
                <button type="submit" class="btn" aria-label=label aria-disabled=move || busy.get().then_some("true")>
                    <Show when=move || busy.get() fallback=move || words>
                        <span class="spinner" aria-hidden="true"></span>
                        "Forgetting…"
                    </Show>
                </button>
            </form>
        }
    };
    let row = move |b: RememberedBrowserView| {
        let place = match &b.ip {
            Some(ip) => format!("Remembered from {ip}"),
            None => "Remembered from an unknown address".to_owned(),
        };
        let label = if b.current { "Forget this browser".to_owned() } else { format!("Forget {}", b.browser) };
        view! {
            <li data-testid="remembered-browser">
                <div class="log-in-what">
                    <strong class="log-in-browser">{b.browser.clone()}</strong>
                    {b.current.then(|| view! { " " <span class="badge badge-on">"This browser"</span> })}
                    <p class="meta">{place}</p>
                    <p class="meta">
                        <span class="log-in-seen">"Remembered " {b.created_when.clone()}</span>
                        " · "
                        <span class="log-in-seen">"last used " {b.last_used_when.clone()}</span>
                        " · "
                        <span class="log-in-seen">"until " {b.expires_when.clone()}</span>
                    </p>
                </div>
                {button(Some(b.id.clone()), label, "Forget")}
            </li>
        }
    };
    view! {
        <Transition fallback=|| ()>
            {move || list.get().map(|result| match result {
                Ok(browsers) if browsers.is_empty() && said.get_untracked().is_empty() => ().into_any(),
                Ok(browsers) => {
                    let several = browsers.len() > 1;
                    view! {
                        <section class="card" id="remembered" data-testid="remembered-browsers" aria-labelledby="remembered-heading">
                            <h2 id="remembered-heading" tabindex="-1">"Remembered browsers"</h2>
                            <p class="muted">"These browsers are not asked for a second factor after your password. Forget any you do not recognise or no longer use. Changing your password or your second factors forgets them all."</p>
                            <p class="log-ins-said" class:alert=move || !said.get().is_empty() class:alert-ok=move || !said.get().is_empty() aria-live="polite" aria-atomic="true" data-testid="remembered-said">{move || said.get()}</p>
                            <ErrorNote error busy=forget.pending()/>
                            <ul class="log-in-list">{browsers.into_iter().map(row).collect_view()}</ul>
                            {several.then(|| view! {
                                <div class="actions">{button(None, "Forget all remembered browsers".to_owned(), "Forget all")}</div>
                            })}
                        </section>
                    }.into_any()
                }
                Err(e) => view! { <p class="alert alert-error" role="alert">{e.message}</p> }.into_any(),
            })}
        </Transition>
    }
}
