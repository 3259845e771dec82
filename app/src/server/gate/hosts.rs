//! Host names: what a rule's `domain` may say (a name, or `*.name` for
//! any name under it), and "under" compared on whole labels, for the rules
//! and for the return URL alike.

/// A host pattern: exact, or `*.example.com` for any name under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Domain {
    Exact(String),
    Under(String),
}

impl Domain {
    pub(super) fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower),
        };
        if !is_host_name(&name) {
            return Err(format!("{raw:?} is not a host name (or *.host.name)"));
        }
        Ok(if wild { Domain::Under(name) } else { Domain::Exact(name) })
    }

    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            Domain::Exact(name) => host == name,
            Domain::Under(parent) => host.len() > parent.len() + 1 && is_under(host, parent),
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Domain::Exact(name) => f.write_str(name),
            Domain::Under(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// Letters, digits, hyphens and dots, in labels of 1 to 63 characters.
pub(super) fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `host` is `parent` or a name under it, compared on whole labels:
/// `evil-example.com` is not under `example.com`.
pub fn is_under(host: &str, parent: &str) -> bool {
    host == parent || host.strip_suffix(parent).is_some_and(|head| head.ends_with('.'))
}
