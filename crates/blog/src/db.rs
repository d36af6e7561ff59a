//! The database: SQLite (embedded default, one file) or MySQL/MariaDB, through
//! sqlx's `Any` driver so every query is written once (`?` placeholders work on
//! both). Versioned migrations per backend are compiled in and run at start-up.

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

const SQLITE: &[(i64, &str, &str)] = &[(
    1,
    "schema",
    include_str!("../migrations/sqlite/0001_schema.sql"),
)];
const MYSQL: &[(i64, &str, &str)] = &[(
    1,
    "schema",
    include_str!("../migrations/mysql/0001_schema.sql"),
)];

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

/// Connects to `url` (creating a SQLite file if needed) and runs pending migrations.
pub async fn connect(url: &str) -> Result<(AnyPool, Backend), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(url).map_err(|m| sqlx::Error::Configuration(m.into()))?;
    let url = match backend {
        // The default mode would refuse a missing file; rwc creates it.
        Backend::Sqlite if !url.contains("mode=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        }
        _ => url.replace("mariadb:", "mysql:"),
    };
    let max = if backend == Backend::Sqlite { 4 } else { 16 };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await?;
    if backend == Backend::Sqlite {
        // WAL lets readers proceed while a write commits; foreign keys are per connection.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    migrator(backend).run(&pool).await?;
    Ok((pool, backend))
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
