//! Changing the password, and logging out everywhere.

use super::*;

#[component]
pub(super) fn PasswordAndSessions(changed: RwSignal<u32>) -> impl IntoView {
    let outcome = posted();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let changed_before = outcome.as_ref().is_some_and(|o| o.shown == Some(Shown::PasswordChanged));
    let done = RwSignal::new(changed_before);
    let change = Action::new(|(current, new): &(String, String)| {
        let (current, new) = (current.clone(), new.clone());
        async move {
            parse_new_password(&new)?;
            with_refresh(|| change_password(current.clone(), new.clone())).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = change.value().get() {
            current.set(String::new());
            new.set(String::new());
            done.set(true);
            changed.update(|n| *n += 1);
        }
    });
    let change_error = form_error(change, &outcome, Intent::ChangePassword);
    let open = outcome.as_ref().is_some_and(|o| o.intent == Intent::ChangePassword);
    let everywhere = Action::new(|_: &()| with_refresh(log_out_everywhere));
    let everywhere_error = form_error(everywhere, &outcome, Intent::Everywhere);
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = everywhere.value().get() {
            navigate("/login", Default::default());
        }
    });
    let submit_change = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !change.pending().get_untracked() {
            done.set(false);
            change.dispatch((current.get_untracked(), new.get_untracked()));
        }
    };
    let submit_everywhere = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !everywhere.pending().get_untracked() {
            everywhere.dispatch(());
        }
    };
    view! {
        <section class="card" id="password">
            <h2>"Password and sessions"</h2>
            <details class="panel" open=open>
                <summary>"Change password"</summary>
                <form method="post" action=move || format!("{}#password", security_action()()) novalidate
                    on:submit=submit_change>
                    <IntentField intent=Intent::ChangePassword/>
                    <TextField label="Current password" id="current-password" name="currentPassword"
                        input=InputKind::password("current-password") value=current
                        error=field_message(change_error, "currentPassword")/>
                    <TextField label="New password" id="new-password" name="newPassword" input=InputKind::new_password()
                        value=new error=field_message(change_error, "newPassword")
                        hint="12 to 128 characters. Your other devices will be logged out."/>
                    <ErrorNote error=change_error busy=change.pending()/>
                    <Show when=move || done.get()>
                        <p class="alert alert-ok" role="status">"Password changed. Other devices were logged out."</p>
                    </Show>
                    <SubmitButton pending=change.pending() label="Change password" busy_label="Saving…"/>
                </form>
            </details>
            <div class="actions">
                // Leads to the log-in page: no anchor to land at.
                <form class="inline" method="post" action=security_action() on:submit=submit_everywhere>
                    <IntentField intent=Intent::Everywhere/>
                    <SubmitButton pending=everywhere.pending() label="Log out everywhere" busy_label="Logging out…" class="btn"/>
                </form>
                <LogOutButton/>
            </div>
            <ErrorNote error=everywhere_error busy=everywhere.pending()/>
        </section>
    }
}
