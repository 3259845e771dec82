//! Wiring only: the command line, configuration, logging, state, router,
//! serve, shut down.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use app::server::clock::SystemClock;
use clap::{Parser, Subcommand};
use server::config::Config;
use server::{build_router, build_state, ops, telemetry};

/// Two-factor login server. Settings come from the environment (and .env);
/// see the README for each variable.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app and the API (the default).
    Serve,
    /// Apply the database migrations and exit (serve also applies them).
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Re-encrypt every stored TOTP secret under SECRETS_KEY. Put the old
    /// key in SECRETS_KEYS_PREVIOUS (id:hex, comma-separated) while this runs.
    RotateSecretsKey,
    /// Mail: send a test message, or see what is waiting.
    #[command(subcommand)]
    Mail(MailCommand),
    /// The OpenID provider: the apps that sign people in through it, and
    /// its signing key (docs/OIDC.md).
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// Delete expired and spent sessions, old throttle rows and audit events
    /// past AUDIT_RETENTION_DAYS (serve also does this every 10 minutes).
    Prune,
    /// Invitations: single-use links that make an account, also while
    /// SIGNUP=closed (the admin page's Invitations).
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Moving the data: copy the SQLite database into PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Write a consistent copy of the SQLite database to FILE while the
    /// server runs (PostgreSQL: pg_dump, see docs/DEPLOY.md).
    Backup { file: std::path::PathBuf },
    /// Put a backup made by `backup` in place of the SQLite database, with
    /// the server stopped; the replaced one is kept beside it.
    Restore { file: std::path::PathBuf },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy every row of the SQLite database (DATABASE_URL) into an empty
    /// PostgreSQL database, in one transaction, and check the counts. Stop
    /// the server first; then start it with DATABASE_URL set to the new one.
    Copy {
        /// The PostgreSQL database to fill (postgres://…); it must be empty.
        /// Its password is better given in COPY_TO_DATABASE_URL than here
        /// (a command line is seen by every user of the machine).
        #[arg(long, env = "COPY_TO_DATABASE_URL", hide_env_values = true)]
        to: String,
    },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Make an invitation and print its link (or mail it with --mail).
    Create {
        /// The only address the account may have.
        #[arg(long)]
        email: Option<String>,
        /// A group the account joins (repeat for more; never ADMIN_GROUP).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How many days the link works (1 to 30).
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Mail the link to --email through the queue instead of printing it.
        #[arg(long)]
        mail: bool,
    },
    /// List the newest invitations and what became of each.
    List,
    /// Revoke an invitation not yet used (its id from `invite list`).
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum UserCommand {
    /// List every account with its 2FA state.
    List,
    /// Turn 2FA off for a user who lost both phone and recovery codes (check
    /// who they are first). Ends their sessions; recorded in their activity.
    #[command(name = "reset-2fa")]
    ResetTwoFactor { email: String },
    /// End every session of a user, on every device.
    RevokeSessions { email: String },
    /// Mark a user's email address confirmed (you know it is theirs): the
    /// gate then passes it on as Remote-Email. Accounts made with `user add`
    /// are confirmed already.
    ConfirmEmail { email: String },
    /// Create an account (the way in when SIGNUP is closed). The password is
    /// read from the first line of standard input.
    Add {
        email: String,
        name: String,
        /// Make them an administrator (a member of ADMIN_GROUP): the admin
        /// page opens once they have two factors on.
        #[arg(long)]
        admin: bool,
    },
    /// List a user's passkeys and security keys, or remove one (a lost or
    /// stolen key). Removing the last one of an account without an
    /// authenticator app turns 2FA off and ends their sessions.
    Passkeys {
        email: String,
        #[command(subcommand)]
        change: Option<PasskeyChange>,
    },
    /// Delete an account: its log-ins end (apps are told), its factors,
    /// groups and mail go; its activity stays without its name. Asks for
    /// nothing: without --yes it only says what it would do.
    Delete {
        email: String,
        #[arg(long)]
        yes: bool,
    },
    /// Show a user's groups (for ACCESS_RULES), or add or remove one.
    Groups {
        email: String,
        #[command(subcommand)]
        change: Option<GroupChange>,
    },
}

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum OidcCommand {
    /// Manage the apps (OpenID clients).
    #[command(subcommand)]
    Client(OidcClientCommand),
    /// Make a new id-token signing key. It is published at once and signs
    /// two minutes later (every instance has it by then); the old key stays
    /// published until the tokens it signed have expired.
    RotateKey,
}

/// `--fresh`: a duration as access rules write it.
fn parse_fresh(text: &str) -> Result<i64, String> {
    app::server::gate::parse_duration(text)
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum OidcClientCommand {
    /// Register an app. Prints its client id and, once, its secret.
    Add {
        /// The app's name, shown to people on the consent page.
        #[arg(long)]
        name: String,
        /// Where the app receives the code; exact match, repeat for more.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where the app may send people after logging out; repeatable.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Where the app hears that a log-in ended (Back-Channel Logout 1.0).
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// A public app (no secret; PKCE required), e.g. one running in the
        /// browser or on a phone.
        #[arg(long)]
        public: bool,
        /// Only members of these groups may use the app (comma-separated).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Ask people before their first sign-in to the app (ask), or not (skip).
        #[arg(long, default_value = "ask", value_parser = ["ask", "skip"])]
        consent: String,
        /// PKCE for a confidential app (public apps: always required).
        #[arg(long, default_value = "optional", value_parser = ["required", "optional"])]
        pkce: String,
        /// Tokens only for log-ins with two factors (required), or for any.
        #[arg(long = "two-factor", default_value = "required", value_parser = ["required", "optional"])]
        two_factor: String,
        /// With two factors: whether a remembered browser will do for the
        /// second (allowed), or the log-in must have shown one (refused).
        #[arg(long, default_value = "allowed", value_parser = ["allowed", "refused"])]
        remembered: String,
        /// With two factors: the second must have been shown this recently
        /// when the app asks for a sign-in ("15m", "12h", "7d").
        #[arg(long, value_parser = parse_fresh)]
        fresh: Option<i64>,
        /// With two factors: address ranges from which the password alone
        /// will do, comma-separated ("192.168.1.0/24,10.0.0.0/8"); the
        /// browser's address as TRUSTED_PROXY_HEADER gives it.
        #[arg(long = "one-factor-networks", value_delimiter = ',')]
        one_factor_networks: Vec<String>,
        /// Print {"clientId": …, "clientSecret": …} instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the apps.
    List,
    /// Remove an app: its grants and tokens end.
    Remove {
        // Ids are base64url: one may start with '-'.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Give an app a new secret (printed once). The old one stays good
    /// until `remove-old-secret`, so the app can be moved over first.
    RotateSecret {
        // Ids are base64url: one may start with '-'.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// End the old secret after `rotate-secret`.
    RemoveOldSecret {
        // Ids are base64url: one may start with '-'.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send a test message to ADDRESS now (through SMTP_URL, or into the
    /// outbox) and print what happened.
    Test { address: String },
    /// List pending and failed messages, and how many were sent today.
    Queue,
}

#[derive(Subcommand)]
enum PasskeyChange {
    /// Remove the passkey with this id (as `user passkeys EMAIL` lists it).
    Remove { id: String },
}

#[derive(Subcommand)]
enum GroupChange {
    /// Put the user in GROUP.
    Add { group: String },
    /// Take the user out of GROUP.
    Remove { group: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    return_large_allocations_to_the_os();
    let cli = Cli::parse();
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let command = cli.command.unwrap_or(Command::Serve);
    // Every command may be the first thing run on a new machine.
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        eprintln!("could not create the data directory {}: {e}", config.data_dir.display());
        return ExitCode::FAILURE;
    }
    if let Some(done) = moving_command(&command, &config).await {
        return match done {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    // Every process that opens a SQLite database marks it in use first (a
    // lock file beside it), so a restore or a copy never runs under it.
    let _in_use = match app::server::db::moving::mark_in_use(&config.database_url) {
        Ok(mark) => mark,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Migrate = command {
        return match app::server::db::Db::connect(&config.database_url, 1).await {
            Ok(_) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let new_database = ops::sqlite_file(&config.database_url).is_some_and(|file| !file.exists());
    let state = match build_state(&config, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("start-up failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = match command {
        Command::Serve | Command::Migrate => return serve(config, state).await,
        Command::RotateSecretsKey => ops::rotate_secrets_key_report(&state).await,
        Command::User(UserCommand::List) => ops::list_users(&state).await,
        Command::User(UserCommand::ResetTwoFactor { email }) => ops::reset_two_factor(&state, &email).await,
        Command::User(UserCommand::RevokeSessions { email }) => ops::revoke_sessions(&state, &email).await,
        Command::User(UserCommand::ConfirmEmail { email }) => ops::confirm_email(&state, &email).await,
        Command::User(UserCommand::Delete { email, yes }) => ops::delete_user(&state, &email, yes).await,
        Command::Invite(InviteCommand::Create { email, groups, days, mail }) => {
            ops::invite(&state, email.as_deref().unwrap_or(""), groups, days, mail).await
        }
        Command::Invite(InviteCommand::List) => ops::list_invitations(&state).await,
        Command::Invite(InviteCommand::Revoke { id }) => ops::revoke_invitation(&state, id).await,
        Command::User(UserCommand::Add { email, name, admin }) => {
            let mut line = String::new();
            match std::io::stdin().read_line(&mut line) {
                Ok(_) => ops::add_user(&state, &config.database_url, &email, &name, &line, admin).await,
                Err(e) => Err(format!("could not read the password from standard input: {e}")),
            }
        }
        Command::User(UserCommand::Groups { email, change }) => {
            let change = match &change {
                None => None,
                Some(GroupChange::Add { group }) => Some((true, group.as_str())),
                Some(GroupChange::Remove { group }) => Some((false, group.as_str())),
            };
            ops::groups(&state, &email, change).await
        }
        Command::User(UserCommand::Passkeys { email, change }) => {
            let remove = change.as_ref().map(|PasskeyChange::Remove { id }| id.as_str());
            ops::passkeys(&state, &email, remove).await
        }
        Command::Mail(MailCommand::Test { address }) => ops::mail_test(&state, &address).await,
        Command::Mail(MailCommand::Queue) => ops::mail_queue(&state).await,
        Command::Oidc(OidcCommand::RotateKey) => ops::oidc_rotate_key(&state).await,
        Command::Oidc(OidcCommand::Client(OidcClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            public,
            groups,
            consent,
            pkce,
            two_factor,
            remembered,
            fresh,
            one_factor_networks,
            json,
        })) => {
            let new = app::server::oidc::clients::NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                public,
                groups,
                consent_ask: consent == "ask",
                pkce_required: pkce == "required",
                two_factor: two_factor == "required",
                remembered: remembered == "allowed",
                fresh,
                one_factor_networks,
            };
            ops::oidc_add_client(&state, &new, json).await
        }
        Command::Oidc(OidcCommand::Client(OidcClientCommand::List)) => ops::oidc_list_clients(&state).await,
        Command::Oidc(OidcCommand::Client(OidcClientCommand::Remove { id })) => {
            ops::oidc_remove_client(&state, &id).await
        }
        Command::Oidc(OidcCommand::Client(OidcClientCommand::RotateSecret { id })) => {
            ops::oidc_rotate_client_secret(&state, &id).await
        }
        Command::Oidc(OidcCommand::Client(OidcClientCommand::RemoveOldSecret { id })) => {
            ops::oidc_remove_old_secret(&state, &id).await
        }
        // Handled by `moving_command` before the state is built.
        Command::Db(_) | Command::Backup { .. } | Command::Restore { .. } => Ok(String::new()),
        Command::Prune => app::server::retention::prune(&state)
            .await
            .map_err(|e| e.message)
            .map(|p| format!("deleted {} session, {} throttle and {} audit row(s)", p.sessions, p.throttle, p.audit)),
    };
    state.db.close().await;
    if new_database {
        eprintln!("{}", ops::new_database_warning(&config.database_url));
    }
    match done {
        Ok(message) => {
            println!("{}", message.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `db copy`, `backup` and `restore`: they work on the database files
/// themselves, before anything opens them (None: another command).
async fn moving_command(command: &Command, config: &Config) -> Option<Result<String, String>> {
    use app::server::db::moving;
    let url = &config.database_url;
    Some(match command {
        Command::Db(DbCommand::Copy { to }) => {
            let _alone = match moving::hold_for_copy(url) {
                Ok(alone) => alone,
                Err(e) => return Some(Err(e)),
            };
            moving::copy_sqlite_to_postgres(url, to).await.map(|counts| {
                let total: i64 = counts.iter().map(|c| c.rows).sum();
                format!(
                    "copied {total} row(s) in {} tables, each count checked on both sides:\n{}next: keep the server \
                 stopped, set DATABASE_URL to the PostgreSQL database (same DATA_DIR, SECRETS_KEY and JWT_SECRET), \
                 start it\n",
                    counts.len(),
                    moving::say_counts(&counts)
                )
            })
        }
        Command::Backup { file } => {
            // Online: beside a server, never under a restore.
            let _in_use = match moving::mark_in_use(url) {
                Ok(mark) => mark,
                Err(e) => return Some(Err(e)),
            };
            moving::backup_sqlite(url, file).await.map(|counts| {
                format!(
                    "wrote {} and checked it:\n{}keep it with the keys it needs: SECRETS_KEY and JWT_SECRET (or \
                 DATA_DIR/secrets-key and DATA_DIR/jwt-secret), stored apart from it\n",
                    file.display(),
                    moving::say_counts(&counts)
                )
            })
        }
        Command::Restore { file } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            moving::restore_sqlite(url, file, i64::try_from(now).unwrap_or(0)).await.map(|r| {
                let kept = match r.kept {
                    Some(path) => format!("the database it replaced is kept as {}\n", path.display()),
                    None => String::new(),
                };
                format!("restored {}:\n{}{kept}", file.display(), moving::say_counts(&r.counts))
            })
        }
        _ => return None,
    })
}

async fn serve(config: Config, state: app::server::AppState) -> ExitCode {
    if let Some(dir) = server::exe_dir()
        && let Err(e) = server::site::check(&dir, std::path::Path::new(&config.site_root), server::OUTPUT_NAME)
    {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    if !config.cookie_secure {
        tracing::warn!(
            "cookies are sent without the Secure flag (COOKIE_SECURE=false): use this only on plain http in development"
        );
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("could not listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    // Metrics on their own listener, never the public one.
    if let Some(addr) = config.metrics_addr {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(metrics) => {
                tracing::info!("metrics at http://{addr}/metrics");
                let router = app::http::metrics::router(state.clone());
                // A scraper or two: few connections, short timers (as the
                // public listener's, so a silent client cannot hold one).
                let limits = server::listen::Limits {
                    max_connections: 16,
                    max_per_address: 4,
                    unlimited_peers: Vec::new().into(),
                    header_timeout: Duration::from_secs(config.header_timeout_seconds),
                    body_timeout: Duration::from_secs(config.body_timeout_seconds),
                    request_timeout: Duration::from_secs(config.request_timeout_seconds),
                    drain_timeout: Duration::from_secs(1),
                };
                tokio::spawn(async move {
                    if let Err(e) = server::listen::serve(metrics, router, limits, std::future::pending()).await {
                        tracing::error!("the metrics listener stopped: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::error!("could not listen on METRICS_ADDR {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let files = raise_file_limit();
    let limits = config.listen_limits(files);
    tracing::info!(
        max_connections = limits.max_connections,
        max_per_address = limits.max_per_address,
        file_limit = files,
        "listening on http://{}; open {}",
        config.listen,
        config.public_url
    );
    if let Some(why) = state.webauthn.off_reason() {
        tracing::warn!("{why}");
    }
    tokio::spawn(prune_periodically(state.clone()));
    tokio::spawn(app::server::mail::run_worker(state.clone()));
    tokio::spawn(app::server::oidc::backchannel::run_sender(state.clone()));
    if state.db.is_postgres() {
        // Other instances' log-outs reach this one's gate cache.
        let (db, url) = (state.db.clone(), config.database_url.clone());
        tokio::spawn(async move { db.follow_gate_changes(url).await });
    }
    let db = state.db.clone();
    let served = server::listen::serve(listener, build_router(state), limits, shutdown_signal()).await;
    // Requests cut off by the drain give their guessing slots back before
    // the pool closes (briefly: a database that is down would not answer).
    let _ = tokio::time::timeout(Duration::from_secs(2), app::server::throttle::settled()).await;
    db.close().await;
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the sessions, throttle and audit tables bounded. Every instance
/// runs it; the deletes are idempotent, so that is harmless.
async fn prune_periodically(state: app::server::AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10 * 60));
    loop {
        every.tick().await;
        match app::server::retention::prune(&state).await {
            Ok(p) if p != Default::default() => {
                tracing::info!(sessions = p.sessions, throttle = p.throttle, audit = p.audit, "pruned")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "pruning failed; trying again later"),
        }
    }
}

/// Each argon2 hash allocates 19 MiB. glibc raises its mmap threshold after
/// the first such block is freed and from then on serves them from per-thread
/// heaps that rarely shrink, so resident memory grew past 500 MiB under log-in
/// load (BENCHMARKS.md). A fixed threshold keeps large blocks mmapped: they go
/// back to the OS when freed. Fewer arenas keep the many short-lived
/// allocations of concurrent requests from spreading over one heap per
/// thread.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt is thread-safe and only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Raises the soft limit on open files to the hard limit (many systems
/// start services at 1,024) and returns the limit now in force.
fn raise_file_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1024;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Resolves on Ctrl-C or SIGTERM; the server then stops accepting and lets
/// the requests in flight finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
