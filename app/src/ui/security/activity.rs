//! The recent security activity, changes kept apart from attempts. Times
//! come written by the server in the person's time zone (UTC, said as
//! such, until their browser has told it). A lockdown names the event
//! that set it off, that event is marked where it appears, and the card
//! says what to do next.

use super::*;
use crate::api::LockdownAbout;
use crate::ui::session::TimeZoneLearned;

/// After a lockdown the card says what to do next while the lockdown is
/// among this many newest changes (it then makes way for what came after).
const NEXT_STEPS_WHILE_AMONG: usize = 5;

#[component]
pub(super) fn RecentActivity(changed: RwSignal<u32>) -> impl IntoView {
    // A zone learned after the page was drawn rewrites the times.
    let learned = use_context::<TimeZoneLearned>();
    let events = Resource::new(move || (changed.get(), learned.map(|l| l.0.get())), |_| with_refresh(fetch_activity));
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
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || events.get().map(|r| match r {
                    Ok(a) => {
                        let zone = match &a.time_zone {
                            Some(zone) => format!("Times are in your time zone, {zone}."),
                            None => "Times are UTC.".to_owned(),
                        };
                        let lockdown = a
                            .changes
                            .iter()
                            .take(NEXT_STEPS_WHILE_AMONG)
                            .find(|e| e.kind == "locked_down")
                            .cloned();
                        view! {
                            {lockdown.map(|e| view! { <AfterLockdown event=e/> })}
                            <p class="muted" data-testid="activity-zone">
                                "Changes to your account's protection, then log-ins and failed attempts. " {zone}
                            </p>
                            <h3 class="activity-heading">"Security changes"</h3>
                            {list(a.changes, "changes")}
                            <h3 class="activity-heading">"Log-ins and attempts"</h3>
                            {list(a.events, "activity")}
                        }
                        .into_any()
                    }
                    Err(e) => view! { <p class="alert alert-error" role="alert">{e.message}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

/// "Chrome on Linux from 203.0.113.5, 6 Dec 2026, 14:02 CET".
fn cause_words(about: &LockdownAbout) -> String {
    match &about.ip {
        Some(ip) => format!("{} from {ip}, {}", about.browser, about.when),
        None => format!("{}, {}", about.browser, about.when),
    }
}

/// What to do after a lockdown, once the password is new again.
#[component]
fn AfterLockdown(event: ActivityEvent) -> impl IntoView {
    let when = if event.when.is_empty() { format!("{} UTC", format_utc(event.at)) } else { event.when.clone() };
    let cause = event.about.as_ref().map(|about| {
        view! {
            " It was set off by our notice about " {about.what.clone()} ": "
            <strong>{cause_words(about)}</strong> ", marked below."
        }
    });
    view! {
        <div class="after-lockdown" data-testid="after-lockdown">
            <h3>"After your lockdown"</h3>
            <p>"You locked your account on " {when} "." {cause}</p>
            <p>"What to do next:"</p>
            <ul>
                <li>"If you used this account's old password anywhere else, change it there too, and check those accounts for anything you did not do."</li>
                <li>"Look over your passkeys and two-factor settings on this page, and remove anything you do not recognise."</li>
                <li>"Check the log-ins below; anything you do not recognise, tell your administrator."</li>
            </ul>
        </div>
    }
}

#[component]
pub(super) fn ActivityRow(event: ActivityEvent) -> impl IntoView {
    let detail = [event.ip.clone(), event.user_agent.as_deref().map(short_agent)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    let when = if event.when.is_empty() { format!("{} UTC", format_utc(event.at)) } else { event.when.clone() };
    let about = event.about.as_ref().map(|about| {
        view! {
            <span class="cause" data-testid="lockdown-cause">
                "Locked down from this notice: " {cause_words(about)}
            </span>
        }
    });
    let set_off = event.set_off_lockdown.then(|| {
        view! { <span class="badge badge-off set-off" data-testid="set-off-lockdown">"This set off your lockdown"</span> }
    });
    view! {
        <li class:warning=event.warning class=("set-off-row", event.set_off_lockdown)>
            <span class="what">{event.label.clone()} " " {set_off}</span>
            <span class="when">{when}</span>
            {about}
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
