//! Operator commands that work on the database directly.

use app::domain::Email;
use app::server::AppState;
use app::server::crypto::sealing::SecretBox;
use app::server::db::SealedSecrets;
use app::server::{account, factors::protection, logins};

/// Re-seals every TOTP secret not under the current key. Each row is
/// swapped only if unchanged since read, so it is safe beside a running
/// server. Returns how many accounts were re-encrypted.
pub async fn rotate_secrets_key(state: &AppState) -> Result<usize, String> {
    let rows = state.db.sealed_secrets().await.map_err(|e| e.message)?;
    let current = state.secrets.current_id().to_owned();
    let mut done = 0;
    for row in rows {
        let reseal = |value: &Option<String>| -> Result<Option<String>, String> {
            match value {
                Some(sealed) if SecretBox::key_id(sealed) != Some(current.as_str()) => {
                    let plain = state.secrets.open(row.id, sealed).map_err(|_| {
                        format!(
                            "account {}: a secret is under key {:?}, which is neither SECRETS_KEY nor in SECRETS_KEYS_PREVIOUS",
                            row.id,
                            SecretBox::key_id(sealed).unwrap_or("?")
                        )
                    })?;
                    Ok(Some(state.secrets.seal(row.id, &plain).map_err(|e| e.message)?))
                }
                other => Ok(other.clone()),
            }
        };
        let new = SealedSecrets {
            id: row.id,
            totp_secret: reseal(&row.totp_secret)?,
            totp_pending_secret: reseal(&row.totp_pending_secret)?,
        };
        if new.totp_secret != row.totp_secret || new.totp_pending_secret != row.totp_pending_secret {
            if state.db.replace_sealed(&row, &new).await.map_err(|e| e.message)? {
                done += 1;
            } else {
                return Err(format!("account {} changed during the rotation; run the command again", row.id));
            }
        }
    }
    Ok(done)
}

/// Accounts whose unused recovery codes are hashed under a key other than
/// the current one (or the unkeyed form of older releases). A keyed hash
/// cannot be moved to a new key without the code itself, so these keep
/// working only while their key stays in SECRETS_KEYS_PREVIOUS, until the
/// owner makes a new set.
pub async fn recovery_codes_on_old_keys(state: &AppState) -> Result<Vec<(String, usize)>, String> {
    let rows = state.db.unused_recovery_hashes().await.map_err(|e| e.message)?;
    let current = state.secrets.current_id();
    let mut by_key: std::collections::BTreeMap<String, std::collections::BTreeSet<i64>> = Default::default();
    for (user_id, stored) in rows {
        let key = SecretBox::recovery_key_id(&stored).unwrap_or("(unkeyed, from an older release)");
        if key != current {
            by_key.entry(key.to_owned()).or_default().insert(user_id);
        }
    }
    Ok(by_key.into_iter().map(|(key, users)| (key, users.len())).collect())
}

/// The rotation and what it leaves under older keys, as the command prints it.
pub async fn rotate_secrets_key_report(state: &AppState) -> Result<String, String> {
    let resealed = rotate_secrets_key(state).await?;
    let mut report =
        format!("re-encrypted the secrets of {resealed} account(s) under key {:?}\n", state.secrets.current_id());
    let keys = app::server::oidc::keys::reseal(state).await.map_err(|e| {
        format!(
            "{} (an OpenID signing key is under a key that is neither SECRETS_KEY nor in SECRETS_KEYS_PREVIOUS)",
            e.message
        )
    })?;
    if keys > 0 {
        report.push_str(&format!("re-encrypted {keys} OpenID signing key(s)\n"));
    }
    for (key, accounts) in recovery_codes_on_old_keys(state).await? {
        report.push_str(&format!(
            "{accounts} account(s) have recovery codes hashed under key {key:?}: they keep working while that key \
             stays in SECRETS_KEYS_PREVIOUS, and move to the new key when the owner makes a new set\n"
        ));
    }
    Ok(report)
}

/// `user list`: one line per account.
pub async fn list_users(state: &AppState) -> Result<String, String> {
    let users = state.db.list_users().await.map_err(|e| e.message)?;
    let mut out =
        format!("{:>6}  {:<3}  {:<16}  {:<40}  {:<24}  {}\n", "id", "2fa", "created (UTC)", "email", "groups", "name");
    for u in &users {
        let groups = state.db.groups_of(u.id).await.map_err(|e| e.message)?.join(",");
        out.push_str(&format!(
            "{:>6}  {:<3}  {:<16}  {:<40}  {:<24}  {}\n",
            u.id,
            if u.totp_enabled == 1 { "on" } else { "off" },
            app::format_utc(u.created_at),
            u.email,
            if groups.is_empty() { "-" } else { &groups },
            u.name
        ));
    }
    out.push_str(&format!("{} account(s)\n", users.len()));
    Ok(out)
}

fn parse_email(email: &str) -> Result<Email, String> {
    Email::parse(email).map_err(|e| format!("{email:?}: {e}"))
}

/// `user reset-2fa EMAIL`.
pub async fn reset_two_factor(state: &AppState, email: &str) -> Result<String, String> {
    let email = parse_email(email)?;
    match protection::operator_reset_two_factor(state, &email).await.map_err(|e| e.message)? {
        true => Ok(format!(
            "two-factor authentication is off for {email}; every session ended; the user sees this in their activity"
        )),
        false => Err(format!("no account with the email {email}")),
    }
}

/// `user revoke-sessions EMAIL`.
pub async fn revoke_sessions(state: &AppState, email: &str) -> Result<String, String> {
    let email = parse_email(email)?;
    match logins::operator_revoke_sessions(state, &email).await.map_err(|e| e.message)? {
        true => Ok(format!("every session of {email} ended")),
        false => Err(format!("no account with the email {email}")),
    }
}

/// `user confirm-email EMAIL`: the operator vouches for the address.
pub async fn confirm_email(state: &AppState, email: &str) -> Result<String, String> {
    let email = parse_email(email)?;
    let user = state.db.user_by_email(email.as_str()).await.map_err(|e| e.message)?;
    let Some(user) = user else { return Err(format!("no account with the email {email}")) };
    if user.email_verified_at.is_some() {
        return Ok(format!("the address {email} was confirmed already"));
    }
    let mut tx = state.db.begin().await.map_err(|e| e.message)?;
    tx.set_email_verified(user.id, state.now()).await.map_err(|e| e.message)?;
    tx.commit().await.map_err(|e| e.message)?;
    Ok(format!("the address {email} is confirmed; the gate passes it on as Remote-Email"))
}

/// `user delete EMAIL [--yes]`.
pub async fn delete_user(state: &AppState, email: &str, yes: bool) -> Result<String, String> {
    let email = parse_email(email)?;
    let user = state.db.user_by_email(email.as_str()).await.map_err(|e| e.message)?;
    let Some(user) = user else { return Err(format!("no account with the email {email}")) };
    if !yes {
        return Err(format!(
            "this would delete the account of {email} ({}): every log-in ends, its factors, groups and mail go; \
             run again with --yes to do it",
            user.name
        ));
    }
    let meta = account::operator_meta();
    let mut tx = state.db.begin().await.map_err(|e| e.message)?;
    let deleted = account::delete_account(state, &mut tx, &user, None, &meta).await.map_err(|e| e.message)?;
    app::server::audit::commit(state, tx).await.map_err(|e| e.message)?;
    if !deleted {
        return Err(format!("no account with the email {email}"));
    }
    Ok(format!("deleted the account of {email}; its activity stays, without its name"))
}

/// `invite create`: the same checks and the same transaction as the admin
/// page's, made by the operator.
pub async fn invite(
    state: &AppState,
    email: &str,
    groups: Vec<String>,
    days: i64,
    mail: bool,
) -> Result<String, String> {
    use app::server::admin::invitations;
    let new = invitations::check(state, email, groups, days, mail).await.map_err(|e| e.message)?;
    let meta = account::operator_meta();
    let made = invitations::make(state, &meta, None, new).await.map_err(|e| e.message)?;
    let until = app::format_utc(made.expires_at);
    Ok(match made.link {
        Some(link) => format!("invitation {} made; its link works once, until {until} UTC:\n{link}", made.id),
        None => format!("invitation {} made; its link is mailed to {email} and works once, until {until} UTC", made.id),
    })
}

/// `invite list`.
pub async fn list_invitations(state: &AppState) -> Result<String, String> {
    let rows = state.db.invitations(100).await.map_err(|e| e.message)?;
    let now = state.now();
    let mut out = format!("{:>6}  {:<10}  {:<16}  {:<40}  {}\n", "id", "state", "expires (UTC)", "for", "groups");
    for r in &rows {
        let status = match (r.used_at, r.revoked_at) {
            (Some(_), _) => "used",
            (None, Some(_)) => "revoked",
            (None, None) if r.expires_at <= now => "expired",
            (None, None) => "live",
        };
        out.push_str(&format!(
            "{:>6}  {:<10}  {:<16}  {:<40}  {}\n",
            r.id,
            status,
            app::format_utc(r.expires_at),
            r.email.as_deref().unwrap_or("any address"),
            if r.group_names.is_empty() { "-" } else { &r.group_names },
        ));
    }
    out.push_str(&format!("{} invitation(s)\n", rows.len()));
    Ok(out)
}

/// `invite revoke ID`.
pub async fn revoke_invitation(state: &AppState, id: i64) -> Result<String, String> {
    let meta = account::operator_meta();
    let email = app::server::admin::invitations::revoke(state, &meta, None, id).await.map_err(|e| e.message)?;
    Ok(format!("revoked invitation {id} (for {})", email.as_deref().unwrap_or("any address")))
}

/// Group names as access rules name them: letters, digits, `-`, `_`, `.`.
fn parse_group(group: &str) -> Result<String, String> {
    let group = group.trim();
    if group.is_empty()
        || group.len() > 64
        || !group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("{group:?}: a group name is 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    Ok(group.to_owned())
}

/// `user groups EMAIL [add|remove GROUP]`: lists, or changes, a user's groups.
pub async fn groups(state: &AppState, email: &str, change: Option<(bool, &str)>) -> Result<String, String> {
    let email = parse_email(email)?;
    let user = state
        .db
        .user_by_email(email.as_str())
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| format!("no account with the email {email}"))?;
    let note = match change {
        None => String::new(),
        Some((add, group)) => {
            let group = parse_group(group)?;
            let changed = state.db.set_group(user.id, &group, add, state.now()).await.map_err(|e| e.message)?;
            match (add, changed) {
                (true, true) => format!("added {email} to {group}\n"),
                (true, false) => format!("{email} was already in {group}\n"),
                (false, true) => format!("removed {email} from {group}\n"),
                (false, false) => format!("{email} was not in {group}\n"),
            }
        }
    };
    let groups = state.db.groups_of(user.id).await.map_err(|e| e.message)?;
    let list = if groups.is_empty() { "(none)".to_owned() } else { groups.join(", ") };
    Ok(format!("{note}groups of {email}: {list}"))
}

/// `user passkeys EMAIL [remove ID]`.
pub async fn passkeys(state: &AppState, email: &str, remove: Option<&str>) -> Result<String, String> {
    use app::server::factors::passkeys;
    let email = parse_email(email)?;
    let no_account = || format!("no account with the email {email}");
    let note = match remove {
        None => String::new(),
        Some(id) => match passkeys::operator_remove(state, &email, id).await.map_err(|e| e.message)? {
            None => return Err(no_account()),
            Some(false) => return Err(format!("{email} has no passkey with the id {id}")),
            Some(true) => format!("removed passkey {id} of {email}\n"),
        },
    };
    let list = passkeys::operator_list(state, &email).await.map_err(|e| e.message)?.ok_or_else(no_account)?;
    let mut out = format!("{note}passkeys of {email}: {}\n", list.len());
    for p in list {
        let used = p.last_used_at.map(app::ui::format_utc).unwrap_or_else(|| "never".into());
        let synced = if p.synced {
            "synced"
        } else if p.syncable {
            "may sync"
        } else {
            "this device only"
        };
        out.push_str(&format!(
            "  {}  {:?}  added {}  last used {used}  {synced}\n",
            p.id,
            p.name,
            app::ui::format_utc(p.created_at)
        ));
    }
    Ok(out)
}

/// `user add EMAIL NAME`: an account made by the operator (the way in when
/// SIGNUP is closed). The password is the first line of standard input, so
/// it never shows in the process list or the shell history.
pub async fn add_user(
    state: &AppState,
    database_url: &str,
    email: &str,
    name: &str,
    password_line: &str,
    admin: bool,
) -> Result<String, String> {
    let email = parse_email(email)?;
    let name = app::domain::PersonName::parse(name).map_err(|e| format!("{name:?}: {e}"))?;
    let password = app::domain::Password::parse(password_line.trim_end_matches(['\r', '\n']))
        .map_err(|e| format!("the password: {e}"))?;
    match account::operator_add_user(state, email.clone(), name, password, admin).await {
        Ok(true) if admin => Ok(format!(
            "created {email} in {}, an administrator (group {}); the address counts as confirmed. The admin page \
             (/admin) opens for them once they have turned on two-factor authentication",
            database_place(database_url),
            state.admin_group
        )),
        Ok(true) => Ok(format!(
            "created {email} in {}; the address counts as confirmed. They can log in and turn on two-factor \
             authentication",
            database_place(database_url)
        )),
        Ok(false) => Err(format!("an account with the email {email} already exists")),
        Err(e) => Err(e.fields.get("password").cloned().unwrap_or(e.message)),
    }
}

/// `server mail test ADDRESS`: sends a test message now, through the
/// configured transport, and says what happened. The message is queued
/// like any other (so `mail queue` shows a failure) but tried once only.
pub async fn mail_test(state: &AppState, address: &str) -> Result<String, String> {
    use app::server::mail::{self, Delivery, MailKind};
    let address = address.trim();
    mail::parse_mailbox(address).map_err(|e| format!("cannot send to {address:?}: {e}"))?;
    let meta = app::server::request::RequestMeta::default();
    let id = mail::enqueue(state, MailKind::Test, None, address, &meta).await.map_err(|e| e.message)?;
    let now = state.now();
    // A running server's worker may take it first; either way it is sent once.
    if !state.db.claim_mail(id, now, now + 120).await.map_err(|e| e.message)? {
        return Ok(format!("queued as #{id}; a running server is sending it ({})", state.mail.describe()));
    }
    let row = state.db.mail_by_id(id).await.map_err(|e| e.message)?.ok_or("the queued message vanished")?;
    match mail::deliver(state, &row).await.map_err(|e| e.message)? {
        Delivery::Sent => Ok(format!("sent a test message to {address} through {}", state.mail.describe())),
        Delivery::Retry(why) | Delivery::GaveUp(why) => {
            Err(format!("could not send to {address} through {}: {why}", state.mail.describe()))
        }
        Delivery::Dropped => Err("the test message was dropped".into()),
    }
}

/// `server mail queue`: pending and failed messages, and how many were
/// sent in the last 24 hours.
pub async fn mail_queue(state: &AppState) -> Result<String, String> {
    let now = state.now();
    let (rows, sent) = state.db.mail_queue(now - 86_400).await.map_err(|e| e.message)?;
    let mut out = format!("mail goes to {}\n", state.mail.describe());
    if rows.is_empty() {
        out.push_str("nothing pending or failed\n");
    }
    for row in &rows {
        let when = if row.status == "pending" {
            let wait = row.next_attempt_at - now;
            if wait > 0 { format!("next attempt in {wait} s") } else { "due now".to_owned() }
        } else {
            "given up".to_owned()
        };
        out.push_str(&format!(
            "#{} {} {} to {}: {} attempt(s), {when}{}\n",
            row.id,
            row.status,
            row.kind,
            row.address,
            row.attempts,
            row.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
        ));
    }
    out.push_str(&format!("{sent} sent in the last 24 hours"));
    Ok(out)
}

// ---------------------------------------------------------------- OpenID

pub async fn oidc_add_client(
    state: &AppState,
    new: &app::server::oidc::clients::NewClient,
    json: bool,
) -> Result<String, String> {
    let meta = app::server::request::RequestMeta::default();
    let created = app::server::oidc::clients::add(state, &meta, None, new).await.map_err(|e| e.message)?;
    if json {
        return Ok(serde_json::json!({ "clientId": created.id, "clientSecret": created.secret }).to_string());
    }
    let issuer = &state.oidc.issuer;
    Ok(match created.secret {
        Some(secret) => format!(
            "client id:     {}\nclient secret: {secret}\n(the secret is shown this once; it is stored hashed)\n\
             issuer:        {issuer}\ndiscovery:     {issuer}/.well-known/openid-configuration",
            created.id
        ),
        None => format!(
            "client id:     {} (public: no secret, PKCE S256)\nissuer:        {issuer}\n\
             discovery:     {issuer}/.well-known/openid-configuration",
            created.id
        ),
    })
}

pub async fn oidc_list_clients(state: &AppState) -> Result<String, String> {
    let clients = state.db.oidc_clients().await.map_err(|e| e.message)?;
    if clients.is_empty() {
        return Ok("no apps yet: add one with `server oidc client add`".into());
    }
    let mut out = String::new();
    for c in clients {
        let kind = if c.is_public() { "public" } else { "confidential" };
        let old = if c.previous_secret_hash.is_some() { ", old secret still good" } else { "" };
        let groups = if c.allowed_groups.is_empty() { "everyone".to_owned() } else { c.allowed_groups.clone() };
        out.push_str(&format!(
            "{}  {}  ({kind}{old}; consent {}; PKCE {}; two factors {}; for {groups})\n",
            c.id,
            c.name,
            c.consent,
            if c.pkce_required() { "required" } else { "optional" },
            if c.needs_two_factors() { "required" } else { "optional" },
        ));
        if let Some(words) = c.second_factor_words() {
            out.push_str(&format!("    {words}\n"));
        }
        let networks: Vec<&str> = c.one_factor_networks().collect();
        if !networks.is_empty() {
            out.push_str(&format!("    the password alone from {}\n", networks.join(", ")));
        }
        for uri in c.redirect_uris() {
            out.push_str(&format!("    redirect {uri}\n"));
        }
        for uri in c.post_logout_redirect_uris() {
            out.push_str(&format!("    after log-out {uri}\n"));
        }
        if let Some(uri) = &c.backchannel_logout_uri {
            out.push_str(&format!("    back-channel log-out {uri}\n"));
        }
    }
    Ok(out)
}

pub async fn oidc_remove_client(state: &AppState, id: &str) -> Result<String, String> {
    let meta = app::server::request::RequestMeta::default();
    match app::server::oidc::clients::remove(state, &meta, None, id).await.map_err(|e| e.message)? {
        Some(name) => Ok(format!("removed {name} ({id}): its sign-ins and tokens have ended")),
        None => Err(format!("no app with client id {id}")),
    }
}

pub async fn oidc_rotate_client_secret(state: &AppState, id: &str) -> Result<String, String> {
    let meta = app::server::request::RequestMeta::default();
    match app::server::oidc::clients::rotate_secret(state, &meta, None, id).await.map_err(|e| e.message)? {
        Some(secret) => Ok(format!(
            "new client secret: {secret}\n(shown this once; the old secret stays good until \
             `server oidc client remove-old-secret {id}`)"
        )),
        None => Err(format!("no confidential app with client id {id}")),
    }
}

pub async fn oidc_remove_old_secret(state: &AppState, id: &str) -> Result<String, String> {
    let meta = app::server::request::RequestMeta::default();
    match app::server::oidc::clients::remove_old_secret(state, &meta, None, id).await.map_err(|e| e.message)? {
        true => Ok(format!("the old secret of {id} no longer works")),
        false => Err(format!("{id} has no old secret (or no such app)")),
    }
}

pub async fn oidc_rotate_key(state: &AppState) -> Result<String, String> {
    let kid = app::server::oidc::keys::rotate(state).await.map_err(|e| e.message)?;
    Ok(format!("new signing key {kid}: published now, signing in {} seconds", app::server::oidc::keys::PUBLISH_SECONDS))
}

/// Where a database URL points, for the operator to read: a SQLite file
/// as an absolute path, a PostgreSQL database as host and name (never the
/// user or password).
pub fn database_place(url: &str) -> String {
    if let Some(path) = sqlite_file(url) {
        return std::path::absolute(&path).unwrap_or(path).display().to_string();
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    format!("postgres://{}", host_and_db.split('?').next().unwrap_or(host_and_db))
}

/// The file of a SQLite URL (`sqlite://data/twofactor.db?mode=rwc`).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Said after a command that made a new SQLite database: run from another
/// directory (or without the server's `DATABASE_URL`), a command works on a
/// database of its own that the server never reads.
pub fn new_database_warning(url: &str) -> String {
    format!(
        "note: there was no database at {}, so this command made a new, empty one (with new keys in DATA_DIR). \
         If your server runs elsewhere, run the command from the directory the server runs in, or with the \
         same DATABASE_URL and DATA_DIR as the server.",
        database_place(url)
    )
}

#[cfg(test)]
mod place_tests {
    use super::*;

    #[test]
    fn places_name_the_file_or_the_database_and_never_a_password() {
        assert!(database_place("sqlite://data/twofactor.db?mode=rwc").ends_with("/data/twofactor.db"));
        assert_eq!(database_place("sqlite:///srv/tf.db"), "/srv/tf.db");
        assert_eq!(
            database_place("postgres://app:s3cret@db.internal:5432/twofactor?sslmode=require"),
            "postgres://db.internal:5432/twofactor"
        );
        assert_eq!(sqlite_file("postgres://x/y"), None);
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
