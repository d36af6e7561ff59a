//! The local launcher: the aggregator and the workers as child processes of
//! this same binary, on loopback. Children are killed when the launcher is
//! dropped (a clean shutdown); after a crash they live on as orphans, and the
//! next orchestrator follows them by process id, or, when they are gone,
//! relaunches the run, whose aggregator resumes from its state file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use super::{BoxFuture, Launcher, Observed, RunPlan};
use crate::error::{OrchestratorError, Result};
use crate::snapshot::RunPaths;

/// What is stored for a local run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Handle {
    aggregator_pid: u32,
    worker_pids: Vec<u32>,
    url: String,
}

struct Children {
    aggregator: Child,
    workers: Vec<Child>,
}

/// Runs as child processes of `exe`.
pub struct LocalLauncher {
    exe: PathBuf,
    worker_threads: usize,
    aggregator_threads: usize,
    children: Mutex<HashMap<String, Children>>,
}

impl LocalLauncher {
    /// Launches `exe` (`bloginfer`) processes; each worker trains with
    /// `worker_threads` threads, the aggregator evaluates with `aggregator_threads`.
    pub fn new(exe: PathBuf, worker_threads: usize, aggregator_threads: usize) -> Self {
        Self {
            exe,
            worker_threads: worker_threads.max(1),
            aggregator_threads: aggregator_threads.max(1),
            children: Mutex::new(HashMap::new()),
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Children>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self, args: &[String], log: &Path) -> Result<Child> {
        let out = std::fs::File::create(log)
            .map_err(|e| OrchestratorError::io(format!("cannot create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| OrchestratorError::io("cannot duplicate a log handle", e))?;
        Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| OrchestratorError::io(format!("cannot start {}", self.exe.display()), e))
    }

    async fn launch(&self, plan: &RunPlan) -> Result<Handle> {
        let dir = &plan.dir;
        let path = |p: PathBuf| p.display().to_string();
        let addr_file = dir.join("aggregator.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut args = vec![
            "--models-dir".to_string(),
            path(plan.models_dir.clone()),
            format!("--threads={}", self.aggregator_threads),
            "aggregator".into(),
            "--listen=127.0.0.1:0".into(),
            format!("--addr-file={}", path(addr_file.clone())),
            format!("--run-id={}", plan.run_id),
            format!("--token-file={}", path(RunPaths::token(dir))),
            format!("--model-config={}", path(dir.join("model.json"))),
            format!("--vocab={}", path(dir.join("vocab.json"))),
            format!("--validation={}", path(dir.join("validation.tsv"))),
            format!("--state-dir={}", path(dir.join("state"))),
            format!("--status-file={}", path(RunPaths::status(dir))),
            format!("--result-file={}", path(RunPaths::result(dir))),
            format!("--data-fingerprint={}", plan.data_fingerprint),
            format!("--settings={}", plan.settings),
            "--linger=10s".into(),
        ];
        args.extend(plan.aggregator_flags.iter().cloned());
        let mut aggregator = self.spawn(&args, &dir.join("aggregator.log"))?;
        let url = format!(
            "http://{}",
            bloginfer_fl::launcher::wait_for_addr(
                &addr_file,
                &mut aggregator,
                Duration::from_secs(120)
            )
            .await?
        );
        let mut workers = Vec::with_capacity(plan.workers);
        for i in 0..plan.workers {
            let folder = RunPaths::worker(dir, i);
            let args = vec![
                format!("--threads={}", self.worker_threads),
                "worker".into(),
                format!("--aggregator={url}"),
                format!("--run-id={}", plan.run_id),
                format!("--worker-id={i}"),
                format!("--token-file={}", path(folder.join("token"))),
                format!("--shard={}", path(folder.join("shard.tsv"))),
            ];
            workers.push(self.spawn(&args, &dir.join(format!("worker-{i}.log")))?);
        }
        let handle = Handle {
            aggregator_pid: aggregator.id().unwrap_or(0),
            worker_pids: workers.iter().filter_map(Child::id).collect(),
            url,
        };
        self.children().insert(
            plan.run_id.clone(),
            Children {
                aggregator,
                workers,
            },
        );
        Ok(handle)
    }
}

/// Whether `pid` is a live process of run `run_id` (a recycled pid is not).
fn is_ours(pid: u32, run_id: &str) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let needle = run_id.as_bytes();
            cmdline.windows(needle.len()).any(|w| w == needle)
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        }
        Err(_) => false,
    }
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill only sends a signal; the pid was checked to be this run's.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

impl Launcher for LocalLauncher {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start<'a>(&'a self, plan: &'a RunPlan) -> BoxFuture<'a, Result<serde_json::Value>> {
        Box::pin(async move {
            let handle = self.launch(plan).await?;
            serde_json::to_value(handle).map_err(|e| OrchestratorError::Corrupt(e.to_string()))
        })
    }

    fn observe<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(Observed, Option<serde_json::Value>)>> {
        Box::pin(async move {
            let exited = {
                let mut children = self.children();
                match children.get_mut(&plan.run_id) {
                    Some(c) => {
                        let aggregator = c
                            .aggregator
                            .try_wait()
                            .map_err(|e| OrchestratorError::io("waiting for the aggregator", e))?;
                        let workers_failed = !c.workers.is_empty()
                            && c.workers
                                .iter_mut()
                                .all(|w| matches!(w.try_wait(), Ok(Some(s)) if !s.success()));
                        Some((aggregator, workers_failed))
                    }
                    None => None,
                }
            };
            match exited {
                Some((None, false)) => return Ok((Observed::Running, None)),
                Some((None, true)) => {
                    return Ok((
                        Observed::Failed("every worker failed; see the worker logs".into()),
                        None,
                    ))
                }
                Some((Some(status), _)) => {
                    // Workers exit on their own once told the run is over.
                    self.children().remove(&plan.run_id);
                    return Ok(if status.success() {
                        (Observed::Finished, None)
                    } else {
                        (
                            Observed::Failed(format!(
                                "the aggregator failed ({status}); see {}",
                                plan.dir.join("aggregator.log").display()
                            )),
                            None,
                        )
                    });
                }
                None => {}
            }
            // Not our children: a previous orchestrator started them.
            let old: Option<Handle> = serde_json::from_value(handle.clone()).ok();
            if let Some(old) = &old {
                if is_ours(old.aggregator_pid, &plan.run_id) {
                    return Ok((Observed::Running, None));
                }
            }
            if RunPaths::result(&plan.dir).is_file() {
                return Ok((Observed::Finished, None));
            }
            if let Some(old) = &old {
                for pid in &old.worker_pids {
                    if is_ours(*pid, &plan.run_id) {
                        terminate(*pid);
                    }
                }
            }
            tracing::info!(run = %plan.run_id, "relaunching the run; its aggregator resumes from its state");
            let handle = self.launch(plan).await?;
            let value = serde_json::to_value(handle)
                .map_err(|e| OrchestratorError::Corrupt(e.to_string()))?;
            Ok((Observed::Running, Some(value)))
        })
    }

    fn stop<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let owned = self.children().remove(&plan.run_id);
            if let Some(mut c) = owned {
                let _ = c.aggregator.kill().await;
                for w in &mut c.workers {
                    let _ = w.kill().await;
                }
                return Ok(());
            }
            if let Ok(old) = serde_json::from_value::<Handle>(handle.clone()) {
                for pid in std::iter::once(old.aggregator_pid).chain(old.worker_pids) {
                    if is_ours(pid, &plan.run_id) {
                        terminate(pid);
                    }
                }
            }
            Ok(())
        })
    }

    fn roll_out<'a>(&'a self, _version: &'a str) -> BoxFuture<'a, Result<()>> {
        // Local inference follows the registry's `current` pointer by itself.
        Box::pin(async { Ok(()) })
    }
}
