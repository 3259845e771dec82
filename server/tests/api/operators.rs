//! Operator commands run as the real binary (on a new machine too), and a
//! failed migration stopping start-up.

use super::*;

/// Runs the server binary with only these variables set: (success,
/// stdout, stderr).
pub(super) fn server_command(args: &[&str], vars: &[(&str, &std::ffi::OsStr)]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command.args(args).env_clear().env("RUST_LOG", "warn");
    for (name, value) in vars {
        command.env(name, value);
    }
    let out = command.output().expect("run the server binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs an operator command of the server binary against a database. It
/// blocks its thread until the command ends: a test whose app is running
/// must use a multi-threaded runtime, or a task of the app caught inside a
/// transaction would hold its locks until the command gave up (SQLite's
/// busy timeout: "database is locked") or for ever (PostgreSQL).
pub(super) fn operator(database_url: &str, data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    server_command(
        args,
        &[
            ("DATABASE_URL", database_url.as_ref()),
            ("DATA_DIR", data_dir.as_os_str()),
            ("JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789".as_ref()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands() {
    let app = spawn_app().await;
    let dir = app._dir.path().to_path_buf();
    let url = app.database_url.clone();
    app.enrolled_user("ops@example.com").await;
    let other = new_client();
    app.post_with(&other, "/api/authentication/log-in", json!({"email": "ops@example.com", "password": PASSWORD}))
        .await;

    let (ok, out, err) = operator(&url, &dir, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));
    let (ok, out, err) = operator(&url, &dir, &["user", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("ops@example.com") && out.contains(" on ") && out.contains("1 account(s)"), "{out}");

    // Groups, for access rules: added, listed, removed; bad names refused.
    let (ok, out, err) = operator(&url, &dir, &["user", "groups", "ops@example.com", "add", "admins"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("added ops@example.com to admins") && out.contains("groups of ops@example.com: admins"),
        "{out}"
    );
    let (ok, out, _) = operator(&url, &dir, &["user", "groups", "ops@example.com", "add", "admins"]);
    assert!(ok && out.contains("already in admins"), "{out}");
    operator(&url, &dir, &["user", "groups", "ops@example.com", "add", "family"]);
    let (_, out, _) = operator(&url, &dir, &["user", "list"]);
    assert!(out.contains("admins,family"), "{out}");
    let (ok, _, err) = operator(&url, &dir, &["user", "groups", "ops@example.com", "add", "bad group!"]);
    assert!(!ok && err.contains("group name"), "{err}");
    let (ok, out, _) = operator(&url, &dir, &["user", "groups", "ops@example.com", "remove", "family"]);
    assert!(ok && out.contains("removed") && out.ends_with("groups of ops@example.com: admins\n"), "{out}");
    let (ok, _, err) = operator(&url, &dir, &["user", "groups", "nobody@example.com"]);
    assert!(!ok && err.contains("no account"), "{err}");

    // An address the operator vouches for (signed up here, never confirmed).
    let (ok, out, err) = operator(&url, &dir, &["user", "confirm-email", "OPS@example.com"]);
    assert!(ok && out.contains("is confirmed"), "{out} {err}");
    let (ok, out, _) = operator(&url, &dir, &["user", "confirm-email", "ops@example.com"]);
    assert!(ok && out.contains("confirmed already"), "{out}");
    let (ok, _, err) = operator(&url, &dir, &["user", "confirm-email", "nobody@example.com"]);
    assert!(!ok && err.contains("no account"), "{err}");

    // The session is in the running service's cache from here on.
    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
    let (ok, _, err) = operator(&url, &dir, &["user", "reset-2fa", "nobody@example.com"]);
    assert!(!ok && err.contains("no account"), "{err}");
    let (ok, out, err) = operator(&url, &dir, &["user", "reset-2fa", "OPS@example.com"]);
    assert!(ok, "{err}");
    assert!(out.contains("two-factor authentication is off"), "{out}");
    // The running service sees it: on PostgreSQL at once (NOTIFY); on
    // SQLite, where the command is another process that cannot notify it,
    // once its cached answer is GATE_CACHE_SECONDS (2) old. Old sessions
    // end, and the password alone logs in.
    if !url.starts_with("postgres") {
        app.clock.advance(app::server::gate::cache::MAX_AGE_SECONDS);
    }
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(app.log_in("ops@example.com", PASSWORD).await.body["twoFactorRequired"], false);
    let kinds = activity_kinds(&app, "ops@example.com").await;
    assert!(kinds.contains(&"two_factor_reset".to_owned()), "{kinds:?}");

    assert_eq!(app.get("/api/authentication").await.status, StatusCode::OK);
    let (ok, out, err) = operator(&url, &dir, &["user", "revoke-sessions", "ops@example.com"]);
    assert!(ok && out.contains("every session"), "{err}");
    if !url.starts_with("postgres") {
        app.clock.advance(app::server::gate::cache::MAX_AGE_SECONDS);
    }
    assert_error(&app.get("/api/authentication").await, StatusCode::UNAUTHORIZED, "unauthenticated");

    // An OpenID app that takes the password alone from home; a range that
    // is none, or networks without two factors, are refused and nothing
    // is added.
    let photos = ["oidc", "client", "add", "--name", "Photos", "--redirect-uri", "https://photos.example.test/cb"];
    let (ok, _, err) = operator(&url, &dir, &[&photos[..], &["--one-factor-networks", "192.168.1.0/24,home"]].concat());
    assert!(!ok && err.contains("\"home\" is not an address"), "{err}");
    let relaxed = ["--two-factor", "optional", "--one-factor-networks", "10.0.0.0/8"];
    let (ok, _, err) = operator(&url, &dir, &[&photos[..], &relaxed].concat());
    assert!(!ok && err.contains("apps that want two factors"), "{err}");
    let (ok, out, err) = operator(&url, &dir, &["oidc", "client", "list"]);
    assert!(ok && !out.contains("Photos"), "{out} {err}");
    let (ok, _, err) =
        operator(&url, &dir, &[&photos[..], &["--one-factor-networks", "192.168.1.0/24,10.0.0.0/8"]].concat());
    assert!(ok, "{err}");
    let (ok, out, err) = operator(&url, &dir, &["oidc", "client", "list"]);
    assert!(ok && out.contains("the password alone from 192.168.1.0/24, 10.0.0.0/8"), "{out} {err}");

    // Deleting says what it would do until told --yes.
    // An app's id is base64url and may start with '-': still an id.
    let (ok, out, err) = operator(&url, &dir, &["oidc", "client", "remove", "-MQ4Tup5DXOXEM-QAbEIHWA9"]);
    assert!(!ok && !err.contains("unexpected argument") && err.contains("-MQ4Tup5DXOXEM-QAbEIHWA9"), "{out} {err}");
    let (ok, _, err) = operator(&url, &dir, &["user", "delete", "ops@example.com"]);
    assert!(!ok && err.contains("--yes"), "{err}");
    assert!(app.state.db.user_by_email("ops@example.com").await.unwrap().is_some());
    let (ok, out, err) = operator(&url, &dir, &["user", "delete", "ops@example.com", "--yes"]);
    assert!(ok && out.contains("deleted the account of ops@example.com"), "{out} {err}");
    assert!(app.state.db.user_by_email("ops@example.com").await.unwrap().is_none());
    let (ok, _, err) = operator(&url, &dir, &["user", "delete", "ops@example.com", "--yes"]);
    assert!(!ok && err.contains("no account"), "{err}");

    // A bad setting stops the binary with a message naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("DATABASE_URL", "mysql://nope")
        .env("DATA_DIR", &dir)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL must start with sqlite: or postgres://"));
}

#[tokio::test]
async fn a_failed_migration_stops_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("broken.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.expect("db");
    sqlx::raw_sql("CREATE TABLE users (something_else TEXT)").execute(&mut conn).await.expect("table");
    drop(conn);
    let (ok, _, err) = operator(&url, dir.path(), &["migrate"]);
    assert!(!ok);
    assert!(err.contains("database migration failed"), "{err}");
    let (ok, _, err) = operator(&url, dir.path(), &["serve"]);
    assert!(!ok, "serve must not start on a failed migration");
    assert!(err.contains("database migration failed"), "{err}");
}

#[tokio::test]
async fn operator_commands_work_on_a_new_machine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("not").join("yet").join("there");
    let (ok, out, err) = server_command(&["migrate"], &[("DATA_DIR", data.as_os_str())]);
    assert!(ok, "{out}{err}");
    assert!(data.join("twofactor.db").exists());
    let (ok, out, err) = server_command(&["prune"], &[("DATA_DIR", data.as_os_str())]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("deleted 0 session, 0 throttle and 0 audit row(s)"), "{out}");
    let other = dir.path().join("fresh-for-list");
    let (ok, out, err) = server_command(&["user", "list"], &[("DATA_DIR", other.as_os_str())]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_adds_an_account_with_the_password_on_standard_input() {
    let app = spawn_app_with(&[("SIGNUP", "closed")]).await;
    let dir = app._dir.path().to_path_buf();
    let add_with = |url: &str, email: &str, password: &str, extra: &[&str]| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["user", "add", email, "Olga Operator"])
            .args(extra)
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", url)
            .env("DATA_DIR", &dir)
            .env("JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("server user add");
        child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let add_to = |url: &str, email: &str, password: &str| add_with(url, email, password, &[]);
    let add = |email: &str, password: &str| add_to(&app.database_url, email, password);
    let (ok, out) = add("olga@example.com", "password1234");
    assert!(!ok && out.contains("too easy"), "{out}");
    let (ok, out) = add("\u{430}lga@example.com", PASSWORD);
    assert!(!ok && out.contains("alphabets"), "{out}");
    let (ok, out) = add("olga@example.com", PASSWORD);
    assert!(ok, "{out}");
    assert!(!out.contains(PASSWORD), "the password is never printed");
    // Which database it wrote to, and no warning: the server's own.
    assert!(out.contains(&server::ops::database_place(&app.database_url)), "{out}");
    assert!(!out.contains("made a new, empty one"), "{out}");
    // Pointed at no database (run from another directory), it says it made
    // one the server never reads (issue 21, item 12).
    if !app.database_url.starts_with("postgres") {
        let elsewhere = dir.join("elsewhere.db");
        let (ok, out) = add_to(&format!("sqlite://{}?mode=rwc", elsewhere.display()), "olga@example.com", PASSWORD);
        assert!(ok, "{out}");
        assert!(out.contains(&format!("there was no database at {}", elsewhere.display())), "{out}");
        assert!(out.contains("run the command from the directory the server runs in"), "{out}");
    }
    let (ok, out) = add("OLGA@example.com", PASSWORD);
    assert!(!ok && out.contains("already exists"), "{out}");
    let r = app.log_in("olga@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    // The operator vouches for the address: the gate passes it on.
    assert_eq!(r.body["user"]["isEmailVerified"], true, "{}", r.text);
    assert!(app.state.db.groups_of(r.body["user"]["id"].as_i64().unwrap()).await.unwrap().is_empty());
    // `--admin`: the first administrator, in ADMIN_GROUP with the account.
    let (ok, out) = add_with(&app.database_url, "boss@example.com", PASSWORD, &["--admin"]);
    assert!(ok && out.contains("an administrator (group admins)"), "{out}");
    let boss = app.state.db.user_by_email("boss@example.com").await.unwrap().expect("boss");
    assert_eq!(app.state.db.groups_of(boss.id).await.unwrap(), ["admins"]);
}

/// A release's site folder without the `hash.txt` of its build: the pages
/// would name files that are not there. The server says so and does not
/// start (issue 21, item 10).
#[tokio::test]
async fn a_hashed_site_without_its_hash_file_stops_start_up_with_what_to_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let pkg = dir.path().join("site/pkg");
    std::fs::create_dir_all(&pkg).expect("pkg");
    for file in ["twofactor.Q1w2e3.js", "twofactor.Q1w2e3.wasm", "twofactor.Q1w2e3.css"] {
        std::fs::write(pkg.join(file), "x").expect("write");
    }
    let url = database_for(dir.path()).await;
    let site = dir.path().join("site");
    let (ok, _, err) = server_command(
        &[],
        &[
            ("DATABASE_URL", url.as_ref()),
            ("DATA_DIR", dir.path().as_os_str()),
            ("JWT_SECRET", "test-signing-key-that-is-long-enough-0123456789".as_ref()),
            ("LEPTOS_SITE_ROOT", site.as_os_str()),
            ("LISTEN_ADDR", "127.0.0.1:0".as_ref()),
        ],
    );
    assert!(!ok, "started anyway: {err}");
    assert!(err.contains("hash.txt is missing"), "{err}");
    assert!(err.contains("copy hash.txt from the same build"), "{err}");
}
