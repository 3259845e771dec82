//! Mail: what is sent (password resets, email verification, security
//! notices with their lockdown link, the operator's test message), the
//! queue it waits in and the worker that sends it, off the request path,
//! over SMTP (lettre) or into `.eml` files in the outbox.
//!
//! A queued row names what to send, never its text. The message, and the
//! single-use token its link carries, are made when it is sent, so no
//! working link ever sits in the database; a failed attempt deletes its
//! token and the next one makes a new one.
//!
//! - `kinds`: what a queued row asks for (`MailKind`), the security
//!   notices (`Notice`) and what a link token is for (`Purpose`).
//! - `compose`: the message a row asks for, made when it is sent: its link
//!   and token, subject and words, plain text and HTML, with what people
//!   typed escaped and browsers named, never quoted.
//! - `smtp`: where mail goes (`SMTP_URL` over lettre, or the outbox),
//!   `MAIL_FROM`, and `Mail`, the settings kept in the app state.
//! - `worker`: the queue (`enqueue`) and the worker that claims, sends and
//!   retries with a growing back-off.
//! - `links`: what the links lead to (a reset, a confirmation, a lockdown).

mod compose;
mod kinds;
pub mod links;
mod smtp;
mod worker;

pub use compose::{LINK_TTL, RESET_TTL, browser_name};
pub use kinds::{MailKind, Notice, Purpose};
pub use smtp::{Mail, SmtpSettings, parse_mailbox};
pub use worker::{
    Delivery, KEEP_SECONDS, MAX_ATTEMPTS, deliver, deliver_due, describe_row, enqueue, new_mail, run_worker,
};
