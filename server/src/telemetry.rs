//! Logging: human-readable text by default, JSON lines with LOG_FORMAT=json.
//! Filter with RUST_LOG (default `info`). Nothing secret is ever logged:
//! passwords, codes and secrets are redacted types or never passed here.
//! Each request's fields (see `trace`) are on every line logged while it
//! is handled: in text as `request{…}:`, in JSON as the innermost span
//! under `span` and every span, outermost first, under `spans`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // stderr, so operator commands can print their results on stdout.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
