//! The message a queued row asks for, made when it is sent: the link and
//! its single-use token, the subject and the words, plain text and HTML.
//! What people typed is escaped, and a browser is named, never quoted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::kinds::{MailKind, Notice, Purpose};
use super::smtp::parse_mailbox;
use crate::server::crypto::{random_bytes, sha256_hex};
use crate::server::db::MailRow;
use crate::server::state::AppState;
use crate::server::time_zone::format_time;

/// A password-reset link works this long.
pub const RESET_TTL: i64 = 30 * 60;
/// A verification or lockdown link works this long.
pub const LINK_TTL: i64 = 7 * 86_400;

pub(super) struct Made {
    pub(super) message: Message,
    /// The token the message's link carries (deleted if sending fails).
    pub(super) token_hash: Option<String>,
}

/// A new single-use link to `path` for `purpose`: the URL to mail and the
/// stored hash. `mail_id`: the queued message it goes in (a lockdown link
/// remembers its notice, to say later what set the lockdown off).
async fn new_link(
    state: &AppState,
    user_id: i64,
    purpose: Purpose,
    ttl: i64,
    path: &str,
    mail_id: Option<i64>,
) -> Result<(String, String), String> {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>().map_err(|e| e.message)?);
    let hash = sha256_hex(token.as_bytes());
    let now = state.now();
    state
        .db
        .insert_mailed_token(&hash, user_id, purpose.as_str(), now, now + ttl, mail_id)
        .await
        .map_err(|e| e.message)?;
    Ok((format!("{}{path}?token={token}", state.gate.public_url), hash))
}

/// The message a row asks for, or `None` when there is nothing to send.
pub(super) async fn compose(state: &AppState, row: &MailRow) -> Result<Option<Made>, String> {
    let kind = MailKind::parse(&row.kind).ok_or_else(|| format!("unknown kind {:?}", row.kind))?;
    let user = match kind {
        MailKind::Test | MailKind::Invite(_) => None,
        // Asked for by address: there may be no such account (then nothing
        // is sent, and the asker saw the same answer either way).
        MailKind::Reset => match state.db.user_by_email(&row.address).await.map_err(|e| e.message)? {
            Some(user) => Some(user),
            None => return Ok(None),
        },
        // Sent again on request, by address, on the same terms.
        MailKind::Verify if row.user_id.is_none() => {
            match state.db.user_by_email(&row.address).await.map_err(|e| e.message)? {
                Some(user) => Some(user),
                None => return Ok(None),
            }
        }
        _ => match row.user_id {
            Some(id) => match state.db.user_by_id(id).await.map_err(|e| e.message)? {
                Some(user) => Some(user),
                None => return Ok(None),
            },
            None => return Ok(None),
        },
    };
    let issuer = &*state.issuer;
    // The name was typed by whoever made the account. Until the address is
    // confirmed that may be a stranger using someone else's address (with
    // an advert or a link for a name), so no mail carries it before.
    let trusted_name = user.as_ref().filter(|u| u.email_verified_at.is_some()).map(|u| u.name.as_str());
    let greeting = trusted_name.map(|name| format!("Hello {name},")).unwrap_or_else(|| "Hello,".into());
    // Times in the person's zone once their browser said it, else UTC.
    let zone = user.as_ref().and_then(|u| u.time_zone.as_deref());
    let when = |at: i64| format_time(at, zone);
    let mut token_hash = None;
    // The button follows the paragraph that introduces it.
    let mut button_after = 0;
    let (subject, paragraphs, button): (String, Vec<String>, Option<(String, String)>) = match (kind, &user) {
        (MailKind::Test, _) => (
            format!("{issuer}: test message"),
            vec![format!(
                "This is a test message from {issuer} at {}, sent by the operator's `server mail test` command. \
                 Mail from it reaches this address.",
                state.gate.public_url
            )],
            None,
        ),
        (MailKind::Verify, Some(u)) => {
            if u.email_verified_at.is_some() {
                return Ok(None);
            }
            let (link, hash) = new_link(state, u.id, Purpose::Verify, LINK_TTL, "/verify-email", None).await?;
            token_hash = Some(hash);
            (
                format!("{issuer}: confirm your email address"),
                vec![
                    format!("An account on {issuer} was made with this address. Confirm that it is yours:"),
                    "The link works once, for 7 days. If you did not make this account, ignore this message.".into(),
                ],
                Some(("Confirm my email address".into(), link)),
            )
        }
        (MailKind::Reset, Some(u)) => {
            let (link, hash) = new_link(state, u.id, Purpose::Reset, RESET_TTL, "/reset-password", None).await?;
            token_hash = Some(hash);
            (
                format!("{issuer}: set a new password"),
                vec![
                    "Someone asked to reset the password of your account. To choose a new one, open this link:".into(),
                    "It works once, for 30 minutes. It does not log you in: afterwards you log in with the new \
                     password and, if two-factor authentication is on, your code or passkey as usual. Every \
                     session of the account will end."
                        .into(),
                    "If you did not ask for this, ignore this message: your password stays as it is.".into(),
                ],
                Some(("Set a new password".into(), link)),
            )
        }
        (MailKind::Locked, Some(u)) => {
            // What happened leads: which event the notice reported, and when.
            let cause = state.db.latest_lockdown_cause(u.id).await.map_err(|e| e.message)?;
            let reported = cause.as_ref().and_then(|c| match MailKind::parse(&c.kind) {
                Some(MailKind::Notice(notice)) => Some((notice, c)),
                _ => None,
            });
            let what = match reported {
                Some((notice, c)) => format!(
                    "Your account was locked on {} from the \"This wasn't me\" link of our notice about {}: {}.",
                    when(row.event_at),
                    notice.reported(),
                    facts(c.user_agent.as_deref(), c.ip.as_deref(), &when(c.at)),
                ),
                None => format!(
                    "Your account was locked on {} from the \"This wasn't me\" link of a security notice.",
                    when(row.event_at)
                ),
            };
            let (link, hash) = new_link(state, u.id, Purpose::Reset, RESET_TTL, "/reset-password", None).await?;
            token_hash = Some(hash);
            button_after = 2;
            (
                format!("{issuer}: your account is locked"),
                vec![
                    what,
                    "Every session has ended, on every device and on the apps behind this portal, and nobody can \
                     log in until the password is reset."
                        .into(),
                    "Set a new password with this link (it works once, for 30 minutes; after that, use \
                     \"Forgot your password?\" on the log-in page):"
                        .into(),
                    "Then log in and open the security page: its activity marks what set this off. Look over your \
                     passkeys and log-ins there, and if you used this password anywhere else, change it there too."
                        .into(),
                ],
                Some(("Set a new password".into(), link)),
            )
        }
        (MailKind::Notice(Notice::LockedByAdmin), Some(_)) => {
            let (subject, what) = Notice::LockedByAdmin.words();
            (
                format!("{issuer}: {}", subject.to_lowercase()),
                vec![
                    what.to_owned(),
                    // When, not from where: the browser and address are the
                    // administrator's, not the person's to know.
                    format!("It happened on {}.", when(row.event_at)),
                    "To use it again, ask your administrator to unlock it, or set a new password with \"Forgot \
                     your password?\" on the log-in page: a reset through the emailed link unlocks it."
                        .into(),
                ],
                None,
            )
        }
        (MailKind::Notice(notice), Some(u)) => {
            let (link, hash) = new_link(state, u.id, Purpose::Lockdown, LINK_TTL, "/lockdown", Some(row.id)).await?;
            token_hash = Some(hash);
            let (subject, what) = notice.words();
            // The facts come before the button: what, which browser, from
            // where, when.
            button_after = 3;
            (
                format!("{issuer}: {}", subject.to_lowercase()),
                vec![
                    what.to_owned(),
                    event_facts(row, &when),
                    "If this was you, there is nothing to do.".into(),
                    "If it wasn't you, lock your account now: every session ends at once and nobody can log in \
                     until the password is reset through a new email link. The link works once, for 7 days."
                        .into(),
                ],
                Some(("This wasn't me: lock my account".into(), link)),
            )
        }
        (MailKind::Invite(id), _) => {
            let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>().map_err(|e| e.message)?);
            let hash = sha256_hex(token.as_bytes());
            let now = state.now();
            // Revoked, used or expired since it was queued: nothing to send.
            let Some((_, groups, expires_at, by)) =
                state.db.give_invitation_link(id, &hash, now).await.map_err(|e| e.message)?
            else {
                return Ok(None);
            };
            // Who invited: the administrator's name, once their own address
            // is confirmed (as for any name a mail carries).
            let inviter = match by {
                Some(by) => state.db.user_by_id(by).await.map_err(|e| e.message)?,
                None => None,
            };
            let who = inviter
                .filter(|u| u.email_verified_at.is_some())
                .map(|u| format!("{} ({})", u.name, u.email))
                .unwrap_or_else(|| "An administrator".into());
            let link = format!("{}/signup?invite={token}", state.gate.public_url);
            let mut what = format!("{who} invited you to make an account on {issuer} ({}).", state.gate.public_url);
            let groups: Vec<&str> = groups.split(',').filter(|g| !g.is_empty()).collect();
            if !groups.is_empty() {
                what.push_str(&format!(" It will be in {}.", groups.join(", ")));
            }
            (
                format!("{issuer}: you are invited"),
                vec![
                    what,
                    format!(
                        "The link works once, until {}, for this address only. If you did not expect it, ignore \
                         this message.",
                        format_time(expires_at, None)
                    ),
                ],
                Some(("Make my account".into(), link)),
            )
        }
        (_, None) => return Ok(None),
    };
    let to = match &user {
        Some(u) => mailbox(trusted_name, &u.email),
        None => parse_mailbox(&row.address),
    };
    let message = to.and_then(|to| {
        let button = button.as_ref().map(|b| (b, button_after));
        build_message(&state.mail.from, to, &subject, &greeting, &paragraphs, button, issuer)
    });
    match message {
        Ok(message) => Ok(Some(Made { message, token_hash })),
        Err(why) => {
            if let Some(hash) = &token_hash {
                let _ = state.db.delete_email_token(hash).await;
            }
            Err(why)
        }
    }
}

fn mailbox(name: Option<&str>, email: &str) -> Result<Mailbox, String> {
    let address = email.parse().map_err(|e| format!("the account's address cannot be mailed ({e})"))?;
    Ok(Mailbox::new(name.map(str::to_owned), address))
}

const UNKNOWN_BROWSER: &str = "an unknown browser";

/// "Chrome on Linux, from 203.0.113.5, on 7 Dec 2026, 06:40 UTC.": the
/// queued event's facts, as a sentence.
fn event_facts(row: &MailRow, when: &dyn Fn(i64) -> String) -> String {
    capitalised(&format!("{}.", facts(row.user_agent.as_deref(), row.ip.as_deref(), &when(row.event_at))))
}

/// "Chrome on Linux, from 203.0.113.5, on 6 Dec 2026, 14:02 CET": the
/// browser in words (never the User-Agent itself: anyone can put any text
/// there, a link included), the address, the time.
fn facts(user_agent: Option<&str>, ip: Option<&str>, when: &str) -> String {
    let browser = user_agent.map(browser_name).unwrap_or_else(|| UNKNOWN_BROWSER.into());
    let from = match ip {
        Some(ip) => format!("from {ip}"),
        None => "from an unknown address (or an operator's command)".into(),
    };
    format!("{browser}, {from}, on {when}")
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What a mail says of a browser: a name recognised in its User-Agent
/// ("Firefox on Linux", "Safari on iOS", "Chrome"), else "an unknown
/// browser". Only these fixed words come out, never the string itself.
pub fn browser_name(user_agent: &str) -> String {
    let has = |token: &str| user_agent.contains(token);
    // Order matters: Edge and Opera also say Chrome and Safari, Chrome also
    // says Safari, an iPad also says Mac OS X, Android also says Linux.
    let browser = if has("Edg/") || has("Edge/") || has("EdgA/") || has("EdgiOS/") {
        Some("Edge")
    } else if has("OPR/") || has("OPT/") || has("OPiOS/") || has("Opera") {
        Some("Opera")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let system = if has("iPhone") || has("iPad") || has("iPod") {
        Some("iOS")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("Macintosh") || has("Mac OS X") {
        Some("macOS")
    } else if has("Linux") {
        Some("Linux")
    } else {
        None
    };
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, _) => UNKNOWN_BROWSER.to_owned(),
    }
}

/// Plain text and simple HTML with the same words. Both are
/// quoted-printable, so long links survive any mail server.
fn build_message(
    from: &Mailbox,
    to: Mailbox,
    subject: &str,
    greeting: &str,
    paragraphs: &[String],
    button: Option<(&(String, String), usize)>,
    issuer: &str,
) -> Result<Message, String> {
    let mut text = format!("{greeting}\n\n");
    let mut html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:system-ui,sans-serif;line-height:1.5;color:#1f2933\">\
         <p>{}</p>",
        escape(greeting)
    );
    for (i, p) in paragraphs.iter().enumerate() {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(p)));
        // The link goes after the paragraph that introduces it.
        if let Some(((label, url), after)) = button
            && i == after
        {
            text.push_str(&format!("{url}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{0}\" style=\"display:inline-block;padding:10px 16px;background:#1d4ed8;color:#fff;\
                 text-decoration:none;border-radius:6px\">{1}</a></p><p style=\"font-size:13px;color:#52606d\">\
                 Or copy this address into your browser: {0}</p>",
                escape(url),
                escape(label)
            ));
        }
    }
    text.push_str(&format!("-- \n{issuer}\n"));
    html.push_str(&format!("<p style=\"color:#52606d\">{}</p></body></html>", escape(issuer)));
    let part = |content_type: ContentType, body: String| {
        SinglePart::builder().header(content_type).header(ContentTransferEncoding::QuotedPrintable).body(body)
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, text))
                .singlepart(part(ContentType::TEXT_HTML, html)),
        )
        .map_err(|e| format!("could not build the message: {e}"))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_named_never_quoted() {
        for (agent, name) in [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                "Opera on macOS",
            ),
            ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Linux"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 \
                 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 \
                 Mobile/15E148 Safari/604.1",
                "Chrome on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0", "Firefox on Android"),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36", "Chrome"),
            ("curl/8.5.0", "an unknown browser"),
            ("", "an unknown browser"),
            ("Windows https://evil.example/win", "an unknown browser"),
        ] {
            assert_eq!(browser_name(agent), name, "{agent}");
        }
        // Whatever is around a recognised name stays out.
        let name = browser_name("Firefox/1 <a href=https://evil.example>claim</a> Windows");
        assert_eq!(name, "Firefox on Windows");
    }

    #[test]
    fn messages_have_both_bodies_and_escape_what_people_typed() {
        let from = parse_mailbox("Login <no-reply@example.com>").unwrap();
        let to = mailbox(Some("Ann <b>"), "ann@example.com").unwrap();
        let button = ("Go".to_owned(), "https://auth.example.com/x?token=a&b".to_owned());
        let m = build_message(&from, to, "Subject", "Hello Ann <b>,", &["First".into()], Some((&button, 0)), "Login")
            .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("Hello Ann &lt;b&gt;,"), "{raw}");
        assert!(raw.contains("token=3Da&amp;b"), "quoted-printable, escaped in HTML: {raw}");
    }
}
