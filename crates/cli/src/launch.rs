//! The local launcher on this very binary, as `fl run`, the orchestrator and
//! `up` start federated runs.

use std::path::Path;

use anyhow::{Context, Result};
use bloginfer_fl::launcher::LocalLauncher;

/// Runs of `bloginfer aggregator` and `bloginfer worker` processes of this
/// binary, publishing to `models_dir`; each worker trains with `threads`.
pub fn local_launcher(models_dir: &Path, threads: usize) -> Result<LocalLauncher> {
    let exe = std::env::current_exe().context("cannot find the bloginfer binary")?;
    // Workers sit idle while the aggregator evaluates, so it may use every core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(LocalLauncher::new(
        exe,
        models_dir.to_path_buf(),
        threads,
        cores,
    ))
}
