//! Supervised background tasks. Every loop a service runs besides answering
//! requests (model reloads, back-fills, the labeler, retention, a run's
//! driver) is spawned here: it receives a cancellation token that shutdown
//! cancels, a panic restarts it with a growing delay instead of silently
//! ending it, and its state shows in `/readyz`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bloginfer_common::lock;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first wait before restarting a task that panicked; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskState {
    /// Running (a loop sleeping between passes counts as running).
    Running,
    /// It panicked and restarts after a delay.
    Restarting {
        /// The panic message.
        error: String,
    },
    /// It ended by itself (a task with a finite job).
    Finished,
    /// A task that runs once panicked.
    Failed {
        /// The panic message.
        error: String,
    },
    /// It ended because of shutdown.
    Stopped,
}

/// One task as `/readyz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    /// The service that runs it.
    pub service: &'static str,
    /// What it does (`reloader`, `backfill`, ...).
    pub name: String,
    /// Whether the service is unready while the task is restarting.
    pub critical: bool,
    /// Restarts after panics so far.
    pub restarts: u32,
    /// Where it is: running, restarting, finished, failed or stopped.
    #[serde(flatten)]
    pub state: TaskState,
}

#[derive(Debug)]
struct Entry {
    service: &'static str,
    name: String,
    critical: bool,
    restarts: u32,
    state: TaskState,
}

struct Inner {
    /// The process's shutdown: cancelling it stops the server first.
    shutdown: CancellationToken,
    /// The tasks' own token, cancelled once the server has drained.
    token: CancellationToken,
    tracker: TaskTracker,
    entries: Mutex<Vec<Arc<Mutex<Entry>>>>,
}

/// Spawns and follows the background tasks of one process.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// How a task is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// After a panic, with a growing delay (loops meant to run until shutdown).
    OnPanic,
    /// Never (a job that runs once, such as one training run's driver).
    Never,
}

impl Supervisor {
    /// A supervisor for a process that shuts down when `shutdown` is
    /// cancelled. Its tasks get their own token, cancelled by
    /// [`Supervisor::shutdown`] once the server has drained, so that requests
    /// still in flight can use them.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                shutdown,
                token: CancellationToken::new(),
                tracker: TaskTracker::new(),
                entries: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The token every task receives (a child of it, to be exact); cancelling
    /// it stops them all.
    pub fn token(&self) -> &CancellationToken {
        &self.inner.token
    }

    /// Asks the whole process to shut down (a task whose end is the
    /// process's end, such as a federated run's driver): the server drains,
    /// then the tasks stop.
    pub fn request_shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The process's shutdown token (the server's).
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Spawns a loop of `service` named `name`: `make` builds the task's
    /// future from a token it must watch, and is called again to restart it
    /// after a panic. A critical task makes `/readyz` fail while it restarts.
    pub fn spawn<F, Fut>(&self, service: &'static str, name: &str, critical: bool, make: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn_with(service, name, critical, Restart::OnPanic, make);
    }

    /// Spawns a task that runs once: not restarted, and a panic shows as its
    /// final state (`failed`).
    pub fn spawn_once<Fut>(
        &self,
        service: &'static str,
        name: &str,
        task: impl FnOnce(CancellationToken) -> Fut + Send + 'static,
    ) where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut task = Some(task);
        self.spawn_with(service, name, false, Restart::Never, move |token| {
            let run = task.take().map(|t| t(token));
            async move {
                if let Some(run) = run {
                    run.await;
                }
            }
        });
    }

    fn spawn_with<F, Fut>(
        &self,
        service: &'static str,
        name: &str,
        critical: bool,
        restart: Restart,
        mut make: F,
    ) where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let entry = Arc::new(Mutex::new(Entry {
            service,
            name: name.to_string(),
            critical,
            restarts: 0,
            state: TaskState::Running,
        }));
        {
            let mut entries = lock(&self.inner.entries);
            // Finished one-off tasks leave the list, so it does not grow with every run.
            entries.retain(|e| !matches!(lock(e).state, TaskState::Finished | TaskState::Stopped));
            entries.push(entry.clone());
        }
        let token = self.inner.token.child_token();
        let label = format!("{service}.{name}");
        self.inner.tracker.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let outcome = tokio::spawn(make(token.clone())).await;
                let state = match outcome {
                    Ok(()) if token.is_cancelled() => TaskState::Stopped,
                    Ok(()) => TaskState::Finished,
                    Err(join) => {
                        let error = panic_message(join);
                        tracing::error!(task = %label, "background task panicked: {error}");
                        if restart == Restart::Never {
                            TaskState::Failed { error }
                        } else {
                            TaskState::Restarting { error }
                        }
                    }
                };
                {
                    let mut e = lock(&entry);
                    let again = matches!(state, TaskState::Restarting { .. });
                    e.restarts += u32::from(again);
                    e.state = state;
                    if !again {
                        return;
                    }
                }
                tokio::select! {
                    () = token.cancelled() => {
                        lock(&entry).state = TaskState::Stopped;
                        return;
                    }
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tracing::info!(task = %label, "restarting background task");
                lock(&entry).state = TaskState::Running;
            }
        });
    }

    /// Every task's state, oldest first, as `/readyz` lists them.
    pub fn report(&self) -> Vec<TaskReport> {
        lock(&self.inner.entries)
            .iter()
            .map(|e| {
                let e = lock(e);
                TaskReport {
                    service: e.service,
                    name: e.name.clone(),
                    critical: e.critical,
                    restarts: e.restarts,
                    state: e.state.clone(),
                }
            })
            .collect()
    }

    /// Whether no critical task is restarting after a panic.
    pub fn healthy(&self) -> bool {
        self.report()
            .iter()
            .all(|t| !t.critical || !matches!(t.state, TaskState::Restarting { .. }))
    }

    /// Cancels every task and waits up to `within` for them to end; returns
    /// whether they all did.
    pub async fn shutdown(&self, within: Duration) -> bool {
        self.inner.token.cancel();
        self.inner.tracker.close();
        let ended = tokio::time::timeout(within, self.inner.tracker.wait())
            .await
            .is_ok();
        if !ended {
            let running: Vec<String> = self
                .report()
                .into_iter()
                .filter(|t| t.state == TaskState::Running)
                .map(|t| format!("{}.{}", t.service, t.name))
                .collect();
            tracing::warn!(
                ?running,
                "background tasks still running after {within:?}; leaving them"
            );
        }
        ended
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string()),
        Err(join) => join.to_string(),
    }
}

/// Waits `wait`, or less if `token` is cancelled first; returns whether it was.
/// The sleep of every periodic loop, so that shutdown never waits a period out.
pub async fn sleep_or_cancelled(token: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_loop_restarts_and_shutdown_stops_it() {
        let supervisor = Supervisor::new(CancellationToken::new());
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        supervisor.spawn("test", "flaky", true, move |token| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("first start fails");
                }
                token.cancelled().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let report = supervisor.report();
        assert_eq!(
            report[0].state,
            TaskState::Restarting {
                error: "first start fails".into()
            }
        );
        tokio::time::sleep(FIRST_BACKOFF * 2).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(supervisor.report()[0].state, TaskState::Running);
        assert_eq!(supervisor.report()[0].restarts, 1);
        assert!(supervisor.shutdown(Duration::from_secs(5)).await);
        assert_eq!(supervisor.report()[0].state, TaskState::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn one_off_tasks_finish_and_leave_the_list() {
        let supervisor = Supervisor::new(CancellationToken::new());
        supervisor.spawn_once("test", "job", |_| async {});
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(supervisor.report()[0].state, TaskState::Finished);
        supervisor.spawn_once(
            "test",
            "next",
            |token| async move { token.cancelled().await },
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        let names: Vec<String> = supervisor.report().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["next"]);
        assert!(supervisor.shutdown(Duration::from_secs(5)).await);
    }
}
