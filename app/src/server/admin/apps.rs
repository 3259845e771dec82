//! The OpenID apps on the admin page: listed with their settings, added
//! (a confidential app's secret shown once), changed, given a new secret
//! (the old one works until it is retired, so the app can be moved over
//! first) and removed (its name typed to confirm). The same operations as
//! `server oidc client …` (`oidc::clients`), with the administrator's
//! proof and their name on each event.

use crate::error::{AppError, ErrorKind};
use crate::server::auth::FullSession;
use crate::server::db::ClientRow;
use crate::server::factors::proof::{Proof, fresh, prove};
use crate::server::gate::parse_duration;
use crate::server::oidc::clients::{self, NewClient};
use crate::server::request::RequestMeta;
use crate::server::state::AppState;
use crate::server::time_zone::format_time;
use crate::wire::Done;
use crate::wire::admin::{AppAction, AppLine, AppSettings, AppsView};

use super::{ASK_PROOF, require_admin};

pub async fn list(state: &AppState, session: &FullSession) -> Result<AppsView, AppError> {
    let admin = require_admin(state, session).await?;
    let zone = admin.time_zone.as_deref();
    let apps = state.db.oidc_clients().await?.into_iter().map(|row| line(row, zone)).collect();
    let groups = state.db.group_counts().await?.into_iter().map(|(name, _, _)| name).collect();
    let issuer = state.oidc.issuer.clone();
    Ok(AppsView {
        apps,
        groups,
        discovery: format!("{issuer}/.well-known/openid-configuration"),
        issuer,
        needs_proof: !fresh(state, session),
    })
}

fn line(row: ClientRow, zone: Option<&str>) -> AppLine {
    let mut facts = vec![
        if row.is_public() {
            "Public: no secret, PKCE required".to_owned()
        } else if row.pkce_required() {
            "Confidential: a secret and PKCE".to_owned()
        } else {
            "Confidential: a secret (PKCE if the app sends it)".to_owned()
        },
        if row.needs_two_factors() { "Two factors required" } else { "A password alone is enough" }.to_owned(),
    ];
    facts.extend(row.second_factor_words());
    let networks: Vec<&str> = row.one_factor_networks().collect();
    if !networks.is_empty() {
        facts.push(format!("The password alone from {}", networks.join(", ")));
    }
    facts.extend([
        if row.asks_consent() { "Asks before the first sign-in" } else { "Signs in without asking" }.to_owned()
    ]);
    let groups: Vec<&str> = row.groups().collect();
    facts.push(if groups.is_empty() { "For everyone".to_owned() } else { format!("Only for {}", groups.join(", ")) });
    if row.previous_secret_hash.is_some() {
        facts.push("The previous secret still works".to_owned());
    }
    facts.push(format!("Added on {}", format_time(row.created_at, zone)));
    AppLine {
        settings: AppSettings {
            name: row.name.clone(),
            redirect_uris: row.redirect_uris().map(str::to_owned).collect(),
            post_logout_redirect_uris: row.post_logout_redirect_uris().map(str::to_owned).collect(),
            backchannel_logout_uri: row.backchannel_logout_uri.clone().unwrap_or_default(),
            public: row.is_public(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            consent: row.asks_consent(),
            pkce_required: row.pkce_required(),
            two_factor: row.needs_two_factors(),
            remembered: row.remembered == 1,
            fresh: row.fresh.map(short_duration).unwrap_or_default(),
            one_factor_networks: networks.iter().map(|r| (*r).to_owned()).collect(),
        },
        old_secret: row.previous_secret_hash.is_some(),
        id: row.id,
        facts,
    }
}

/// "15m": seconds as a form takes them back.
fn short_duration(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Settings as the page and the API give them, trimmed, for `clients`.
fn new_client(s: AppSettings) -> Result<NewClient, AppError> {
    let trimmed = |list: Vec<String>| -> Vec<String> {
        list.into_iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect()
    };
    let backchannel = s.backchannel_logout_uri.trim();
    let fresh = match s.fresh.trim() {
        "" => None,
        text => Some(parse_duration(text).map_err(|why| AppError::field("fresh", why))?),
    };
    Ok(NewClient {
        name: s.name.trim().to_owned(),
        redirect_uris: trimmed(s.redirect_uris),
        post_logout_redirect_uris: trimmed(s.post_logout_redirect_uris),
        backchannel_logout_uri: (!backchannel.is_empty()).then(|| backchannel.to_owned()),
        public: s.public,
        groups: trimmed(s.groups),
        consent_ask: s.consent,
        pkce_required: s.pkce_required,
        two_factor: s.two_factor,
        remembered: s.remembered,
        fresh,
        one_factor_networks: trimmed(s.one_factor_networks),
    })
}

fn no_such_app() -> AppError {
    AppError::new(ErrorKind::NotFound, "There is no such app (it may have been removed).")
}

/// Adds, changes, re-keys or removes an app, after the administrator's
/// proof. Everything that needs no proof is checked first.
pub async fn change(
    state: &AppState,
    meta: &RequestMeta,
    session: &FullSession,
    action: AppAction,
    proof: Proof<'_>,
) -> Result<Done, AppError> {
    let admin = require_admin(state, session).await?;
    let actor = Some(admin.id);
    match action {
        AppAction::Create(settings) => {
            let new = new_client(settings)?;
            clients::check(&new)?;
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            let made = clients::add(state, meta, actor, &new).await?;
            let name = &new.name;
            Ok(match made.secret {
                Some(secret) => Done {
                    message: format!(
                        "Added {name}. Its client id is {}. Copy its secret now: it is not shown again.",
                        made.id
                    ),
                    link: String::new(),
                    secret,
                },
                None => Done::new(format!("Added {name}, a public app: its client id is {}.", made.id)),
            })
        }
        AppAction::Change { id, settings } => {
            let new = new_client(settings)?;
            clients::check(&new)?;
            state.db.oidc_client(&id).await?.ok_or_else(no_such_app)?;
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            let changed = clients::change(state, meta, actor, &id, &new).await?.ok_or_else(no_such_app)?;
            Ok(Done::new(match changed.ended {
                0 => format!("Saved {}.", new.name),
                n => format!(
                    "Saved {}. Who may use it is narrower now, so its {n} sign-in{} ended: people sign in again \
                     under the new settings.",
                    new.name,
                    if n == 1 { "" } else { "s" }
                ),
            }))
        }
        AppAction::RotateSecret { id } => {
            let app = state.db.oidc_client(&id).await?.ok_or_else(no_such_app)?;
            if app.is_public() {
                return Err(AppError::bad_request("A public app has no secret."));
            }
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            let secret = clients::rotate_secret(state, meta, actor, &id).await?.ok_or_else(no_such_app)?;
            Ok(Done {
                message: format!(
                    "A new secret for {}. Copy it now: it is not shown again. The previous one works until you \
                     retire it, so the app can be moved over first.",
                    app.name
                ),
                link: String::new(),
                secret,
            })
        }
        AppAction::RemoveOldSecret { id } => {
            let app = state.db.oidc_client(&id).await?.ok_or_else(no_such_app)?;
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            if !clients::remove_old_secret(state, meta, actor, &id).await? {
                return Err(AppError::new(ErrorKind::NotFound, format!("{} has no previous secret.", app.name)));
            }
            Ok(Done::new(format!("The previous secret of {} no longer works.", app.name)))
        }
        AppAction::Remove { id, confirm } => {
            let app = state.db.oidc_client(&id).await?.ok_or_else(no_such_app)?;
            if confirm.trim() != app.name {
                return Err(AppError::field(
                    "confirm",
                    format!("To remove it, type the app's name, {}, exactly.", app.name),
                ));
            }
            prove(state, meta, session, &admin, proof, ASK_PROOF).await?;
            let name = clients::remove(state, meta, actor, &id).await?.ok_or_else(no_such_app)?;
            Ok(Done::new(format!("Removed {name}: every sign-in and token it held has ended.")))
        }
    }
}
