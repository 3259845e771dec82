//! What a page learns from the server about a form it just posted without
//! JavaScript (or before the WebAssembly loaded). The server handles the
//! post, then renders the page with a `FormOutcome` in context; the page
//! reads it through `SharedValue`, so the hydrated page starts from the same
//! state the server drew. A password or a code is never a kept field.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::wire::GenerateResponse;

/// Which form of a page was posted (the hidden `intent` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    SignUp,
    Password,
    Code,
    Recovery,
    Restart,
    Enrol,
    Confirm,
    Regenerate,
    TurnOff,
    ChangePassword,
    Everywhere,
    RenamePasskey,
    RemovePasskey,
    PasskeyCodes,
    /// The one form of a page mail leads to (see `mailed`).
    Mailed,
    /// "Log out" beside one log-in of the security page's list.
    EndLogIn,
    /// "Take back access" beside one of the security page's connected apps.
    RevokeApp,
    /// Any form of the admin page (its `action` field says which).
    Admin,
    /// "Forget" beside one remembered browser (its `browser` field), or
    /// "Forget all" (none).
    ForgetBrowsers,
    /// A second factor shown again for an app that wants one now.
    StepUp,
}

impl Intent {
    const ALL: [Intent; 20] = [
        Intent::SignUp,
        Intent::Password,
        Intent::Code,
        Intent::Recovery,
        Intent::Restart,
        Intent::Enrol,
        Intent::Confirm,
        Intent::Regenerate,
        Intent::TurnOff,
        Intent::ChangePassword,
        Intent::Everywhere,
        Intent::RenamePasskey,
        Intent::RemovePasskey,
        Intent::PasskeyCodes,
        Intent::Mailed,
        Intent::EndLogIn,
        Intent::RevokeApp,
        Intent::Admin,
        Intent::ForgetBrowsers,
        Intent::StepUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::SignUp => "sign-up",
            Intent::Password => "password",
            Intent::Code => "code",
            Intent::Recovery => "recovery",
            Intent::Restart => "restart",
            Intent::Enrol => "enrol",
            Intent::Confirm => "confirm",
            Intent::Regenerate => "regenerate",
            Intent::TurnOff => "turn-off",
            Intent::ChangePassword => "change-password",
            Intent::Everywhere => "everywhere",
            Intent::RenamePasskey => "rename-passkey",
            Intent::RemovePasskey => "remove-passkey",
            Intent::PasskeyCodes => "passkey-codes",
            Intent::Mailed => "mailed",
            Intent::EndLogIn => "end-log-in",
            Intent::RevokeApp => "revoke-app",
            Intent::Admin => "admin",
            Intent::ForgetBrowsers => "forget-browsers",
            Intent::StepUp => "step-up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

/// What a successful post left to show on the page it rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shown {
    /// A pending secret to scan (enrolment started, or a wrong code).
    Enrolment(GenerateResponse),
    /// Recovery codes, shown once.
    RecoveryCodes(Vec<String>),
    PasswordChanged,
    /// The app's key moved to a new phone (sessions and codes unchanged).
    KeyReplaced,
    /// One log-in of the list ended: its browser, in words.
    LogInEnded(String),
    /// An app's access was taken back: its name.
    AppRevoked(String),
    /// Remembered browsers forgotten: what the server said.
    BrowsersForgotten(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormOutcome {
    pub intent: Intent,
    pub error: Option<AppError>,
    /// Non-secret fields to put back into the form (email, name).
    pub fields: BTreeMap<String, String>,
    pub shown: Option<Shown>,
}

impl FormOutcome {
    pub fn new(intent: Intent) -> Self {
        Self { intent, error: None, fields: BTreeMap::new(), shown: None }
    }

    pub fn field(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }

    /// The error, if this outcome is for `intent`.
    pub fn error_for(&self, intent: Intent) -> Option<AppError> {
        (self.intent == intent).then(|| self.error.clone()).flatten()
    }
}

/// The outcome of the post this page answers, if it answers one. Call once
/// per page, at the same place on server and client (the value is matched
/// to its serialised copy by position during hydration).
pub fn page_outcome() -> Option<FormOutcome> {
    SharedValue::new(use_context::<FormOutcome>).into_inner()
}
