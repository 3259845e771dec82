//! Moving and keeping the data: the SQLite database copied into an empty
//! PostgreSQL one (`server db copy`), a consistent copy of a running SQLite
//! database (`server backup`), and one put back with the server stopped
//! (`server restore`). The rows move as they are stored: sealed secrets
//! stay sealed under the same `SECRETS_KEY`, and every log-in, code,
//! passkey and gate cookie keeps working with the same keys.
//!
//! Operator commands: they speak to the databases directly (no pool, no
//! cache) and answer with a message for the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use super::Db;

/// Rows inserted by one statement (PostgreSQL takes 65,535 parameters).
const BATCH_ROWS: usize = 500;

/// One table and how many rows it holds (copied, or in a backup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

/// "table  rows" lines, the tables in name order.
pub fn say_counts(counts: &[TableCount]) -> String {
    let width = counts.iter().map(|c| c.table.len()).max().unwrap_or(0);
    let mut sorted: Vec<&TableCount> = counts.iter().collect();
    sorted.sort_by(|a, b| a.table.cmp(&b.table));
    sorted.iter().map(|c| format!("  {:<width$}  {}\n", c.table, c.rows)).collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The file of a `sqlite:` URL (not `:memory:`).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// An existing SQLite database, opened without creating one.
async fn open_sqlite(path: &Path, read_only: bool) -> Result<SqliteConnection, String> {
    if !path.is_file() {
        return Err(format!("there is no SQLite database at {}", path.display()));
    }
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("could not open {}: {e}", path.display()))
}

/// The tables of a SQLite database (its own and the migrations' apart).
async fn sqlite_tables(conn: &mut SqliteConnection) -> Result<BTreeSet<String>, String> {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| format!("could not list the tables: {e}"))?;
    Ok(names.into_iter().map(|(n,)| n).collect())
}

async fn sqlite_count(conn: &mut SqliteConnection, table: &str) -> Result<i64, String> {
    let sql = format!("SELECT COUNT(*) FROM {}", quoted(table));
    sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *conn).await.map_err(|e| format!("counting {table}: {e}"))
}

async fn pg_count(conn: &mut PgConnection, table: &str) -> Result<i64, String> {
    let sql = format!("SELECT COUNT(*) FROM {}", quoted(table));
    sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *conn).await.map_err(|e| format!("counting {table}: {e}"))
}

/// A column as PostgreSQL declares it: every column of the schema is a
/// BIGINT or a TEXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
}

/// The tables of the target in an order that inserts every referenced row
/// before the rows that reference it, each with its columns.
async fn pg_tables(conn: &mut PgConnection) -> Result<Vec<(String, Vec<(String, Kind)>)>, String> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name <> '_sqlx_migrations' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| format!("could not read the target's tables: {e}"))?;
    let mut tables: BTreeMap<String, Vec<(String, Kind)>> = BTreeMap::new();
    for (table, column, kind) in columns {
        let kind = match kind.as_str() {
            "bigint" | "integer" => Kind::Integer,
            "text" => Kind::Text,
            other => return Err(format!("{table}.{column} is of type {other}, which this copy does not know")),
        };
        tables.entry(table).or_default().push((column, kind));
    }
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c \
         JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| format!("could not read the target's foreign keys: {e}"))?;
    // Referenced tables first (a table naming itself needs nothing more).
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while placed.len() < tables.len() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|t| !placed.contains(*t))
            .filter(|t| {
                references.iter().filter(|(from, to)| from == *t && to != *t).all(|(_, to)| placed.contains(to))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err("the target's foreign keys go round in a circle: no order to copy the tables in".into());
        }
        for t in ready {
            placed.insert(t.clone());
            order.push(t);
        }
    }
    Ok(order.into_iter().map(|t| (t.clone(), tables.remove(&t).unwrap_or_default())).collect())
}

/// The latest migration applied to each database: this binary's, on both.
async fn sqlite_version(conn: &mut SqliteConnection) -> Result<i64, String> {
    sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| format!("this is not a database of this server (no migrations table): {e}"))
}

/// Copies every row of the SQLite database at `source` into the empty
/// PostgreSQL database at `target`, in one transaction on the target, and
/// checks each table's count on both sides before it commits. Both are
/// migrated to this binary's schema first. The source is held with a
/// write lock meanwhile: a server still running on it cannot change it
/// (its writes wait, then fail), so the copy is one moment's.
pub async fn copy_sqlite_to_postgres(source: &str, target: &str) -> Result<Vec<TableCount>, String> {
    let Some(path) = sqlite_path(source) else {
        return Err("DATABASE_URL must be the SQLite database to copy from (sqlite:…)".into());
    };
    if !is_postgres(target) {
        return Err("--to must be a PostgreSQL URL (postgres://…)".into());
    }
    open_sqlite(&path, false).await?.close().await.ok();
    // This binary's schema on both sides.
    Db::connect(source, 1).await?.close().await;
    Db::connect(target, 1).await.map_err(|e| format!("the target: {e}"))?.close().await;

    let mut src = open_sqlite(&path, false).await?;
    let mut dst = PgConnection::connect(target).await.map_err(|e| format!("could not connect to the target: {e}"))?;
    // The source's write lock, held to the end: one consistent moment.
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut src)
        .await
        .map_err(|e| format!("could not hold the source still (is something writing to it?): {e}"))?;
    let result = copy_rows(&mut src, &mut dst).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut src).await;
    src.close().await.ok();
    dst.close().await.ok();
    result
}

async fn copy_rows(src: &mut SqliteConnection, dst: &mut PgConnection) -> Result<Vec<TableCount>, String> {
    let mut tx = dst.begin().await.map_err(|e| format!("the target: {e}"))?;
    let tables = pg_tables(&mut tx).await?;
    let theirs: BTreeSet<String> = tables.iter().map(|(t, _)| t.clone()).collect();
    let ours = sqlite_tables(src).await?;
    if ours != theirs {
        return Err(format!(
            "the two databases have different tables (only in SQLite: {:?}; only in PostgreSQL: {:?})",
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        ));
    }
    for (table, _) in &tables {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", quoted(table));
        let taken: bool = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| format!("reading {table} in the target: {e}"))?;
        if taken {
            return Err(format!(
                "the target database is not empty (its table {table} has rows): copy into a new, empty database"
            ));
        }
    }
    let mut counts = Vec::new();
    for (table, columns) in &tables {
        let names: Vec<String> = columns.iter().map(|(c, _)| quoted(c)).collect();
        let mut last_rowid = i64::MIN;
        loop {
            let sql = format!(
                "SELECT rowid, {} FROM {} WHERE rowid > ? ORDER BY rowid LIMIT {BATCH_ROWS}",
                names.join(", "),
                quoted(table)
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(last_rowid)
                .fetch_all(&mut *src)
                .await
                .map_err(|e| format!("reading {table}: {e}"))?;
            let Some(last) = rows.last() else { break };
            last_rowid = last.try_get(0).map_err(|e| format!("reading {table}: {e}"))?;
            let mut insert =
                format!("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ", quoted(table), names.join(", "));
            for r in 0..rows.len() {
                if r > 0 {
                    insert.push_str(", ");
                }
                let marks: Vec<String> =
                    (0..columns.len()).map(|c| format!("${}", r * columns.len() + c + 1)).collect();
                insert.push_str(&format!("({})", marks.join(", ")));
            }
            let mut query = sqlx::query(AssertSqlSafe(insert));
            for row in &rows {
                for (i, (column, kind)) in columns.iter().enumerate() {
                    let bad = |e: sqlx::Error| format!("{table}.{column}: {e}");
                    query = match kind {
                        Kind::Integer => query.bind(row.try_get::<Option<i64>, _>(i + 1).map_err(bad)?),
                        Kind::Text => query.bind(row.try_get::<Option<String>, _>(i + 1).map_err(bad)?),
                    };
                }
            }
            query.execute(&mut *tx).await.map_err(|e| format!("writing {table}: {e}"))?;
        }
        let (copied, there) = (sqlite_count(src, table).await?, pg_count(&mut tx, table).await?);
        if copied != there {
            return Err(format!("{table}: {copied} rows in SQLite but {there} in PostgreSQL; nothing was kept"));
        }
        counts.push(TableCount { table: table.clone(), rows: there });
    }
    // Identity columns go on from the largest id copied.
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| format!("reading the target's identity columns: {e}"))?;
    for (table, column) in identities {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX({c}) FROM {t}), 0) + 1, false)",
            c = quoted(&column),
            t = quoted(&table)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(quoted(&table))
            .bind(&column)
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("moving {table}.{column} on: {e}"))?;
    }
    tx.commit().await.map_err(|e| format!("the target refused the copy: {e}"))?;
    Ok(counts)
}

/// Checks a file is a sound database of this server: SQLite's integrity
/// check passes and its migrations are this binary's or older. Its tables
/// and their counts.
pub async fn check_backup(file: &Path) -> Result<Vec<TableCount>, String> {
    let mut conn = open_sqlite(file, true).await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("{} is not a SQLite database: {e}", file.display()))?;
    if verdict != "ok" {
        return Err(format!("{} is damaged: {verdict}", file.display()));
    }
    let version = sqlite_version(&mut conn).await?;
    let newest = super::SQLITE_MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    if version > newest {
        return Err(format!(
            "{} was made by a newer version of this server (its schema is {version}, this one's {newest})",
            file.display()
        ));
    }
    let mut counts = Vec::new();
    for table in sqlite_tables(&mut conn).await? {
        counts.push(TableCount { rows: sqlite_count(&mut conn, &table).await?, table });
    }
    conn.close().await.ok();
    Ok(counts)
}

/// A new file only its owner may read (a backup holds password hashes,
/// sealed secrets, addresses): created here, empty, for `VACUUM INTO`.
fn private_new_file(path: &Path) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(format!("{} exists already: name a new file", path.display()))
        }
        Err(e) => Err(format!("could not create {}: {e}", path.display())),
    }
}

/// `VACUUM INTO` from an open connection into `to` (made private first).
async fn vacuum_into(conn: &mut SqliteConnection, to: &Path) -> Result<(), String> {
    private_new_file(to)?;
    let target = to.to_str().ok_or("the file name must be UTF-8")?;
    let written = sqlx::query("VACUUM INTO ?").bind(target).execute(&mut *conn).await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(to);
        return Err(format!("could not write {}: {e}", to.display()));
    }
    Ok(())
}

/// A consistent copy of the SQLite database at `source` in the new file
/// `file`, readable by its owner only (`VACUUM INTO`: one read
/// transaction, so a running server goes on serving and writing
/// meanwhile), checked after it is written.
pub async fn backup_sqlite(source: &str, file: &Path) -> Result<Vec<TableCount>, String> {
    let Some(path) = sqlite_path(source) else {
        return Err("backup copies a SQLite database; for PostgreSQL use pg_dump (docs/DEPLOY.md, \"Backups\")".into());
    };
    let mut conn = open_sqlite(&path, true).await?;
    sqlite_version(&mut conn).await?;
    vacuum_into(&mut conn, file).await?;
    conn.close().await.ok();
    match check_backup(file).await {
        Ok(counts) => Ok(counts),
        Err(e) => {
            let _ = std::fs::remove_file(file);
            Err(format!("the copy did not check out, so it was removed: {e}"))
        }
    }
}

/// Where a restore put the database it replaced, if there was one.
pub struct Restored {
    pub counts: Vec<TableCount>,
    pub kept: Option<PathBuf>,
}

/// A SQLite database's lock file (`NAME.lock` beside it): held shared by
/// every process that opens the database (the server and each command,
/// taken before any connection), exclusively by `restore` and `db copy`
/// for their whole run. A file of its own, so renaming the database (as a
/// restore does) never moves it; `std`'s advisory lock, which SQLite's own
/// locks neither see nor disturb. Dropped with the process.
pub struct InUse(#[allow(dead_code)] std::fs::File);

fn lock_file(path: &Path) -> Result<std::fs::File, String> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or("the database's file name must be UTF-8")?;
    let lock = path.with_file_name(format!("{name}.lock"));
    if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|e| format!("could not open {}: {e}", lock.display()))
}

/// Marks the SQLite database at `url` as in use by this process until the
/// mark is dropped; `None` for PostgreSQL (restores go through pg_restore).
/// Refused while a restore or a copy holds it.
pub fn mark_in_use(url: &str) -> Result<Option<InUse>, String> {
    let Some(path) = sqlite_path(url) else { return Ok(None) };
    let file = lock_file(&path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(InUse(file))),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(format!("{} is being restored or copied: run this once that is done", path.display()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("could not mark {} in use: {e}", path.display())),
    }
}

/// The database at `path` for this process alone: refused while a server
/// or a command has it open.
fn take_alone(path: &Path, doing: &str) -> Result<InUse, String> {
    let file = lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(InUse(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(format!("a server (or another command) is running on {}: stop it, then {doing}", path.display()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("could not lock {}: {e}", path.display())),
    }
}

/// The database at `path` held by this process alone (see `InUse`), for
/// `db copy`: nothing else may write to it meanwhile.
pub fn hold_for_copy(url: &str) -> Result<Option<InUse>, String> {
    match sqlite_path(url) {
        Some(path) => take_alone(&path, "copy").map(Some),
        None => Ok(None),
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Puts the backup `file` in place of the SQLite database at `target`, with
/// nothing else running on it (refused otherwise). The backup is checked,
/// copied beside the database (`NAME.restoring`, private), migrated to this
/// binary's schema and checked again, all before anything is replaced;
/// then the database and its journal files are moved aside as
/// `NAME.before-restore-TIME` and the copy takes their place. A failure
/// before the swap leaves everything as it was; one during it puts the
/// old files back.
pub async fn restore_sqlite(target: &str, file: &Path, now: i64) -> Result<Restored, String> {
    let Some(path) = sqlite_path(target) else {
        return Err(
            "restore puts back a SQLite database; for PostgreSQL use pg_restore (docs/DEPLOY.md, \"Backups\")".into()
        );
    };
    let expected = check_backup(file).await?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    std::fs::create_dir_all(&dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let _alone = take_alone(&path, "restore")?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or("the database's file name must be UTF-8")?.to_owned();

    // The copy, made from the checked backup (its journal included) and
    // brought to this version, before anything is replaced.
    let incoming = dir.join(format!("{name}.restoring"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{name}.restoring{suffix}")));
    }
    let mut from = open_sqlite(file, true).await?;
    vacuum_into(&mut from, &incoming).await?;
    from.close().await.ok();
    let prepared = async {
        let url = format!("sqlite://{}", incoming.display());
        Db::connect(&url, 1).await?.close().await;
        let counts = check_backup(&incoming).await?;
        let differ = expected.iter().find(|e| counts.iter().any(|c| c.table == e.table && c.rows != e.rows));
        if let Some(table) = differ {
            return Err(format!("the copy of {} does not hold the backup's rows", table.table));
        }
        // Its journal is folded in: one file to move into place.
        let mut conn = open_sqlite(&incoming, false).await?;
        sqlx::raw_sql("PRAGMA journal_mode = DELETE").execute(&mut conn).await.map_err(|e| e.to_string())?;
        conn.close().await.ok();
        std::fs::File::open(&incoming)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("could not sync the copy: {e}"))?;
        Ok(counts)
    }
    .await;
    let counts = match prepared {
        Ok(counts) => counts,
        Err(e) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("{name}.restoring{suffix}")));
            }
            return Err(format!("nothing was replaced: {e}"));
        }
    };

    // The swap: every file of the old database aside, then the copy in.
    let kept = dir.join(format!("{name}.before-restore-{now}"));
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut failure = None;
    for suffix in ["", "-wal", "-shm"] {
        let old = dir.join(format!("{name}{suffix}"));
        if old.exists() {
            let aside = dir.join(format!("{}{suffix}", kept.display()));
            match std::fs::rename(&old, &aside) {
                Ok(()) => moved.push((old, aside)),
                Err(e) => {
                    failure = Some(format!("could not move {} aside: {e}", old.display()));
                    break;
                }
            }
        }
    }
    if failure.is_none()
        && let Err(e) = std::fs::rename(&incoming, &path)
    {
        failure = Some(format!("could not put the copy in place: {e}"));
    }
    if let Some(e) = failure {
        for (old, aside) in moved.iter().rev() {
            let _ = std::fs::rename(aside, old);
        }
        let _ = std::fs::remove_file(&incoming);
        sync_dir(&dir);
        return Err(format!("{e}; the database was left as it was"));
    }
    sync_dir(&dir);
    Ok(Restored { counts, kept: (!moved.is_empty()).then_some(kept) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite://data/twofactor.db?mode=rwc"), Some(PathBuf::from("data/twofactor.db")));
        assert_eq!(sqlite_path("sqlite:/var/lib/x.db"), Some(PathBuf::from("/var/lib/x.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/x"), None);
    }

    #[test]
    fn counts_are_said_in_name_order_and_lined_up() {
        let counts =
            vec![TableCount { table: "users".into(), rows: 3 }, TableCount { table: "audit_log".into(), rows: 12 }];
        assert_eq!(say_counts(&counts), "  audit_log  12\n  users      3\n");
    }

    #[test]
    fn names_are_quoted_for_sql() {
        assert_eq!(quoted("users"), "\"users\"");
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }
}
