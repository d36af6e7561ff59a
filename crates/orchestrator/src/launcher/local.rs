//! The local launcher: the run's aggregator and workers as child processes of
//! this same binary on loopback, started the way `bloginfer fl run` starts
//! them ([`bloginfer_fl::launcher`]). Children are killed when the launcher
//! is dropped (a clean shutdown); after a crash they live on as orphans, and
//! the next orchestrator follows them by process id, or, when they are gone,
//! relaunches the run, whose aggregator resumes from its state.

use std::collections::HashMap;
use std::sync::Mutex;

use bloginfer_fl::launcher::{LocalRun, RunState};
use bloginfer_fl::spec::RunDir;
use bloginfer_service::common::lock;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, Launcher, Observed, RunPlan};
use crate::error::{OrchestratorError, Result};

/// What is stored for a local run, so a later orchestrator can find its processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Handle {
    aggregator_pid: u32,
    worker_pids: Vec<u32>,
    url: String,
}

/// Runs as child processes of the `bloginfer` binary.
pub struct LocalLauncher {
    processes: bloginfer_fl::launcher::LocalLauncher,
    runs: Mutex<HashMap<String, LocalRun>>,
}

impl LocalLauncher {
    /// Runs through `processes`, the launcher `bloginfer fl run` uses too.
    pub fn new(processes: bloginfer_fl::launcher::LocalLauncher) -> Self {
        Self {
            processes,
            runs: Mutex::new(HashMap::new()),
        }
    }

    async fn launch(&self, plan: &RunPlan) -> Result<Handle> {
        let run = self.processes.start(&RunDir::new(&plan.dir)).await?;
        let (aggregator_pid, worker_pids) = run.pids();
        let handle = Handle {
            aggregator_pid,
            worker_pids,
            url: run.url().to_string(),
        };
        lock(&self.runs).insert(plan.run_id.clone(), run);
        Ok(handle)
    }
}

/// Whether `pid` is a live process of run `run_id` (a recycled pid is not):
/// its command line names the run's directory, which is named after the run.
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

fn to_value(handle: Handle) -> Result<serde_json::Value> {
    serde_json::to_value(handle).map_err(|e| OrchestratorError::Corrupt(e.to_string()))
}

impl Launcher for LocalLauncher {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start<'a>(&'a self, plan: &'a RunPlan) -> BoxFuture<'a, Result<serde_json::Value>> {
        Box::pin(async move { to_value(self.launch(plan).await?) })
    }

    fn observe<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(Observed, Option<serde_json::Value>)>> {
        Box::pin(async move {
            let state = lock(&self.runs)
                .get_mut(&plan.run_id)
                .map(LocalRun::poll)
                .transpose()?;
            match state {
                Some(RunState::Running) => return Ok((Observed::Running, None)),
                Some(RunState::Failed(why)) => {
                    let run = lock(&self.runs).remove(&plan.run_id);
                    if let Some(mut run) = run {
                        run.stop().await;
                    }
                    return Ok((Observed::Failed(why), None));
                }
                Some(RunState::Finished) => {
                    // Workers exit on their own once told the run is over.
                    lock(&self.runs).remove(&plan.run_id);
                    return Ok((Observed::Finished, None));
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
            if RunDir::new(&plan.dir).result().is_file() {
                return Ok((Observed::Finished, None));
            }
            if let Some(old) = &old {
                for pid in &old.worker_pids {
                    if is_ours(*pid, &plan.run_id) {
                        terminate(*pid);
                    }
                }
            }
            // An aggregator of this run that no handle names (one that outlived
            // its orchestrator's stop, or a relaunch whose handle was never
            // stored) still holds the run's state: stop it, and relaunch once it
            // is gone (the next look), rather than fail to start beside it.
            let state = RunDir::new(&plan.dir).state();
            if let Some(pid) = bloginfer_fl::server::aggregator_holding(&state) {
                if is_ours(pid, &plan.run_id) {
                    tracing::warn!(run = %plan.run_id, pid, "stopping an aggregator no handle names before relaunching");
                    terminate(pid);
                    return Ok((Observed::Running, None));
                }
            }
            tracing::info!(run = %plan.run_id, "relaunching the run; its aggregator resumes from its state");
            let handle = to_value(self.launch(plan).await?)?;
            Ok((Observed::Running, Some(handle)))
        })
    }

    fn stop<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let owned = lock(&self.runs).remove(&plan.run_id);
            if let Some(mut run) = owned {
                run.stop().await;
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
