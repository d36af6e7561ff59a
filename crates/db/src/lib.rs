//! The database of bloginfer: SQLite (embedded default, one file) or
//! MySQL/MariaDB, through sqlx's `Any` driver so every query is written once
//! (`?` placeholders work on both). One schema for every service that shares
//! the database (the blog's users, articles and comments, the labeler's
//! training samples, the orchestrator's runs): versioned migrations per
//! backend, compiled in and run at start-up by whichever service starts first.

#![warn(missing_docs)]

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;

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

/// Connects to `url` (creating a SQLite file if needed) and runs pending migrations.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(url).map_err(|m| sqlx::Error::Configuration(m.into()))?;
    match backend {
        Backend::Sqlite => {
            // The default mode would refuse a missing file; rwc creates it.
            let url = if url.contains("mode=") {
                url.to_string()
            } else {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            };
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
            let pool = pool_options(16)
                .connect(&url.replace("mariadb:", "mysql:"))
                .await?;
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

/// `url` with `password` put into its user part (percent-encoded), so that a
/// password can come from a secret while the rest of the URL is plain
/// configuration. SQLite URLs have no user and are returned unchanged.
pub fn with_password(url: &str, password: &str) -> Result<String, String> {
    if url.starts_with("sqlite:") {
        return Ok(url.to_string());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not a URL with a host"));
    };
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| *c == '/' || *c == '?')
        .unwrap_or((rest.len(), ' '));
    let authority = &rest[..authority_end];
    let Some((user, host)) = authority.rsplit_once('@') else {
        return Err("the database URL names no user to go with the password".into());
    };
    if user.contains(':') {
        return Err("the database URL already holds a password".into());
    }
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(format!(
        "{scheme}://{user}:{encoded}@{host}{}",
        &rest[authority_end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_into_the_user_part_encoded() {
        assert_eq!(
            with_password("mysql://app@db:3306/blog?ssl-mode=disabled", "p@ss:w/rd").as_deref(),
            Ok("mysql://app:p%40ss%3Aw%2Frd@db:3306/blog?ssl-mode=disabled")
        );
        assert_eq!(
            with_password("sqlite://var/blog.db", "x").as_deref(),
            Ok("sqlite://var/blog.db")
        );
        assert!(with_password("mysql://db:3306/blog", "x").is_err());
        assert!(with_password("mysql://app:old@db/blog", "x").is_err());
    }
}
