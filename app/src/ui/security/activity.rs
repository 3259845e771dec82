//! The recent security activity, changes kept apart from attempts.

use super::*;

#[component]
pub(super) fn RecentActivity(changed: RwSignal<u32>) -> impl IntoView {
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
pub(super) fn ActivityRow(event: ActivityEvent) -> impl IntoView {
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
pub(super) fn short_agent(ua: &str) -> String {
    for (needle, name) in
        [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl")]
    {
        if ua.contains(needle) {
            return name.to_owned();
        }
    }
    ua.chars().take(40).collect()
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
