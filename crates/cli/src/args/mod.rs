//! Flag groups that several subcommands share, and the parsers behind them:
//! one listen flag, one database group, durations in one notation, secrets
//! that cannot reach `Debug` output.

pub mod labeler;
pub mod model;
pub mod run;
pub mod training;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_db::DbOptions;
use clap::{Arg, Args};
use secrecy::{SecretSlice, SecretString};

/// Where a service listens. Each subcommand gives `--listen` its own default
/// with [`listen_default`].
#[derive(Args, Clone)]
pub struct ListenArgs {
    /// Address to listen on: 0.0.0.0:PORT in a container, port 0 for any free port.
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen: SocketAddr,
    /// Write the bound address here once serving (useful with port 0).
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
}

/// Gives `--listen` the default address `addr` (for `#[command(mut_arg(...))]`).
pub fn listen_default(arg: Arg, addr: &'static str) -> Arg {
    arg.default_value(addr).required(false)
}

/// The database a service keeps its tables in.
#[derive(Args, Clone)]
pub struct DatabaseArgs {
    /// `sqlite:path/blog.db` or `mysql://user@host:3306/database`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:./var/blog.db")]
    pub database_url: String,
    /// Password of the database user (from a Kubernetes Secret).
    #[arg(long, env = "DATABASE_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub database_password: Option<SecretString>,
}

impl DatabaseArgs {
    /// Typed connect options; creates the folder of a SQLite file so a fresh
    /// `./var` works.
    pub fn options(&self) -> Result<DbOptions> {
        let mut options = DbOptions::new(&self.database_url).map_err(anyhow::Error::msg)?;
        if let Some(password) = &self.database_password {
            options = options.with_password(password.clone());
        }
        if let Some(dir) = options.sqlite_dir() {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(options)
    }
}

/// Parses a secret flag or variable into a type that never prints it.
pub fn secret(value: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(value))
}

/// Parses a duration: `30s`, `10m`, `500ms`, `1h 30m`, or a bare number of
/// seconds (`600`, `0.5`), which is what the `*_SECONDS` variables hold.
pub fn duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{value} is not a number of seconds at least 0"));
    }
    humantime::parse_duration(value)
        .map_err(|e| format!("{e} (examples: 30s, 10m, 500ms, or 600 for seconds)"))
}

/// A secret from `value`, else from `file`, else the one kept in `fallback`
/// (generated there, mode 0600, the first time: single-process installs).
pub fn secret_bytes(
    value: Option<&SecretString>,
    file: Option<&Path>,
    fallback: &Path,
) -> Result<SecretSlice<u8>> {
    use secrecy::ExposeSecret;
    if let Some(secret) = value {
        return Ok(secret.expose_secret().trim().as_bytes().to_vec().into());
    }
    let read = |path: &Path| -> Result<SecretSlice<u8>> {
        let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(raw.trim_ascii().to_vec().into())
    };
    if let Some(path) = file {
        return read(path);
    }
    if fallback.is_file() {
        return read(fallback);
    }
    let generated = bloginfer_common::random_hex(32);
    bloginfer_common::write_private(fallback, generated.as_bytes())
        .with_context(|| format!("cannot write {}", fallback.display()))?;
    Ok(generated.into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_humantime_and_bare_seconds() {
        assert_eq!(duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
    }
}
