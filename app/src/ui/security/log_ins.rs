//! Where you're logged in: the person's live log-ins (browser, address,
//! first and last seen, this browser marked), each with its own "Log out".
//! Each button is a real POST to /security; once hydrated it ends the
//! log-in in place, the row goes and a status line, drawn beforehand so
//! screen readers hear the change, says which one ended.

use super::*;
use crate::api::{LogInView, end_log_in, fetch_log_ins};

#[component]
pub(super) fn LogIns(changed: RwSignal<u32>) -> impl IntoView {
    let outcome = posted();
    // A zone learned after the page was drawn rewrites the times.
    let learned = use_context::<crate::ui::session::TimeZoneLearned>();
    let list = Resource::new(move || (changed.get(), learned.map(|l| l.0.get())), |_| with_refresh(fetch_log_ins));
    // Said after a log-in ended: by the server without JavaScript, in
    // place with it.
    let said = RwSignal::new(match outcome.as_ref().and_then(|o| o.shown.clone()) {
        Some(Shown::LogInEnded(browser)) => format!("Logged out {browser}."),
        _ => String::new(),
    });
    // Ended in place: hidden at once, before the list is read again.
    let ended = RwSignal::new(Vec::<String>::new());
    let end = Action::new(|(id, current): &(String, bool)| {
        let (id, current) = (id.clone(), *current);
        async move { with_refresh(|| end_log_in(id.clone())).await.map(|done| (id, current, done)) }
    });
    // The row whose button was pressed last, for its progress.
    let pressed = RwSignal::new(None::<String>);
    let error = form_error(end, &outcome, Intent::EndLogIn);
    let navigate = use_navigate();
    Effect::new(move |_| {
        let Some(result) = end.value().get() else { return };
        match result {
            // This browser's own: a log-out.
            Ok((_, true, _)) => navigate("/login", Default::default()),
            Ok((id, false, done)) => {
                ended.update(|e| e.push(id));
                said.set(done.message);
                changed.update(|n| *n += 1);
                focus_later("#log-ins-heading");
            }
            // Ended meanwhile (elsewhere, or in another tab): the list is
            // read again, the error says so.
            Err(e) if e.status() == 404 => changed.update(|n| *n += 1),
            Err(_) => {}
        }
    });
    let action = security_action();
    let row = move |login: LogInView| {
        let id = login.id.clone();
        let gone = {
            let id = id.clone();
            Signal::derive(move || ended.with(|e| e.contains(&id)))
        };
        let busy = {
            let id = id.clone();
            Signal::derive(move || end.pending().get() && pressed.with(|p| p.as_ref() == Some(&id)))
        };
        let current = login.current;
        let submit = move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if !end.pending().get_untracked() {
                said.set(String::new());
                pressed.set(Some(id.clone()));
                end.dispatch((id.clone(), current));
            }
        };
        let label = if current { "Log out this browser".to_owned() } else { format!("Log out {}", login.browser) };
        let place = match &login.ip {
            Some(ip) => format!("from {ip}"),
            None => "from an unknown address".to_owned(),
        };
        view! {
            <li data-testid="log-in" class:current=current hidden=move || gone.get()>
                <div class="log-in-what">
                    <strong class="log-in-browser">{login.browser.clone()}</strong>
                    {current.then(|| view! { " " <span class="badge badge-on" data-testid="this-browser">"This browser"</span> })}
                    <p class="meta">{place}</p>
                    <p class="meta">
                        <span class="log-in-seen">"First seen " {when(login.created_when.clone(), login.created_at)}</span>
                        " · "
                        <span class="log-in-seen">"last seen " {when(login.last_seen_when.clone(), login.last_seen_at)}</span>
                    </p>
                </div>
                // This browser's own leads to the log-in page: no anchor
                // to land at (a redirect keeps the one posted to).
                <form class="inline" method="post" on:submit=submit
                    action=move || if current { action() } else { format!("{}#log-ins", action()) }>
                    <IntentField intent=Intent::EndLogIn/>
                    <input type="hidden" name="login" value=login.id.clone()/>
                    <button type="submit" class="btn" aria-label=label aria-disabled=move || busy.get().then_some("true")>
                        <Show when=move || busy.get() fallback=|| "Log out">
                            <span class="spinner" aria-hidden="true"></span>
                            "Logging out…"
                        </Show>
                    </button>
                </form>
            </li>
        }
    };
    view! {
        <section class="card" id="log-ins" data-testid="log-ins" aria-labelledby="log-ins-heading">
            <h2 id="log-ins-heading" tabindex="-1">"Where you're logged in"</h2>
            <p class="muted">"Each browser you are logged in with: this one first, then the most recently seen. Log out any you do not recognise or no longer use; to end them all, use Log out everywhere."</p>
            <p class="log-ins-said" class:alert=move || !said.get().is_empty() class:alert-ok=move || !said.get().is_empty() aria-live="polite" aria-atomic="true" data-testid="log-ins-said">{move || said.get()}</p>
            <ErrorNote error busy=end.pending()/>
            <Transition fallback=|| view! { <p class="muted">"Loading your log-ins…"</p> }>
                {move || list.get().map(|result| match result {
                    Ok(logins) => view! {
                        <ul class="log-in-list">{logins.into_iter().map(row).collect_view()}</ul>
                    }.into_any(),
                    Err(e) => view! { <p class="alert alert-error" role="alert">{e.message}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

/// A time as the server wrote it (in the person's zone, or UTC said as
/// such); the UTC of the seconds if it wrote none.
fn when(written: String, at: i64) -> String {
    if written.is_empty() { format!("{} UTC", format_utc(at)) } else { written }
}
