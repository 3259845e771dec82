//! `/admin`: the administrators' page. `/admin` lists people (a search by
//! email or name, a group, an order, pages of 50); `/admin?person=ID` is one
//! person's account: groups, factors, live log-ins and activity, with the
//! changes an administrator may make; `/admin?view=activity` is everyone's
//! audit trail, filtered, with its CSV; `?view=groups` the groups,
//! `?view=invitations` the invitations, `?view=apps` the OpenID apps,
//! `?view=rules` the gate's access rules with "who may reach this URL?",
//! and `?view=overview` how things stand. The search is a GET form; every
//! change is a POST to /admin (drawn again with what was done, without
//! JavaScript), done in place once hydrated. When the administrator's
//! log-in is older than 5 minutes, each change carries a code from their
//! app. Only members of ADMIN_GROUP with two factors on get past the
//! server; anyone else sees why.

use leptos::prelude::*;
use leptos_meta::{Stylesheet, Title};
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::api::{
    Done, User, admin_act, admin_app, admin_group, admin_invitation, fetch_admin_activity, fetch_apps, fetch_groups,
    fetch_invitations, fetch_overview, fetch_people, fetch_person, fetch_rules, revoke_invitation,
};
use crate::error::AppError;
use crate::wire::admin::{
    ActivityFilter, ActivityPage, AppLine, AppSettings, AppsView, GroupsView, InvitationsView, Overview, PeoplePage,
    PersonLine, PersonView, RulesView,
};

use super::outcome::{FormOutcome, Intent};
use super::session::{RequireUser, with_refresh};
use super::{ErrorNote, IntentField, focus_later};

/// The page's post outcome, for the components inside `RequireUser`.
#[derive(Clone)]
struct Posted(Option<FormOutcome>);

/// The page, drawn by `OccasionalRoute` (a lazily loaded chunk: few
/// visitors are administrators) with the outcome of the form posted, if
/// any.
pub(super) fn page(outcome: Option<FormOutcome>) -> AnyView {
    provide_context(Posted(outcome));
    view! {
            <Title text="Admin"/>
            <Stylesheet id="admin-css" href="/admin.css"/>
            <RequireUser children=|u| view! { <Admin user=u/> }.into_any()/>
    }
    .into_any()
}

#[component]
fn Admin(user: User) -> impl IntoView {
    let query = use_query_map();
    let person = Memo::new(move |_| query.read().get("person").and_then(|p| p.trim().parse::<i64>().ok()));
    let _ = user;
    let section = Memo::new(move |_| query.read().get("view").unwrap_or_default());
    move || match (person.get(), section.read().as_str()) {
        (Some(id), _) => view! { <Person id/> }.into_any(),
        (None, "activity") => view! { <Activity/> }.into_any(),
        (None, "groups") => view! { <Groups/> }.into_any(),
        (None, "invitations") => view! { <Invitations/> }.into_any(),
        (None, "apps") => view! { <Apps/> }.into_any(),
        (None, "overview") => view! { <OverviewPage/> }.into_any(),
        (None, "rules") => view! { <RulesPage/> }.into_any(),
        _ => view! { <People/> }.into_any(),
    }
}

/// A refusal of the page itself: not an administrator, or a failure.
fn refused(e: AppError) -> AnyView {
    let forbidden = e.status() == 403;
    let (title, back) = match e.status() {
        403 => ("Administrators only", ("/", "Go to your account")),
        404 => ("No such person", ("/admin", "Back to people")),
        _ => ("The page could not be loaded", ("/", "Go to your account")),
    };
    view! {
        <h1 tabindex="-1">{title}</h1>
        <p class="alert alert-error" role="alert" data-testid="admin-refused">{e.message}</p>
        {forbidden.then(|| view! { <p class="muted">"Ask an administrator to add you."</p> })}
        <p><a href=back.0>{back.1}</a></p>
    }
    .into_any()
}

#[component]
fn People() -> impl IntoView {
    let query = use_query_map();
    let params = Memo::new(move |_| {
        let q = query.read();
        (
            q.get("search").unwrap_or_default(),
            q.get("group").unwrap_or_default(),
            q.get("order").unwrap_or_default(),
            q.get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1),
        )
    });
    let list = Resource::new(
        move || params.get(),
        |(search, group, order, page)| {
            with_refresh(move || fetch_people(search.clone(), group.clone(), order.clone(), Some(page)))
        },
    );
    let (search, group, order, _) = params.get_untracked();
    view! {
        <section class="card admin" aria-labelledby="people-heading">
            <Sections here="people"/>
            <h1 id="people-heading" tabindex="-1">"People"</h1>
            <Form method="get" action="/admin" attr:class="admin-search" attr:role="search">
                <div class="field">
                    <label for="search">"Email or name"</label>
                    <input id="search" name="search" type="search" value=search autocomplete="off"/>
                </div>
                <div class="field">
                    <label for="group">"Group"</label>
                    <input id="group" name="group" type="text" value=group autocomplete="off" spellcheck="false"/>
                </div>
                <div class="field">
                    <label for="order">"Sort by"</label>
                    <select id="order" name="order">
                        <option value="created" selected=order != "last-log-in">"Newest accounts"</option>
                        <option value="last-log-in" selected=order == "last-log-in">"Latest log-in"</option>
                    </select>
                </div>
                <button type="submit" class="btn btn-primary">"Search"</button>
            </Form>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || list.get().map(|answer| match answer {
                    Ok(page) => view! { <PeopleList page params/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn PeopleList(page: PeoplePage, params: Memo<(String, String, String, i64)>) -> impl IntoView {
    let link = move |to: i64| {
        let (search, group, order, _) = params.get_untracked();
        format!(
            "/admin?search={}&group={}&order={}&page={to}",
            query_escape(&search),
            query_escape(&group),
            query_escape(&order)
        )
    };
    let summary = match page.total {
        0 => "Nobody matches.".to_owned(),
        1 => "1 person.".to_owned(),
        n => format!("{n} people, page {} of {}.", page.page, page.pages),
    };
    view! {
        <p class="muted" aria-live="polite" data-testid="people-summary">{summary}</p>
        <ul class="people" data-testid="people">
            {page.people.into_iter().map(|p| view! { <PersonItem p/> }).collect_view()}
        </ul>
        {pager(page.page, page.pages, link)}
    }
}

/// A query-string value: unreserved characters as they are, the rest
/// percent-encoded (UTF-8).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[component]
fn PersonItem(p: PersonLine) -> impl IntoView {
    let groups = if p.groups.is_empty() { "no groups".to_owned() } else { p.groups.join(", ") };
    view! {
        <li data-testid="person">
            <a class="person-link" href=format!("/admin?person={}", p.id)>
                <strong>{p.name}</strong>
                <span class="person-email">{p.email}</span>
            </a>
            <p class="meta">
                {if p.two_factor {
                    view! { <span class="badge badge-on">"Two factors"</span> }.into_any()
                } else {
                    view! { <span class="badge badge-off">"Password only"</span> }.into_any()
                }}
                {(!p.email_verified).then(|| view! { " " <span class="badge badge-off">"Address not confirmed"</span> })}
                {p.locked.then(|| view! { " " <span class="badge badge-off">"Locked"</span> })}
            </p>
            <p class="meta">{groups} " · joined " {p.created_when} " · last log-in " {p.last_log_in_when}</p>
        </li>
    }
}

/// What a change sends: person, action, argument, code.
type Change = (i64, String, String, String);

#[component]
fn Person(id: i64) -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let account = Resource::new(move || changed.get(), move |_| with_refresh(move || fetch_person(id)));
    let act = Action::new(|(person, action, argument, code): &Change| {
        let (person, action, argument, code) = (*person, action.clone(), argument.clone(), code.clone());
        async move {
            with_refresh(move || {
                admin_act(person, action.clone(), argument.clone(), None, Some(code.clone()).filter(|c| !c.is_empty()))
            })
            .await
        }
    });
    provide_context(act);
    view! {
        <section class="card admin" aria-labelledby="person-heading">
            <Sections here="people"/>
            <Said act changed/>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || account.get().map(|answer| match answer {
                    Ok(view) => view! { <Account view/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Account(view: PersonView) -> impl IntoView {
    let PersonView { id, needs_proof, .. } = view;
    let factors = {
        let mut f = Vec::new();
        if view.app {
            f.push("an authenticator app".to_owned());
        }
        f.extend(view.passkeys.iter().map(|p| format!("the passkey \u{201c}{}\u{201d}", p.name)));
        if f.is_empty() { "none: they log in with the password alone".to_owned() } else { f.join(", ") }
    };
    view! {
        <h1 id="person-heading" tabindex="-1" data-testid="person-name">{view.name.clone()}</h1>
        <p class="person-email">{view.email.clone()}
            {view.is_you.then(|| view! { " " <span class="badge badge-on">"You"</span> })}
            {view.admin.then(|| view! { " " <span class="badge badge-on">"Administrator"</span> })}
        </p>
        {needs_proof.then(|| view! {
            <p class="muted" data-testid="needs-proof">"Your log-in is over 5 minutes old: a change needs a code from your app."</p>
        })}
        <h2>"Account"</h2>
        <dl class="facts">
            <div><dt>"Second factors"</dt><dd data-testid="factors">{factors}</dd></div>
            <div><dt>"Recovery codes left"</dt><dd>{view.recovery_codes_left}</dd></div>
            <div><dt>"Email address"</dt><dd>{if view.email_verified { "confirmed" } else { "not confirmed" }}</dd></div>
            <div><dt>"Locked"</dt><dd>{if view.locked { "yes, until they reset their password by mail" } else { "no" }}</dd></div>
        </dl>
        <div class="admin-actions">
            {view.offers.iter().map(|o| view! {
                <Change id action=o.action.clone() label=o.label.clone() needs_proof danger=o.danger
                    note=o.note.clone() confirm=o.confirm.clone()/>
            }).collect_view()}
        </div>
        {(!view.passkeys.is_empty() && !view.is_you).then(|| view! {
            <h2>"Passkeys"</h2>
            <ul class="groups" data-testid="admin-passkeys">
                {view.passkeys.iter().map(|p| view! {
                    <li>
                        <span>{p.name.clone()}</span>
                        <Change id action="remove-passkey" argument=p.id.clone() label=format!("Remove {}", p.name) needs_proof/>
                    </li>
                }).collect_view()}
            </ul>
        })}
        <h2>"Groups"</h2>
        <ul class="groups" data-testid="groups">
            {view.groups.iter().map(|g| {
                let own_role = view.is_you && *g == view.admin_group;
                view! {
                    <li>
                        <span>{g.clone()}</span>
                        {(!own_role).then(|| view! {
                            <Change id action="remove-group" argument=g.clone() label=format!("Remove from {g}") needs_proof/>
                        })}
                    </li>
                }
            }).collect_view()}
        </ul>
        <AddGroup id needs_proof/>
        <h2>"Where they are logged in"</h2>
        {if view.log_ins.is_empty() {
            view! { <p class="muted">"Nowhere right now."</p> }.into_any()
        } else {
            view! {
                <ul class="log-in-list" data-testid="admin-log-ins">
                    {view.log_ins.iter().map(|l| view! {
                        <li>
                            <div class="log-in-what">
                                <strong>{l.browser.clone()}</strong>
                                <p class="meta">{l.ip.clone().map_or_else(|| "from an unknown address".to_owned(), |ip| format!("from {ip}"))}</p>
                                <p class="meta">"Since " {l.created_when.clone()} " · last seen " {l.last_seen_when.clone()}</p>
                                <p class="meta">"With " {l.reached.clone()}</p>
                            </div>
                            <Change id action="end-log-in" argument=l.id.clone() label=format!("Log out {}", l.browser) needs_proof/>
                        </li>
                    }).collect_view()}
                </ul>
            }.into_any()
        }}
        {(!view.remembered.is_empty()).then(|| view! {
            <h2>"Remembered browsers"</h2>
            <p class="muted">"Not asked for a second factor after the password (\"Forget remembered browsers\" below)."</p>
            <ul class="log-in-list" data-testid="admin-remembered">
                {view.remembered.iter().map(|b| view! {
                    <li>
                        <div class="log-in-what">
                            <strong>{b.browser.clone()}</strong>
                            <p class="meta">{b.ip.clone().map_or_else(|| "from an unknown address".to_owned(), |ip| format!("from {ip}"))}</p>
                            <p class="meta">"Remembered " {b.created_when.clone()} " · last used " {b.last_used_when.clone()}</p>
                        </div>
                    </li>
                }).collect_view()}
            </ul>
        })}
        <h2>"Recent activity"</h2>
        <ol class="activity" data-testid="admin-activity">
            {view.activity.iter().map(|e| view! {
                <li>
                    <span class="what">{e.label.clone()}</span>
                    <span class="when">{e.when.clone()}</span>
                    <span class="where">
                        {e.browser.clone()}
                        {e.ip.clone().map(|ip| format!(" · from {ip}"))}
                        {e.by.clone().map(|by| view! { " · by " <strong>{by}</strong> })}
                    </span>
                </li>
            }).collect_view()}
        </ol>
    }
}

/// One change as a form: a real POST to /admin; in place once hydrated.
#[component]
fn Change(
    id: i64,
    #[prop(into)] action: String,
    #[prop(into)] label: String,
    #[prop(optional, into)] argument: String,
    needs_proof: bool,
    #[prop(optional)] danger: bool,
    #[prop(optional, into)] note: String,
    /// The label of a box the administrator fills in as the argument.
    #[prop(optional, into)]
    confirm: String,
) -> impl IntoView {
    let act = expect_context::<Action<Change, Result<Done, AppError>>>();
    let pressed = RwSignal::new(false);
    let busy = Signal::derive(move || act.pending().get() && pressed.get());
    Effect::new(move |_| {
        if !act.pending().get() {
            pressed.set(false);
        }
    });
    let sent = argument.clone();
    let asks = !confirm.is_empty();
    let sent_action = action.clone();
    let node = NodeRef::<leptos::html::Form>::new();
    let mine = reset_after_success(act, node);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !act.pending().get_untracked() {
            pressed.set(true);
            mine.set(true);
            let form = Sent::of(&ev);
            let argument = if asks { form.get("argument") } else { sent.clone() };
            act.dispatch((id, sent_action.clone(), argument, form.get("code")));
            form.clear(&["code"]);
        }
    };
    let field = format!("code-{action}-{argument}");
    let confirm_field = format!("confirm-{action}");
    view! {
        <form method="post" action="/admin" class="admin-change" node_ref=node on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="person" value=id/>
            <input type="hidden" name="action" value=action/>
            {(!note.is_empty()).then(|| view! { <p class="muted">{note}</p> })}
            {if asks {
                view! {
                    <label for=confirm_field.clone()>{confirm}</label>
                    <input id=confirm_field.clone() name="argument" type="text" required=true autocomplete="off"
                        spellcheck="false"/>
                }.into_any()
            } else {
                view! { <input type="hidden" name="argument" value=argument/> }.into_any()
            }}
            {needs_proof.then(|| view! {
                <label for=field.clone()>"Code from your app"</label>
                <input id=field.clone() name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class=if danger { "btn btn-danger" } else { "btn" }
                aria-disabled=move || busy.get().then_some("true")>
                <Show when=move || busy.get() fallback={
                    let label = label.clone();
                    move || label.clone()
                }>
                    <span class="spinner" aria-hidden="true"></span>
                    "Working…"
                </Show>
            </button>
        </form>
    }
}

#[component]
fn AddGroup(id: i64, needs_proof: bool) -> impl IntoView {
    let act = expect_context::<Action<Change, Result<Done, AppError>>>();
    let node = NodeRef::<leptos::html::Form>::new();
    let mine = reset_after_success(act, node);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !act.pending().get_untracked() {
            mine.set(true);
            let form = Sent::of(&ev);
            act.dispatch((id, "add-group".to_owned(), form.get("argument"), form.get("code")));
            form.clear(&["code"]);
        }
    };
    view! {
        <form method="post" action="/admin" class="admin-change admin-add-group" node_ref=node on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="person" value=id/>
            <input type="hidden" name="action" value="add-group"/>
            <label for="add-group">"Add to a group"</label>
            <input id="add-group" name="argument" type="text" required=true maxlength="64" spellcheck="false"
                autocomplete="off" pattern="[A-Za-z0-9._\\-]{1,64}"/>
            {needs_proof.then(|| view! {
                <label for="add-group-code">"Code from your app"</label>
                <input id="add-group-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class="btn">"Add"</button>
        </form>
    }
}

/// What a group change sends: action, group, argument, days, code.
type GroupChange = (String, String, String, String, String);

/// The groups: members and two-factor adoption of each; made, renamed and
/// deleted here.
#[component]
fn Groups() -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let groups = Resource::new(move || changed.get(), |_| with_refresh(fetch_groups));
    let act = Action::new(|c: &GroupChange| {
        let c = c.clone();
        async move {
            with_refresh(move || {
                let (action, name, argument, days, code) = c.clone();
                let code = Some(code).filter(|c| !c.is_empty());
                async move { admin_group(action, name, argument, days.trim().parse().ok(), None, code).await }
            })
            .await
        }
    });
    provide_context(act);
    view! {
        <section class="card admin" aria-labelledby="groups-heading">
            <Sections here="groups"/>
            <h1 id="groups-heading" tabindex="-1">"Groups"</h1>
            <Said act changed/>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || groups.get().map(|answer| match answer {
                    Ok(view) => view! { <GroupList view/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn GroupList(view: GroupsView) -> impl IntoView {
    let GroupsView { groups, admin_group, needs_proof } = view;
    view! {
        {needs_proof.then(|| view! {
            <p class="muted" data-testid="needs-proof">"Your log-in is over 5 minutes old: a change needs a code from your app."</p>
        })}
        {if groups.is_empty() {
            view! { <p class="muted">"No groups yet."</p> }.into_any()
        } else {
            view! {
                <ul class="groups group-list" data-testid="group-list">
                    {groups.into_iter().map(|g| {
                        let theirs = g.name == admin_group;
                        let members = if g.members == 1 { "1 member".to_owned() } else { format!("{} members", g.members) };
                        view! {
                            <li>
                                <div>
                                    <strong>{g.name.clone()}</strong>
                                    <p class="meta">
                                        <a href=format!("/admin?group={}", query_escape(&g.name))>{members}</a>
                                        " · " {g.two_factor} " with two factors"
                                        {theirs.then_some(" · the administrators")}
                                    </p>
                                    {(!g.named_by.is_empty()).then(|| view! {
                                        <p class="meta">"Named by " {g.named_by.join(", ")}</p>
                                    })}
                                    {(!g.deadline.is_empty()).then(|| view! {
                                        <p class="meta" data-testid="deadline">{g.deadline.clone()}</p>
                                    })}
                                </div>
                                <div class="group-forms">
                                {(!theirs).then(|| view! {
                                    <GroupForm action="rename" name=g.name.clone() label="Rename" field="New name" needs_proof/>
                                    <GroupForm action="delete" name=g.name.clone() label="Delete" needs_proof danger=true/>
                                })}
                                <GroupForm action="deadline" name=g.name.clone() label="Set" field="Two factors by"
                                    input="date" needs_proof/>
                                {(!g.deadline.is_empty()).then(|| view! {
                                    <GroupForm action="no-deadline" name=g.name.clone() label="Remove the deadline" needs_proof/>
                                })}
                                </div>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            }.into_any()
        }}
        <h2>"New group"</h2>
        <GroupForm action="create" name=String::new() label="Make the group" field="First member's address" needs_proof/>
    }
}

/// One group change as a form: a real POST to /admin; in place once
/// hydrated. `create` asks for the name too.
#[component]
fn GroupForm(
    action: &'static str,
    name: String,
    label: &'static str,
    /// The label of the argument's box ("" for none).
    #[prop(optional)]
    field: &'static str,
    /// The argument box's type ("text" when not given).
    #[prop(optional)]
    input: &'static str,
    needs_proof: bool,
    #[prop(optional)] danger: bool,
) -> impl IntoView {
    let input = if input.is_empty() { "text" } else { input };
    let act = expect_context::<Action<GroupChange, Result<Done, AppError>>>();
    let node = NodeRef::<leptos::html::Form>::new();
    let mine = reset_after_success(act, node);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !act.pending().get_untracked() {
            mine.set(true);
            let form = Sent::of(&ev);
            act.dispatch((
                action.to_owned(),
                form.get("group"),
                form.get("argument"),
                form.get("days"),
                form.get("code"),
            ));
            form.clear(&["code"]);
        }
    };
    let id = format!("{action}-{name}");
    let creating = action == "create";
    view! {
        <form method="post" action="/admin" class="admin-change" node_ref=node on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="group-action" value=action/>
            {if creating {
                view! {
                    <label for="group-name">"Name"</label>
                    <input id="group-name" name="group" type="text" required=true maxlength="64" spellcheck="false"
                        autocomplete="off" pattern="[A-Za-z0-9._\\-]{1,64}"/>
                }.into_any()
            } else {
                view! { <input type="hidden" name="group" value=name/> }.into_any()
            }}
            {(!field.is_empty()).then(|| view! {
                <label for=format!("{id}-argument")>{field}</label>
                <input id=format!("{id}-argument") name="argument" type=input required=true autocomplete="off"
                    spellcheck="false"/>
            })}
            // A deadline's grace for members who join later.
            {(action == "deadline").then(|| view! {
                <label for=format!("{id}-days")>"Days for who joins later"</label>
                <input id=format!("{id}-days") name="days" type="number" min="0" max="365" value="14" class="days-input"/>
            })}
            {needs_proof.then(|| view! {
                <label for=format!("{id}-code")>"Code from your app"</label>
                <input id=format!("{id}-code") name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class=if danger { "btn btn-danger" } else { "btn" }>{label}</button>
        </form>
    }
}

/// (action, email, groups, days, mail, id, code) of an invitation change.
type InvitationChange = (String, String, Vec<String>, String, bool, String, String);

/// Invitations: made (copied or mailed), listed with what became of each,
/// revoked.
#[component]
fn Invitations() -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let list = Resource::new(move || changed.get(), |_| with_refresh(fetch_invitations));
    let act = Action::new(|c: &InvitationChange| {
        let c = c.clone();
        async move {
            with_refresh(move || {
                let (action, email, groups, days, mail, id, code) = c.clone();
                let code = Some(code).filter(|c| !c.is_empty());
                async move {
                    match (action.as_str(), id.parse()) {
                        ("revoke", Ok(id)) => revoke_invitation(id, None, code).await,
                        _ => admin_invitation(email, groups, days.trim().parse().ok(), mail, None, code).await,
                    }
                }
            })
            .await
        }
    });
    provide_context(act);
    view! {
        <section class="card admin" aria-labelledby="invitations-heading">
            <Sections here="invitations"/>
            <h1 id="invitations-heading" tabindex="-1">"Invitations"</h1>
            <Said act changed/>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || list.get().map(|answer| match answer {
                    Ok(view) => view! { <InvitationList view/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn InvitationList(view: InvitationsView) -> impl IntoView {
    let InvitationsView { invitations, groups, note, needs_proof } = view;
    let act = expect_context::<Action<InvitationChange, Result<Done, AppError>>>();
    // Once an invitation is made, the form starts again empty.
    let form = NodeRef::<leptos::html::Form>::new();
    let mine = reset_after_success(act, form);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !act.pending().get_untracked() {
            mine.set(true);
            let form = Sent::of(&ev);
            act.dispatch((
                "create".into(),
                form.get("email"),
                form.all("groups"),
                form.get("days"),
                form.ticked("mail"),
                String::new(),
                form.get("code"),
            ));
            form.clear(&["code"]);
        }
    };
    view! {
        <p class="muted">{note}</p>
        {invitations.is_empty().then(|| view! { <p class="muted">"No invitations yet."</p> })}
        <ul class="groups group-list" data-testid="invitation-list">
            {invitations.into_iter().map(|i| view! {
                <li>
                    <div>
                        <strong>{i.who}</strong>
                        <p class="meta">{i.state}</p>
                        <p class="meta">{i.made}</p>
                    </div>
                    {i.live.then(|| view! { <Revoke id=i.id needs_proof/> })}
                </li>
            }).collect_view()}
        </ul>
        <h2>"New invitation"</h2>
        <form method="post" action="/admin" class="admin-invite" node_ref=form on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="invitation-action" value="create"/>
            <label for="invite-email">"For the address (optional)"</label>
            <input id="invite-email" name="email" type="email" autocomplete="off" spellcheck="false"/>
            {(!groups.is_empty()).then(|| view! {
                <fieldset>
                    <legend>"Into the groups"</legend>
                    {groups.into_iter().map(|g| {
                        let (id, value) = (format!("invite-group-{g}"), g.clone());
                        let label_for = id.clone();
                        view! {
                            <label for=label_for class="check">
                                <input id=id type="checkbox" name="groups" value=value/>
                                {g}
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
            })}
            <label for="invite-days">"Works for (days)"</label>
            <input id="invite-days" name="days" type="number" min="1" max="30" required=true class="days-input"
                value="7"/>
            <label for="invite-mail" class="check">
                <input id="invite-mail" name="mail" type="checkbox"/>
                "Mail the link to the address (else it is shown once, to copy)"
            </label>
            {needs_proof.then(|| view! {
                <label for="invite-code">"Code from your app"</label>
                <input id="invite-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class="btn btn-primary">"Make the invitation"</button>
        </form>
    }
}

/// Revokes one invitation: a real POST to /admin; in place once hydrated.
#[component]
fn Revoke(id: i64, needs_proof: bool) -> impl IntoView {
    let act = expect_context::<Action<InvitationChange, Result<Done, AppError>>>();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if !act.pending().get_untracked() {
            let form = Sent::of(&ev);
            let none = String::new;
            act.dispatch(("revoke".into(), none(), vec![], none(), false, id.to_string(), form.get("code")));
            form.clear(&["code"]);
        }
    };
    view! {
        <form method="post" action="/admin" class="admin-change" on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="invitation-action" value="revoke"/>
            <input type="hidden" name="id" value=id/>
            {needs_proof.then(|| view! {
                <label for=format!("revoke-{id}-code")>"Code from your app"</label>
                <input id=format!("revoke-{id}-code") name="code" type="text" inputmode="numeric"
                    autocomplete="one-time-code" required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class="btn btn-danger">"Revoke"</button>
        </form>
    }
}

/// A change to the apps: action, app id, settings, typed confirmation,
/// code.
type AppChange = (String, String, AppSettings, String, String);

/// The fields of the form being submitted, as its no-JavaScript POST
/// would send them (the enhanced forms send the same), read from the
/// page when it is sent: what was typed or ticked before the page
/// hydrated counts too. (A box bound to a signal was emptied by
/// hydration, and a signal fed by input events missed what came before.)
struct Sent {
    form: Option<leptos::web_sys::HtmlFormElement>,
    data: Option<leptos::web_sys::FormData>,
}

impl Sent {
    fn of(ev: &leptos::ev::SubmitEvent) -> Self {
        use leptos::wasm_bindgen::JsCast;
        let form = ev.target().and_then(|t| t.dyn_into::<leptos::web_sys::HtmlFormElement>().ok());
        let data = form.as_ref().and_then(|f| leptos::web_sys::FormData::new_with_form(f).ok());
        Self { form, data }
    }

    fn get(&self, name: &str) -> String {
        self.data.as_ref().and_then(|d| d.get(name).as_string()).unwrap_or_default()
    }

    /// Every value sent under `name` (the ticked boxes of a group).
    fn all(&self, name: &str) -> Vec<String> {
        self.data.as_ref().map(|d| d.get_all(name).iter().filter_map(|v| v.as_string()).collect()).unwrap_or_default()
    }

    /// A check box is sent only when ticked.
    fn ticked(&self, name: &str) -> bool {
        self.data.as_ref().is_some_and(|d| d.has(name))
    }

    /// Empties the boxes named `names` (a code is typed once).
    fn clear(&self, names: &[&str]) {
        use leptos::wasm_bindgen::JsCast;
        let Some(form) = &self.form else { return };
        for name in names {
            if let Ok(Some(el)) = form.query_selector(&format!("[name=\"{name}\"]"))
                && let Ok(input) = el.dyn_into::<leptos::web_sys::HtmlInputElement>()
            {
                input.set_value("");
            }
        }
    }
}

/// Once the change a form sent succeeds, the form starts again as drawn
/// (one refused keeps what was typed, to be mended). Returns the flag its
/// submit handler sets: only the form that sent the change is reset.
fn reset_after_success<I: Send + Sync + 'static>(
    act: Action<I, Result<Done, AppError>>,
    form: NodeRef<leptos::html::Form>,
) -> RwSignal<bool> {
    let sent = RwSignal::new(false);
    Effect::new(move |_| {
        let Some(result) = act.value().get() else { return };
        if sent.get_untracked() {
            sent.set(false);
            if let (Ok(_), Some(form)) = (result, form.get_untracked()) {
                form.reset();
            }
        }
    });
    sent
}

/// The OpenID apps: listed with their settings; added, changed, given a
/// new secret, removed.
#[component]
fn Apps() -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let list = Resource::new(move || changed.get(), |_| with_refresh(fetch_apps));
    let act = Action::new(|c: &AppChange| {
        let c = c.clone();
        async move {
            with_refresh(move || {
                let (action, id, app, confirm, code) = c.clone();
                async move { admin_app(action, id, app, confirm, None, Some(code).filter(|c| !c.is_empty())).await }
            })
            .await
        }
    });
    provide_context(act);
    view! {
        <section class="card admin" aria-labelledby="apps-heading">
            <Sections here="apps"/>
            <h1 id="apps-heading" tabindex="-1">"Apps"</h1>
            <Said act changed/>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || list.get().map(|answer| match answer {
                    Ok(view) => view! { <AppList view/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn AppList(view: AppsView) -> impl IntoView {
    let AppsView { apps, groups, issuer, discovery, needs_proof } = view;
    let every = groups.clone();
    view! {
        <p class="muted">"Issuer " <code>{issuer}</code> "; apps find the rest at " <code>{discovery}</code> "."</p>
        {apps.is_empty().then(|| view! { <p class="muted">"No apps yet."</p> })}
        <ul class="groups group-list" data-testid="app-list">
            {apps.into_iter().map(|app| {
                let AppLine { id, settings, facts, old_secret } = app.clone();
                let uris = settings.redirect_uris.join(" · ");
                let public = settings.public;
                let groups = every.clone();
                view! {
                    <li class="app">
                        <div>
                            <strong>{settings.name}</strong>
                            <p class="meta">"Client id " <code>{id.clone()}</code></p>
                            <p class="meta">{facts.join(" · ")}</p>
                            <p class="meta">"Back to " {uris}</p>
                        </div>
                        <details>
                            <summary>"Change"</summary>
                            <AppForm app=Some(app) groups needs_proof/>
                        </details>
                        {(!public).then(|| view! {
                            <AppButton action="rotate-secret" id=id.clone() label="New secret" needs_proof/>
                        })}
                        {old_secret.then(|| view! {
                            <AppButton action="remove-old-secret" id=id.clone() label="Retire the previous secret" needs_proof/>
                        })}
                        <AppButton action="remove" id label="Remove" needs_proof/>
                    </li>
                }
            }).collect_view()}
        </ul>
        <h2>"New app"</h2>
        <AppForm app=None groups needs_proof/>
    }
}

/// An app's settings: a new app's (`app` None) or a change to one.
#[component]
fn AppForm(app: Option<AppLine>, groups: Vec<String>, needs_proof: bool) -> impl IntoView {
    let act = expect_context::<Action<AppChange, Result<Done, AppError>>>();
    // Without JavaScript, a refused new app's fields come back as typed.
    let kept = use_context::<Posted>().and_then(|p| p.0).filter(|o| app.is_none() && o.field("app-action") == "create");
    let id = app.as_ref().map(|a| a.id.clone()).unwrap_or_default();
    let s = match (&app, kept) {
        (Some(a), _) => a.settings.clone(),
        (None, Some(o)) => {
            let groups: Vec<String> =
                o.field("groups").split(',').filter(|g| !g.is_empty()).map(str::to_owned).collect();
            AppSettings::from_form(|f| o.field(f), move |_| groups.clone())
        }
        (None, None) => AppSettings::default(),
    };
    let action = if app.is_some() { "change" } else { "create" };
    let form_name = if app.is_some() { format!("Change {}", s.name) } else { "New app".to_owned() };
    let p = if app.is_some() { format!("app-{id}-") } else { "new-app-".to_owned() };
    let f = move |field: &str| format!("{p}{field}");
    let to_send = id.clone();
    // Once a new app is added, the form starts again empty (an app's
    // own form is drawn again with what was saved).
    let form = NodeRef::<leptos::html::Form>::new();
    let mine = reset_after_success(act, form);
    let new_app = app.is_none();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let form = Sent::of(&ev);
        if !act.pending().get_untracked() {
            mine.set(new_app);
            let settings = AppSettings::from_form(|f| form.get(f), |f| form.all(f));
            act.dispatch((action.into(), to_send.clone(), settings, String::new(), form.get("code")));
            form.clear(&["code"]);
        }
    };
    let check = |field: String, name: &'static str, on: bool, words: &'static str| {
        let label_for = field.clone();
        view! {
            <label for=label_for class="check">
                <input id=field type="checkbox" name=name checked=on/>
                {words}
            </label>
        }
    };
    view! {
        <form method="post" action="/admin" class="admin-app" aria-label=form_name node_ref=form on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="app-action" value=action/>
            {app.is_some().then(|| view! { <input type="hidden" name="id" value=id.clone()/> })}
            <label for=f("name")>"Name"</label>
            <input id=f("name") name="name" type="text" required=true maxlength="100" autocomplete="off" value=s.name/>
            <label for=f("redirect")>"Redirect URIs, one a line"</label>
            <textarea id=f("redirect") name="redirect-uris" required=true rows="2" spellcheck="false">
                {s.redirect_uris.join("\n")}
            </textarea>
            <label for=f("logout")>"After log-out, one a line (optional)"</label>
            <textarea id=f("logout") name="logout-uris" rows="1" spellcheck="false">
                {s.post_logout_redirect_uris.join("\n")}
            </textarea>
            <label for=f("backchannel")>"Back-channel log-out URI (optional)"</label>
            <input id=f("backchannel") name="backchannel-uri" type="url" spellcheck="false" value=s.backchannel_logout_uri/>
            {(!groups.is_empty()).then(|| view! {
                <fieldset>
                    <legend>"Only for the groups (none: everyone)"</legend>
                    {groups.into_iter().map(|g| {
                        let on = s.groups.contains(&g);
                        let (label_for, field, value) = (f(&format!("group-{g}")), f(&format!("group-{g}")), g.clone());
                        view! {
                            <label for=label_for class="check">
                                <input id=field type="checkbox" name="groups" value=value checked=on/>
                                {g}
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
            })}
            {app.is_none().then(|| check(f("public"), "public", false, "Public: no secret (PKCE)"))}
            {check(f("consent"), "consent", s.consent, "Ask before the first sign-in")}
            {check(f("two-factor"), "two-factor", s.two_factor, "Two factors required")}
            {check(f("remembered"), "remembered", s.remembered, "A remembered browser will do for the second factor")}
            <label for=f("fresh")>"Second factor shown within (e.g. 15m, 12h; empty: any time)"</label>
            <input id=f("fresh") name="fresh" type="text" maxlength="12" autocomplete="off" spellcheck="false"
                value=s.fresh/>
            <label for=f("networks")>"From these networks the password alone will do (e.g. 192.168.1.0/24; empty: none)"</label>
            <input id=f("networks") name="networks" type="text" maxlength="900" autocomplete="off" spellcheck="false"
                value=s.one_factor_networks.join(", ")/>
            {(!s.public).then(|| check(f("pkce"), "pkce", s.pkce_required, "PKCE required"))}
            {needs_proof.then(|| view! {
                <label for=f("code")>"Code from your app"</label>
                <input id=f("code") name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class="btn btn-primary">{if app.is_some() { "Save" } else { "Add the app" }}</button>
        </form>
    }
}

/// One of an app's buttons: a new secret, retiring the previous one, or
/// removing the app (its name typed to confirm).
#[component]
fn AppButton(action: &'static str, id: String, label: &'static str, needs_proof: bool) -> impl IntoView {
    let act = expect_context::<Action<AppChange, Result<Done, AppError>>>();
    let to_send = id.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let form = Sent::of(&ev);
        if !act.pending().get_untracked() {
            act.dispatch((
                action.into(),
                to_send.clone(),
                AppSettings::default(),
                form.get("confirm"),
                form.get("code"),
            ));
            form.clear(&["code"]);
        }
    };
    let remove = action == "remove";
    let field = format!("{action}-{id}");
    view! {
        <form method="post" action="/admin" class="admin-change" on:submit=submit>
            <IntentField intent=Intent::Admin/>
            <input type="hidden" name="app-action" value=action/>
            <input type="hidden" name="id" value=id/>
            {remove.then(|| view! {
                <label for=format!("{field}-confirm")>"Type its name to remove it"</label>
                <input id=format!("{field}-confirm") name="confirm" type="text" required=true autocomplete="off"/>
            })}
            {needs_proof.then(|| view! {
                <label for=format!("{field}-code")>"Code from your app"</label>
                <input id=format!("{field}-code") name="code" type="text" inputmode="numeric"
                    autocomplete="one-time-code" required=true maxlength="9" class="code-input"/>
            })}
            <button type="submit" class=if remove { "btn btn-danger" } else { "btn" }>{label}</button>
        </form>
    }
}

/// What the last change did (or why it was refused): said by the server
/// without JavaScript, in place with it; `changed` is bumped after each
/// change so the page's data is read again.
#[component]
fn Said<I: Send + Sync + 'static>(act: Action<I, Result<Done, AppError>>, changed: RwSignal<u32>) -> impl IntoView {
    let outcome = use_context::<Posted>().and_then(|p| p.0).filter(|o| o.intent == Intent::Admin);
    let said = RwSignal::new(outcome.as_ref().map(|o| o.field("done")).unwrap_or_default());
    let link = RwSignal::new(outcome.as_ref().map(|o| o.field("link")).unwrap_or_default());
    let secret = RwSignal::new(outcome.as_ref().map(|o| o.field("secret")).unwrap_or_default());
    // The admin page's forms mark no field: the message itself is said.
    let whole = |mut e: AppError| {
        e.fields.clear();
        e
    };
    let error = RwSignal::new(outcome.and_then(|o| o.error).map(whole));
    Effect::new(move |_| match act.value().get() {
        Some(Ok(Done { message, link: shown, secret: given })) => {
            error.set(None);
            said.set(message);
            link.set(shown);
            secret.set(given);
            changed.update(|n| *n += 1);
            focus_later("#admin-said");
        }
        Some(Err(e)) => {
            said.set(String::new());
            link.set(String::new());
            secret.set(String::new());
            error.set(Some(whole(e)));
            focus_later("#admin-said");
        }
        None => {}
    });
    view! {
        <p id="admin-said" tabindex="-1" class="admin-said" class:alert=move || !said.get().is_empty()
            class:alert-ok=move || !said.get().is_empty() aria-live="polite" data-testid="admin-said">
            {move || said.get()}
        </p>
        // A new invitation's link or app secret, shown once, selected for
        // copying.
        {move || [("Link", link.get()), ("Secret", secret.get())].into_iter().filter(|(_, v)| !v.is_empty()).map(|(what, v)| view! {
            <input class="shown-link" readonly=true aria-label=what data-testid="shown-link" value=v
                on:focus=|ev| { event_target::<leptos::web_sys::HtmlInputElement>(&ev).select(); }/>
        }).collect_view()}
        <ErrorNote error=Signal::derive(move || error.get()) busy=act.pending()/>
    }
}

/// How things stand: accounts, two-factor adoption, the last day, the
/// queues, what is running.
#[component]
fn OverviewPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| with_refresh(fetch_overview));
    view! {
        <section class="card admin" aria-labelledby="overview-heading">
            <Sections here="overview"/>
            <h1 id="overview-heading" tabindex="-1">"Overview"</h1>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || overview.get().map(|answer| match answer {
                    Ok(o) => view! { <OverviewFacts o/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn OverviewFacts(o: Overview) -> impl IntoView {
    view! {
        {o.sections.into_iter().map(|section| view! {
            <h2>{section.title}</h2>
            <dl class="facts" data-testid="overview-section">
                {section.facts.into_iter().map(|(what, n)| view! { <div><dt>{what}</dt><dd>{n}</dd></div> }).collect_view()}
            </dl>
        }).collect_view()}
        <p class="muted" data-testid="overview-running">{o.running}</p>
    }
}

/// The gate's access rules, read-only, with "who may reach this URL?".
#[component]
fn RulesPage() -> impl IntoView {
    let query = use_query_map();
    let asked = Memo::new(move |_| {
        let q = query.read();
        let get = |k: &str| q.get(k).unwrap_or_default();
        (get("url"), get("method"), get("who"), get("from"))
    });
    let rules = Resource::new(
        move || asked.get(),
        |(url, method, who, from)| {
            with_refresh(move || fetch_rules(url.clone(), method.clone(), who.clone(), from.clone()))
        },
    );
    let (url, method, who, from) = asked.get_untracked();
    view! {
        <section class="card admin" aria-labelledby="rules-heading">
            <Sections here="rules"/>
            <h1 id="rules-heading" tabindex="-1">"Access rules"</h1>
            <Form method="get" action="/admin" attr:class="admin-search admin-filter" attr:role="search">
                <input type="hidden" name="view" value="rules"/>
                <div class="field">
                    <label for="url">"Address"</label>
                    <input id="url" name="url" type="url" value=url placeholder="https://wiki.example.com/page"/>
                </div>
                <div class="field">
                    <label for="method">"Method"</label>
                    <input id="method" name="method" type="text" value=method placeholder="GET" spellcheck="false"/>
                </div>
                <div class="field">
                    <label for="who">"Person's address"</label>
                    <input id="who" name="who" type="email" value=who autocomplete="off"/>
                </div>
                <div class="field">
                    <label for="from">"From the address"</label>
                    <input id="from" name="from" type="text" value=from placeholder="192.168.1.20" spellcheck="false"/>
                </div>
                <button type="submit" class="btn btn-primary">"Who may reach it?"</button>
            </Form>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || rules.get().map(|answer| match answer {
                    Ok(view) => view! { <RuleList view/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn RuleList(view: RulesView) -> impl IntoView {
    view! {
        {(!view.answers.is_empty()).then(|| view! {
            <dl class="facts" data-testid="rule-answers" aria-live="polite">
                {view.answers.into_iter().map(|a| view! {
                    <div><dt>{a.who}</dt><dd>{a.answer} " (" {a.rule} ")"</dd></div>
                }).collect_view()}
            </dl>
        })}
        <h2>"The rules, in order"</h2>
        <ol class="rule-list" data-testid="rules">
            {view.rules.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
        </ol>
        <p class="muted">"No rule matches: " {view.default} ". The rules are ACCESS_RULES on the server."</p>
    }
}

#[cfg(test)]
mod tests {
    use super::query_escape;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("ann smith&x=1"), "ann%20smith%26x%3D1");
        assert_eq!(query_escape("é"), "%C3%A9");
        assert_eq!(query_escape("a-b.c_d~"), "a-b.c_d~");
    }
}

/// The audit trail of everyone: a GET form of filters, a page of events,
/// the same as CSV.
#[component]
fn Activity() -> impl IntoView {
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        let q = query.read();
        let get = |k: &str| q.get(k).unwrap_or_default();
        (
            ActivityFilter {
                person: get("person"),
                kind: get("kind"),
                from: get("from"),
                to: get("to"),
                ip: get("ip"),
            },
            q.get("page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1),
        )
    });
    let events = Resource::new(
        move || filter.get(),
        |(f, page)| {
            with_refresh(move || {
                fetch_admin_activity(
                    f.person.clone(),
                    f.kind.clone(),
                    f.from.clone(),
                    f.to.clone(),
                    f.ip.clone(),
                    Some(page),
                )
            })
        },
    );
    view! {
        <section class="card admin" aria-labelledby="activity-heading">
            <Sections here="activity"/>
            <h1 id="activity-heading" tabindex="-1">"Activity"</h1>
            <Transition fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
                {move || events.get().map(|answer| match answer {
                    Ok(page) => view! { <ActivityList page filter=filter.get_untracked().0/> }.into_any(),
                    Err(e) => refused(e),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ActivityList(page: ActivityPage, filter: ActivityFilter) -> impl IntoView {
    let query = format!(
        "person={}&kind={}&from={}&to={}&ip={}",
        query_escape(&filter.person),
        query_escape(&filter.kind),
        query_escape(&filter.from),
        query_escape(&filter.to),
        query_escape(&filter.ip)
    );
    let summary = match page.total {
        0 => "No events match.".to_owned(),
        1 => "1 event.".to_owned(),
        n => format!("{n} events, page {} of {}.", page.page, page.pages),
    };
    let kind = filter.kind.clone();
    let link = {
        let query = query.clone();
        move |to: i64| format!("/admin?view=activity&{query}&page={to}")
    };
    view! {
        <Form method="get" action="/admin" attr:class="admin-search admin-filter" attr:role="search">
            <input type="hidden" name="view" value="activity"/>
            <div class="field">
                <label for="person">"Person's address"</label>
                <input id="person" name="person" type="search" value=filter.person autocomplete="off"/>
            </div>
            <div class="field">
                <label for="kind">"Event"</label>
                <select id="kind" name="kind">
                    <option value="" selected=kind.is_empty()>"Any"</option>
                    {page.kinds.into_iter().map(|(value, words)| {
                        let selected = value == kind;
                        view! { <option value=value selected=selected>{words}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="from">"From"</label>
                <input id="from" name="from" type="date" value=filter.from/>
            </div>
            <div class="field">
                <label for="to">"To"</label>
                <input id="to" name="to" type="date" value=filter.to/>
            </div>
            <div class="field">
                <label for="ip">"Address starts with"</label>
                <input id="ip" name="ip" type="text" value=filter.ip autocomplete="off" spellcheck="false"/>
            </div>
            <button type="submit" class="btn btn-primary">"Filter"</button>
        </Form>
        <p class="muted" aria-live="polite" data-testid="activity-summary">
            {summary} " Times in " {page.time_zone} ". "
            <a href=format!("/admin/activity.csv?{query}") download="">"Download as CSV"</a>
        </p>
        <ol class="activity" data-testid="all-activity">
            {page.events.into_iter().map(|e| view! {
                <li>
                    <span class="what">{e.label}</span>
                    <span class="when">{e.when}</span>
                    <span class="where">
                        {match (e.person, e.person_id) {
                            (Some(p), Some(id)) => view! { <a href=format!("/admin?person={id}")>{p}</a> " · " }.into_any(),
                            _ if e.about_no_account => ().into_any(),
                            _ => view! { "a deleted or unknown account · " }.into_any(),
                        }}
                        {e.browser}
                        {e.ip.map(|ip| format!(" · from {ip}"))}
                        {e.by.map(|by| view! { " · by " <strong>{by}</strong> })}
                    </span>
                </li>
            }).collect_view()}
        </ol>
        {pager(page.page, page.pages, link)}
    }
}

/// Previous and next page links, when there is more than one.
fn pager(page: i64, pages: i64, link: impl Fn(i64) -> String) -> impl IntoView {
    (pages > 1).then(|| {
        view! {
            <nav class="pager" aria-label="Pages">
                {(page > 1).then(|| view! { <a href=link(page - 1) rel="prev">"Previous page"</a> })}
                {(page < pages).then(|| view! { <a href=link(page + 1) rel="next">"Next page"</a> })}
            </nav>
        }
    })
}

/// The admin page's sections, the current one marked.
#[component]
fn Sections(here: &'static str) -> impl IntoView {
    view! {
        <nav class="admin-nav" aria-label="Administration">
            <a href="/admin" aria-current=(here == "people").then_some("page")>"People"</a>
            <a href="/admin?view=groups" aria-current=(here == "groups").then_some("page")>"Groups"</a>
            <a href="/admin?view=invitations" aria-current=(here == "invitations").then_some("page")>"Invitations"</a>
            <a href="/admin?view=apps" aria-current=(here == "apps").then_some("page")>"Apps"</a>
            <a href="/admin?view=activity" aria-current=(here == "activity").then_some("page")>"Activity"</a>
            <a href="/admin?view=rules" aria-current=(here == "rules").then_some("page")>"Access rules"</a>
            <a href="/admin?view=overview" aria-current=(here == "overview").then_some("page")>"Overview"</a>
        </nav>
    }
}
