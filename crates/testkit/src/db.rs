//! A database per test: a SQLite file in a temporary directory, or a fresh
//! MariaDB database on 127.0.0.1:3306 (root, no password) dropped afterwards.

/// A database for one test, dropped with this value.
pub struct TestDb {
    /// Its URL (`sqlite://...` or `mysql://...`).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    mariadb: Option<String>,
}

impl TestDb {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            url: format!("sqlite://{}", dir.path().join("blog.db").display()),
            _dir: Some(dir),
            mariadb: None,
        }
    }

    /// A new, empty MariaDB database.
    pub async fn mariadb() -> Self {
        use sqlx::Connection;
        let name = format!("bloginfer_test_{}_{}", std::process::id(), unique());
        let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306/")
            .await
            .expect("MariaDB on 127.0.0.1:3306 (root, no password)");
        sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .execute(&mut admin)
            .await
            .expect("create database");
        Self {
            url: format!("mysql://root@127.0.0.1:3306/{name}"),
            _dir: None,
            mariadb: Some(name),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.mariadb {
            // Drop runs outside any runtime: the mysql client does it synchronously.
            let _ = std::process::Command::new("mysql")
                .args(["-uroot", "-h127.0.0.1", "-e"])
                .arg(format!("DROP DATABASE IF EXISTS {name}"))
                .status();
        }
    }
}

/// A number unique within this test process (and unlikely to repeat across runs).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_007);
    // Below 2^30 after the modulus, so the conversion never falls back.
    u64::try_from(nanos).unwrap_or(0) * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

/// Runs `async fn suite(db: &TestDb)` on SQLite and on MariaDB, as two tests
/// in a module named after it.
#[macro_export]
macro_rules! on_both_databases {
    ($suite:ident) => {
        mod $suite {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let db = $crate::TestDb::sqlite();
                super::$suite(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_mariadb() {
                let db = $crate::TestDb::mariadb().await;
                super::$suite(&db).await;
            }
        }
    };
}
