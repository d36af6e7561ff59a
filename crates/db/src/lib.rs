//! The database of bloginfer: SQLite (embedded default, one file) or
//! MySQL/MariaDB, through sqlx's `Any` driver so every query is written once
//! (`?` placeholders work on both). One schema for every service that shares
//! the database (the blog's users, articles and comments, the labeler's
//! training samples, the orchestrator's runs): versioned migrations per
//! backend, compiled in and run at start-up by whichever service starts first.

#![warn(missing_docs)]

use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::ConnectOptions;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `mysql:` or `mariadb:` URLs.
    MySql,
}

impl Backend {
    /// The backend of `url`.
    pub fn of(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Self::MySql)
        } else {
            Err(format!(
                "unsupported database URL {url:?} (expected sqlite:... or mysql://...)"
            ))
        }
    }
}

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../migrations/sqlite/0001_schema.sql"),
    ),
    (
        2,
        "article read columns",
        include_str!("../migrations/sqlite/0002_article_read_columns.sql"),
    ),
    (
        3,
        "training runs",
        include_str!("../migrations/sqlite/0003_training_runs.sql"),
    ),
    (
        4,
        "training samples",
        include_str!("../migrations/sqlite/0004_training_samples.sql"),
    ),
    (
        5,
        "sessions and username skeletons",
        include_str!("../migrations/sqlite/0005_sessions.sql"),
    ),
    (
        6,
        "idempotency keys and sentiment attempts",
        include_str!("../migrations/sqlite/0006_idempotency.sql"),
    ),
    (
        7,
        "who corrected a sentiment",
        include_str!("../migrations/sqlite/0007_corrections.sql"),
    ),
];
const MYSQL: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../migrations/mysql/0001_schema.sql"),
    ),
    (
        2,
        "article read columns",
        include_str!("../migrations/mysql/0002_article_read_columns.sql"),
    ),
    (
        3,
        "training runs",
        include_str!("../migrations/mysql/0003_training_runs.sql"),
    ),
    (
        4,
        "training samples",
        include_str!("../migrations/mysql/0004_training_samples.sql"),
    ),
    (
        5,
        "sessions and username skeletons",
        include_str!("../migrations/mysql/0005_sessions.sql"),
    ),
    (
        6,
        "idempotency keys and sentiment attempts",
        include_str!("../migrations/mysql/0006_idempotency.sql"),
    ),
    (
        7,
        "who corrected a sentiment",
        include_str!("../migrations/mysql/0007_corrections.sql"),
    ),
];

fn migrator(backend: Backend) -> Migrator {
    let files = match backend {
        Backend::Sqlite => SQLITE,
        Backend::MySql => MYSQL,
    };
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// The connection pools. SQLite takes one writer at a time, so its writes go
/// through a pool of one connection (no busy-waiting for the lock among our own
/// connections) while readers run in parallel under WAL; MySQL uses one pool for both.
#[derive(Clone)]
pub struct Db {
    reader: AnyPool,
    writer: AnyPool,
    backend: Backend,
}

impl Db {
    /// The pool for reads.
    pub fn read(&self) -> &AnyPool {
        &self.reader
    }

    /// The pool for writes and read-modify-write transactions.
    pub fn write(&self) -> &AnyPool {
        &self.writer
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `sql`, an `INSERT` into a table with an `id` key, made to report that id
    /// (SQLite through `RETURNING`; MySQL reports it with the result).
    pub fn returning_id(&self, sql: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("{sql} RETURNING id"),
            Backend::MySql => sql.to_string(),
        }
    }

    /// Runs an insert built from [`Db::returning_id`] and returns the new row's id.
    pub async fn insert<'q, 'c, E>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        executor: E,
    ) -> Result<i64, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        use sqlx::Row;
        match self.backend {
            Backend::Sqlite => query.fetch_one(executor).await?.try_get("id"),
            Backend::MySql => query
                .execute(executor)
                .await?
                .last_insert_id()
                .ok_or_else(|| sqlx::Error::Protocol("no insert id reported".into())),
        }
    }
}

fn pool_options(max: u32) -> AnyPoolOptions {
    // No ping before every checkout: it doubles the round trips of each query; a
    // broken connection fails its query and the pool replaces it.
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
}

fn sqlite_options(max: u32) -> AnyPoolOptions {
    pool_options(max).after_connect(|conn, _| {
        Box::pin(async move {
            use sqlx::Executor;
            // NORMAL is safe with WAL (a power cut can lose the last commits, never
            // corrupt the file) and saves an fsync per commit.
            conn.execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000")
                .await?;
            Ok(())
        })
    })
}

/// Where the database is and how to log in: a URL without secrets, and the
/// password kept apart (from a Kubernetes Secret) until sqlx's own connect
/// options put it in place.
#[derive(Clone)]
pub struct DbOptions {
    url: String,
    password: Option<SecretString>,
    backend: Backend,
}

impl std::fmt::Debug for DbOptions {
    // The URL may carry a password after all; the backend is what a log needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl DbOptions {
    /// Options for the database at `url`: `sqlite:path` or
    /// `mysql://user@host:3306/database`; an unknown scheme is an error.
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(Self {
            backend: Backend::of(url)?,
            url: url.to_string(),
            password: None,
        })
    }

    /// Logs in with `password` (MySQL; SQLite has no login and ignores it).
    pub fn with_password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The folder of a SQLite database file, which must exist before the file can.
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        self.sqlite_file()?
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
    }

    /// The SQLite database file, unless this is MySQL or an in-memory database.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let path = self.url.strip_prefix("sqlite:")?;
        let path = path.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
    }

    /// The URL the `Any` driver connects with. A MySQL password goes in through
    /// `MySqlConnectOptions`, which encodes it; a SQLite file is created when missing.
    fn any_url(&self) -> Result<String, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => Ok(if self.url.contains("mode=") {
                self.url.clone()
            } else {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}mode=rwc", self.url)
            }),
            Backend::MySql => {
                let mut options = sqlx::mysql::MySqlConnectOptions::from_str(
                    &self.url.replace("mariadb:", "mysql:"),
                )?;
                // The separate password wins over one in the URL.
                if let Some(password) = &self.password {
                    options = options.password(password.expose_secret());
                }
                Ok(options.to_url_lossy().to_string())
            }
        }
    }
}

/// Makes the SQLite file (created here when missing) readable by its owner
/// only: it holds password hashes and sessions. SQLite gives its `-wal` and
/// `-shm` files the same mode.
fn owner_only(file: &std::path::Path) -> Result<(), sqlx::Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(file)?;
        let mode = opened.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            opened.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Connects to `url` (creating a SQLite file if needed) and runs pending migrations.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    let options = DbOptions::new(url).map_err(|m| sqlx::Error::Configuration(m.into()))?;
    connect_with(&options).await
}

/// Connects as `options` say (creating a SQLite file if needed) and runs pending migrations.
pub async fn connect_with(options: &DbOptions) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = options.backend;
    let url = options.any_url()?;
    match backend {
        Backend::Sqlite => {
            if let Some(file) = options.sqlite_file() {
                owner_only(&file)?;
            }
            let writer = sqlite_options(1).connect(&url).await?;
            // WAL lets readers proceed while a write commits (a property of the file).
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&writer)
                .await?;
            migrator(backend).run(&writer).await?;
            let reader = sqlite_options(4).connect(&url).await?;
            Ok(Db {
                reader,
                writer,
                backend,
            })
        }
        Backend::MySql => {
            let pool = pool_options(16).connect(&url).await?;
            migrator(backend).run(&pool).await?;
            Ok(Db {
                reader: pool.clone(),
                writer: pool,
                backend,
            })
        }
    }
}

/// A nullable text column. MySQL reports `TEXT` columns to the `Any` driver
/// as `BLOB`, so those arrive as bytes; SQLite's arrive as strings.
pub fn text(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    use sqlx::Row;
    match row.try_get::<Option<String>, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => {
            let bytes: Option<Vec<u8>> = row.try_get(column)?;
            bytes
                .map(|b| String::from_utf8(b).map_err(|e| sqlx::Error::Decode(Box::new(e))))
                .transpose()
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_encoded_by_sqlx_and_kept_out_of_debug() {
        let password = SecretString::from("p@ss:w/rd");
        let options = DbOptions::new("mysql://app@db:3306/blog?ssl-mode=disabled")
            .expect("url")
            .with_password(password.clone());
        let url = options.any_url().expect("url");
        assert!(
            url.starts_with("mysql://app:p%40ss%3Aw%2Frd@db:3306/blog"),
            "{url}"
        );
        assert!(url.contains("ssl-mode=DISABLED"), "{url}");
        assert!(!format!("{options:?}").contains("p@ss"));
        let replaced = DbOptions::new("mysql://app:old@db/blog")
            .expect("url")
            .with_password(password);
        assert!(!replaced.any_url().expect("url").contains("old"));
        assert_eq!(
            DbOptions::new("sqlite://var/blog.db")
                .expect("url")
                .sqlite_dir(),
            Some(PathBuf::from("var"))
        );
        assert!(DbOptions::new("postgres://x").is_err());
    }
}
