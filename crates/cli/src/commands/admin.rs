//! `bloginfer admin`: creates an admin account of the blog, or makes an
//! existing account one (the only way to an admin outside `bloginfer up`).
//! Run it once against the blog's database, by hand or as a one-shot
//! Kubernetes Job that reads the password from a Secret.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bloginfer_blog::admin::{ensure_admin, AdminLogin, AdminOutcome};
use clap::Args;
use secrecy::SecretString;

use crate::args::{secret, DatabaseArgs};
use crate::serve;

/// Flags of `bloginfer admin`.
#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The admin's e-mail: the account to promote, or to create.
    #[arg(long, env = "ADMIN_EMAIL")]
    email: String,
    /// The username of a new account (an existing account keeps its own).
    #[arg(long, env = "ADMIN_USERNAME", default_value = "admin")]
    username: String,
    /// The password (at least 12 characters), for a new account or to reset
    /// an existing one's (its sessions end). Prefer the variable or a file.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true, value_parser = secret, conflicts_with = "password_file")]
    password: Option<SecretString>,
    /// File holding the password, instead of `--password` (a mounted Secret).
    #[arg(long, env = "ADMIN_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

/// Runs `bloginfer admin`.
pub fn run(args: AdminArgs) -> Result<()> {
    let password = match &args.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(SecretString::from(
                text.trim_end_matches(['\r', '\n']).to_string(),
            ))
        }
        None => args.password.clone(),
    };
    let login = AdminLogin {
        email: args.email.clone(),
        username: args.username.clone(),
        reset_password: password.is_some(),
        password,
    };
    let options = args.database.options()?;
    let outcome = serve::runtime(Some(1))?.block_on(async {
        let db = bloginfer_blog::db::connect_with(&options)
            .await
            .context("cannot open the database")?;
        bloginfer_blog::admin::fill_username_skeletons(&db).await?;
        anyhow::Ok(ensure_admin(&db, &login).await?)
    })?;
    let email = login.email.trim().to_lowercase();
    match outcome {
        AdminOutcome::Created => println!("created admin {email}"),
        AdminOutcome::Promoted {
            password_reset: true,
        } => println!("{email} is an admin; password reset, its sessions ended"),
        AdminOutcome::Promoted {
            password_reset: false,
        } => println!("{email} is an admin"),
    }
    Ok(())
}
