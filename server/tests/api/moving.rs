//! Moving and keeping the data, with real databases and the real binary:
//! a SQLite instance copied into an empty PostgreSQL database (`server db
//! copy`) serves every log-in, code, passkey and gate cookie it had there;
//! a backup of a running instance (`server backup`), put back with the
//! server stopped (`server restore`), brings back that moment.

use app::server::db::moving;

use super::instances::{Instance, status_of};
use super::passkeys::{Authenticator, register_key};
use super::*;

const RULES: &str = "[[rules]]\ndomain = \"wiki.example.test\"\npolicy = \"two_factor\"\n";

#[tokio::test]
async fn a_sqlite_instance_copied_into_postgresql_keeps_every_log_in_code_passkey_and_gate_cookie() {
    if std::env::var("TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: copying into PostgreSQL needs TEST_POSTGRES_URL");
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", files.path().join("twofactor.db").display());
    let rules = files.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let rules = rules.display().to_string();
    let settings = |database: &str, data: &str| -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", database.to_owned()),
            ("DATA_DIR", data.to_owned()),
            ("COOKIE_DOMAINS", "example.test".into()),
            // https: a passkey wants a secure origin; the cookies go over
            // the test's plain http.
            ("PUBLIC_URL", "https://auth.example.test".into()),
            ("COOKIE_SECURE", "false".into()),
            ("SIGNUP", "open".into()),
            ("ACCESS_RULES", rules.clone()),
        ]
    };
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let pairs = settings(&sqlite, &data_dir);
    let on_sqlite: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let old = spawn_app_with(&on_sqlite).await;

    // Ann: a code and a passkey; then logged in in a browser of her own,
    // with a gate cookie.
    let secret = old.enrolled_user("ann@example.test").await;
    let mut key = Authenticator::new(&old);
    let added = register_key(&old, &old.client, &mut key, "Laptop").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let browser = new_client();
    let creds = json!({"email": "ann@example.test", "password": PASSWORD});
    assert_eq!(old.post_with(&browser, "/api/authentication/log-in", creds.clone()).await.status, StatusCode::OK);
    old.clock.advance(30);
    let body = json!({"twoFactorAuthenticationCode": old.code_now(&secret)});
    let r = old.post_with(&browser, "/api/2fa/authenticate", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gate_cookie = set_cookie(&r, "twofactor_gate").expect("a gate cookie");
    assert_eq!(gate_answer(&old, &gate_cookie, "http://wiki.example.test/").await, StatusCode::OK);

    // Copied (the instance still running: the copy holds it still).
    let postgres = database_for(files.path()).await;
    let counts = moving::copy_sqlite_to_postgres(&sqlite, &postgres).await.expect("copied");
    let count = |table: &str| counts.iter().find(|c| c.table == table).map(|c| c.rows);
    assert_eq!((count("users"), count("passkeys")), (Some(1), Some(1)), "{counts:?}");
    assert!(count("logins").unwrap() >= 2 && count("audit_events").unwrap() > 0, "{counts:?}");

    // The instance on PostgreSQL, with the same keys (DATA_DIR), at the
    // same time.
    let pairs = settings(&postgres, &data_dir);
    let on_postgres: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let new = spawn_app_with(&on_postgres).await;
    new.clock.advance(old.clock_now() - START);
    assert_eq!(new.get_with(&browser, "/api/authentication").await.status, StatusCode::OK, "the log-in goes on");
    assert_eq!(gate_answer(&new, &gate_cookie, "http://wiki.example.test/").await, StatusCode::OK, "the gate cookie");
    assert_eq!(new.post_with(&browser, "/api/authentication/refresh", json!({})).await.status, StatusCode::OK);
    // The sealed secret opens: the next code logs in.
    new.post_with(&browser, "/api/authentication/log-out", json!({})).await;
    assert_eq!(new.post_with(&browser, "/api/authentication/log-in", creds).await.status, StatusCode::OK);
    new.clock.advance(30);
    let body = json!({"twoFactorAuthenticationCode": new.code_now(&secret)});
    assert_eq!(new.post_with(&browser, "/api/2fa/authenticate", body).await.status, StatusCode::OK);
    // The passkey is a second factor there too.
    let other = new_client();
    let creds = json!({"email": "ann@example.test", "password": PASSWORD});
    assert_eq!(new.post_with(&other, "/api/authentication/log-in", creds).await.status, StatusCode::OK);
    let start = new.post_with(&other, "/api/webauthn/authenticate/start", json!({})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let body = json!({"ceremony": start.body["ceremony"], "credential": key.assert(&start.body["options"])});
    let done = new.post_with(&other, "/api/webauthn/authenticate/finish", body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // New rows get new ids (the identity columns went on from the copy).
    assert_eq!(new.register("bob@example.test").await.status, StatusCode::CREATED);

    // Into a database with rows: refused, and nothing is added.
    let again = moving::copy_sqlite_to_postgres(&sqlite, &postgres).await.expect_err("not empty");
    assert!(again.contains("is not empty"), "{again}");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres).await.unwrap();
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut conn).await.unwrap();
    assert_eq!(users, 2);
    // From nowhere, or to something that is not PostgreSQL: said.
    let missing = format!("sqlite://{}", files.path().join("none.db").display());
    assert!(moving::copy_sqlite_to_postgres(&missing, &postgres).await.unwrap_err().contains("no SQLite database"));
    assert!(moving::copy_sqlite_to_postgres(&sqlite, &sqlite).await.unwrap_err().contains("PostgreSQL URL"));
}

/// `server …` on the database at `url` (the environment the instances
/// run with): whether it succeeded, and what it printed.
async fn command(url: &str, dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let (url, dir) = (url.to_owned(), dir.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &url)
            .env("DATA_DIR", &dir)
            .env("RUST_LOG", "warn")
            .current_dir(&dir)
            .output()
            .expect("run the server binary");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_backup_of_a_running_instance_comes_back_with_the_server_stopped() {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        eprintln!("skipped: SQLite's backup runs in the SQLite pass");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("twofactor.db").display());
    let file = dir.path().join("backup.db");
    let file_name = file.display().to_string();
    let a = Instance::start_with(&url, dir.path(), &[]).await;
    let c = new_client();
    let ann = json!({"email": "ann@example.com", "name": "Ann", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/register")).json(&ann)).await, StatusCode::CREATED);
    let creds = json!({"email": "ann@example.com", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/log-in")).json(&creds)).await, StatusCode::OK);

    // Taken while it serves; a restore is refused while it serves.
    let (ok, said) = command(&url, dir.path(), &["backup", &file_name]).await;
    assert!(ok && said.contains("and checked it") && said.contains("SECRETS_KEY"), "{said}");
    assert!(said.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["users", "1"]), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup is its owner's alone");
    }
    let (ok, said) = command(&url, dir.path(), &["restore", &file_name]).await;
    assert!(!ok && said.contains("is running on"), "{said}");
    let (ok, said) = command(&url, dir.path(), &["db", "copy", "--to", "postgres://127.0.0.1:1/none"]).await;
    assert!(!ok && said.contains("is running on"), "a copy under a running server: {said}");
    let (ok, said) = command(&url, dir.path(), &["backup", &file_name]).await;
    assert!(!ok && said.contains("exists already"), "{said}");
    // A change after the backup.
    let bob = json!({"email": "bob@example.com", "name": "Bob", "password": PASSWORD});
    assert_eq!(status_of(c.post(a.url("/api/authentication/register")).json(&bob)).await, StatusCode::CREATED);

    // Stopped, restored, started: the moment of the backup.
    drop(a);
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let (ok, said) = command(&url, dir.path(), &["restore", &junk.display().to_string()]).await;
    assert!(!ok, "{said}");
    let (ok, said) = command(&url, dir.path(), &["restore", &file_name]).await;
    assert!(ok && said.contains("kept as"), "{said}");
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("twofactor.db.before-restore-"));
    assert!(kept, "the replaced database is kept");
    let b = Instance::start_with(&url, dir.path(), &[]).await;
    assert_eq!(status_of(c.get(b.url("/api/authentication"))).await, StatusCode::OK, "Ann's log-in is back");
    let bob_creds = json!({"email": "bob@example.com", "password": PASSWORD});
    let r = c.post(b.url("/api/authentication/log-in")).json(&bob_creds);
    assert_eq!(status_of(r).await, StatusCode::UNAUTHORIZED, "Bob came after the backup");
    // PostgreSQL has its own tools.
    let (ok, said) = command("postgres://127.0.0.1:1/x", dir.path(), &["backup", "/tmp/x.db"]).await;
    assert!(!ok && said.contains("pg_dump"), "{said}");
}
