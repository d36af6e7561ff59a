//! The round state machine: who is available, who is selected, which updates
//! count. Plain synchronous code behind one mutex; the heavy work (decoding,
//! aggregation, evaluation, persistence) happens outside it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::SeedableRng;

use super::secure::{Advance, SecureInput, SecureRound, Stage};
use crate::params::ParamSet;
use crate::protocol::{RoundRecord, RunStatus, Task, UpdateHeader};
use crate::secagg::RoundContext;
use crate::spec::PrivacySpec;
use crate::strategy::ServerState;

/// Attempts a round gets before the run fails.
pub const MAX_ATTEMPTS: u32 = 10;

/// Round settings the state machine needs.
#[derive(Debug, Clone)]
pub struct RoundRules {
    /// Rounds in the run.
    pub rounds: u32,
    /// Updates needed to aggregate.
    pub min_clients: usize,
    /// Available workers needed to start a round.
    pub min_available: usize,
    /// Share of available workers selected per round.
    pub fraction: f64,
    /// Time a round may take before it aggregates what it has (or retries).
    pub deadline: Duration,
    /// A worker counts as available this long after it was last heard from.
    pub lease: Duration,
    /// Seed for client selection.
    pub seed: u64,
}

/// What the aggregator knows of a registered worker.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Samples in its shard.
    pub samples: u64,
    /// When it last sent a request; it is available while this is within the lease.
    pub last_seen: Instant,
    /// It has been told the run is over.
    pub told_finished: bool,
}

/// An accepted update waiting for aggregation.
#[derive(Debug, Clone)]
pub struct Received {
    /// What the worker sent with it: run, round, worker id, samples, loss, timings.
    pub header: UpdateHeader,
    /// The update decoded to dense parameters: the worker's pseudo-gradient.
    pub update: ParamSet,
    /// Body size on the wire.
    pub bytes: usize,
}

/// What a closed round hands to aggregation.
#[derive(Debug)]
pub enum RoundInput {
    /// The accepted updates, each in the clear.
    Plain {
        /// The updates to combine.
        updates: Vec<Received>,
        /// Workers selected for the round (the accountant's sample, dropouts included).
        selected: usize,
    },
    /// The masked sum and what unmasks it.
    Secure(Box<SecureInput>),
}

/// Where the run stands.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for enough workers.
    Waiting,
    /// Collecting updates from the selected workers.
    Collecting {
        /// Workers asked to train.
        selected: BTreeSet<String>,
        /// Accepted updates by worker id, waiting for the round to close.
        updates: BTreeMap<String, Received>,
        /// Selected workers whose update was refused (they are done for the round).
        refused: BTreeSet<String>,
        /// When to stop waiting.
        deadline: Instant,
        /// The round's secure-aggregation stages, when the run aggregates securely.
        secure: Option<Box<SecureRound>>,
    },
    /// The round closed; its updates are being combined and the new weights evaluated.
    Aggregating,
    /// The final model is being written.
    Finalizing,
    /// The final model is written; workers are told the run is over.
    Finished,
    /// The run failed for good (see [`Coordinator::error`]); no more rounds start.
    Failed,
}

/// Why an update was refused: HTTP status, code, message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The HTTP status the worker gets (409: the update conflicts with the round).
    pub status: u16,
    /// Machine-readable code (also the metrics label).
    pub code: &'static str,
    /// What was wrong, for the worker's log and the aggregator's.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The whole mutable state of a run.
pub struct Coordinator {
    /// How many rounds, how many workers, and when a round starts and ends.
    pub rules: RoundRules,
    /// The run's id; updates and saved state of another run are refused.
    pub run_id: String,
    /// The round in progress (1-based); past `rules.rounds` once the last one is done.
    pub round: u32,
    /// Where the run stands; decides what workers are told to do.
    pub phase: Phase,
    /// Global weights at the start of the current round.
    pub global: Arc<ParamSet>,
    /// Those weights encoded for download.
    pub weights_body: axum::body::Bytes,
    /// The server optimiser and its state, which move the global weights each round.
    pub server: ServerState,
    /// A record of every finished round (round 0: the initial weights, evaluated only).
    pub history: Vec<RoundRecord>,
    /// Every worker that registered, by id, with its shard size and last contact.
    pub clients: BTreeMap<String, ClientInfo>,
    /// The registry version the final model was stored as, once the run finished.
    pub version: Option<String>,
    /// Why the run failed, once it did; shown in its status.
    pub error: Option<String>,
    /// Attempt of the current round.
    pub attempt: u32,
    /// Updates refused this round.
    pub rejected: usize,
    /// When the current round's first attempt selected clients.
    pub round_started: Option<Instant>,
    /// When the run finished.
    pub finished_at: Option<Instant>,
    /// The run's roster: who may be selected, and what each weighs.
    pub roster: BTreeMap<String, u64>,
    /// Secure aggregation and differential privacy settings.
    pub privacy: PrivacySpec,
    /// Values in the model (the length of a masked input).
    pub model_len: usize,
}

impl Coordinator {
    /// Notes that `worker` was heard from.
    pub fn touch(&mut self, worker: &str, now: Instant) {
        if let Some(c) = self.clients.get_mut(worker) {
            c.last_seen = now;
        }
    }

    /// Registers (or re-registers) a worker.
    pub fn register(&mut self, worker: &str, samples: u64, now: Instant) {
        self.clients.insert(
            worker.to_string(),
            ClientInfo {
                samples,
                last_seen: now,
                told_finished: false,
            },
        );
    }

    /// How long `worker`'s registration stays live, if it was heard from
    /// within the lease: a second registration is refused meanwhile.
    pub fn live_registration(&self, worker: &str, now: Instant) -> Option<Duration> {
        let seen = self.clients.get(worker)?.last_seen;
        let elapsed = now.saturating_duration_since(seen);
        (elapsed < self.rules.lease).then(|| self.rules.lease - elapsed)
    }

    /// Workers heard from within the lease.
    pub fn available(&self, now: Instant) -> Vec<&String> {
        self.clients
            .iter()
            .filter(|(_, c)| now.duration_since(c.last_seen) <= self.rules.lease)
            .map(|(id, _)| id)
            .collect()
    }

    /// What `worker` should do now.
    pub fn task_for(&mut self, worker: &str, now: Instant) -> Task {
        self.touch(worker, now);
        match &self.phase {
            Phase::Finished | Phase::Failed => {
                if let Some(c) = self.clients.get_mut(worker) {
                    c.told_finished = true;
                }
                Task::Finished {
                    version: self.version.clone(),
                }
            }
            Phase::Collecting {
                secure: Some(secure),
                ..
            } => secure
                .task_for(worker)
                .unwrap_or(Task::Wait { round: self.round }),
            // A refused worker is done for this attempt: telling it to train
            // again would only earn it a `duplicate_update`.
            Phase::Collecting {
                selected,
                updates,
                refused,
                ..
            } if selected.contains(worker)
                && !updates.contains_key(worker)
                && !refused.contains(worker) =>
            {
                Task::Train { round: self.round }
            }
            _ => Task::Wait { round: self.round },
        }
    }

    /// Checks that a message of run `run_id` for `round` may be taken now.
    fn admissible_round(&self, run_id: &str, round: u32) -> Result<(), Refusal> {
        if run_id != self.run_id {
            return Err(Refusal::new(
                409,
                "wrong_run",
                format!("this aggregator runs {}, not {run_id}", self.run_id),
            ));
        }
        if round < self.round {
            return Err(Refusal::new(
                409,
                "stale_round",
                format!(
                    "round {round} is closed; the current round is {}",
                    self.round
                ),
            ));
        }
        if round > self.round {
            return Err(Refusal::new(
                409,
                "future_round",
                format!(
                    "round {round} has not started; the current round is {}",
                    self.round
                ),
            ));
        }
        Ok(())
    }

    /// Checks that an update for `round` from `worker` may be taken now.
    pub fn admissible(&self, run_id: &str, round: u32, worker: &str) -> Result<(), Refusal> {
        self.admissible_round(run_id, round)?;
        match &self.phase {
            Phase::Collecting {
                selected,
                updates,
                refused,
                ..
            } => {
                if !selected.contains(worker) {
                    Err(Refusal::new(
                        409,
                        "not_selected",
                        format!("worker {worker} is not selected for round {round}"),
                    ))
                } else if updates.contains_key(worker) || refused.contains(worker) {
                    Err(Refusal::new(
                        409,
                        "duplicate_update",
                        format!("worker {worker} already sent its update for round {round}"),
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Err(Refusal::new(
                409,
                "round_not_open",
                format!("round {round} is not collecting updates"),
            )),
        }
    }

    /// Notes that `worker`'s update for the current round failed validation:
    /// it will not send another, so the round need not wait for it.
    pub fn refuse(&mut self, worker: &str) {
        self.rejected += 1;
        if let Phase::Collecting {
            selected, refused, ..
        } = &mut self.phase
        {
            if selected.contains(worker) {
                refused.insert(worker.to_string());
            }
        }
    }

    /// Stores an update that passed validation.
    pub fn accept(&mut self, received: Received) -> Result<usize, Refusal> {
        let h = &received.header;
        self.admissible(&h.run_id, h.round, &h.worker_id)?;
        if let Phase::Collecting { updates, .. } = &mut self.phase {
            updates.insert(h.worker_id.clone(), received);
            return Ok(updates.len());
        }
        Err(Refusal::new(
            409,
            "round_not_open",
            "the round closed meanwhile",
        ))
    }

    /// Advances the round: starts it when enough workers are available, and
    /// returns what to aggregate once all selected workers reported or the
    /// deadline passed with enough of them. A round that misses its deadline
    /// without enough updates starts over with a new selection.
    pub fn tick(&mut self, now: Instant) -> Option<RoundInput> {
        let needed = self.rules.min_clients.max(1);
        match &mut self.phase {
            Phase::Waiting => {
                self.start_round(now);
                None
            }
            Phase::Collecting {
                secure: Some(secure),
                ..
            } => match secure.advance(now, needed) {
                Advance::Waiting => None,
                Advance::Retry(why) => {
                    self.retry_round(now, &why);
                    None
                }
                Advance::Ready(input) => {
                    self.phase = Phase::Aggregating;
                    Some(RoundInput::Secure(input))
                }
            },
            Phase::Collecting {
                selected,
                updates,
                refused,
                deadline,
                secure: None,
            } => {
                let enough = updates.len() >= needed;
                let all_in = updates.len() + refused.len() >= selected.len();
                if enough && (all_in || now >= *deadline) {
                    let taken = std::mem::take(updates).into_values().collect();
                    let selected = selected.len();
                    self.phase = Phase::Aggregating;
                    return Some(RoundInput::Plain {
                        updates: taken,
                        selected,
                    });
                }
                if all_in || now >= *deadline {
                    let why = format!("{} valid updates of {needed} needed", updates.len());
                    self.retry_round(now, &why);
                }
                None
            }
            _ => None,
        }
    }

    /// Selects this round's workers once enough are available.
    fn start_round(&mut self, now: Instant) {
        let available: Vec<String> = self
            .available(now)
            .into_iter()
            .filter(|id| self.roster.contains_key(*id))
            .cloned()
            .collect();
        if available.len() < self.rules.min_available.max(self.rules.min_clients).max(1) {
            return;
        }
        // fraction is in (0, 1], so the rounded-up share of the available
        // workers is a non-negative count no larger than it.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let wanted = ((self.rules.fraction * available.len() as f64).ceil() as usize)
            .max(self.rules.min_clients)
            .clamp(1, available.len());
        let mut rng = StdRng::seed_from_u64(
            self.rules.seed ^ (u64::from(self.round) << 32) ^ u64::from(self.attempt),
        );
        let selected: BTreeSet<String> = available
            .into_iter()
            .choose_multiple(&mut rng, wanted)
            .into_iter()
            .collect();
        self.round_started.get_or_insert(now);
        let deadline = now + self.rules.deadline;
        let secure = self.privacy.secure_aggregation.then(|| {
            let members = selected
                .iter()
                .map(|id| (id.clone(), self.roster.get(id).copied().unwrap_or(0)))
                .collect();
            let context = RoundContext {
                run_id: self.run_id.clone(),
                round: self.round,
            };
            // Key and share exchanges are small messages to long-polling
            // workers; a participant silent this long has dropped out.
            let control = self.rules.lease.max(Duration::from_secs(5));
            Box::new(SecureRound::new(
                context,
                &members,
                self.privacy.dp.is_some(),
                self.model_len,
                now,
                control,
                deadline,
            ))
        });
        self.phase = Phase::Collecting {
            selected,
            updates: BTreeMap::new(),
            refused: BTreeSet::new(),
            deadline,
            secure,
        };
    }

    /// Starts the round over after an attempt without enough participants
    /// (or fails the run after [`MAX_ATTEMPTS`]).
    fn retry_round(&mut self, now: Instant, why: &str) {
        self.attempt += 1;
        tracing::warn!(
            round = self.round,
            attempt = self.attempt,
            "round ended without enough participants ({why}); retrying it"
        );
        if self.attempt >= MAX_ATTEMPTS {
            self.error = Some(format!(
                "round {} failed {MAX_ATTEMPTS} times: {why}",
                self.round
            ));
            self.phase = Phase::Failed;
            self.finished_at = Some(now);
        } else {
            self.phase = Phase::Waiting;
        }
    }

    /// The secure stages of the current round, once it collects, in a run
    /// that aggregates securely.
    pub fn secure_round(&mut self, run_id: &str, round: u32) -> Result<&mut SecureRound, Refusal> {
        self.admissible_round(run_id, round)?;
        match &mut self.phase {
            Phase::Collecting {
                secure: Some(secure),
                ..
            } => Ok(secure),
            Phase::Collecting { secure: None, .. } => Err(Refusal::new(
                409,
                "not_secure",
                "this run does not aggregate securely",
            )),
            _ => Err(Refusal::new(
                409,
                "round_not_open",
                format!("round {round} is not collecting"),
            )),
        }
    }

    /// Installs the result of aggregating the current round.
    pub fn complete_round(
        &mut self,
        global: ParamSet,
        weights_body: Vec<u8>,
        server: ServerState,
        record: RoundRecord,
    ) {
        self.global = Arc::new(global);
        self.weights_body = weights_body.into();
        self.server = server;
        self.history.push(record);
        self.round += 1;
        self.attempt = 0;
        self.rejected = 0;
        self.round_started = None;
        self.phase = if self.round > self.rules.rounds {
            Phase::Finalizing
        } else {
            Phase::Waiting
        };
    }

    /// What decides the tasks workers get: round, attempt, phase and secure
    /// stage. When it changes, long-polling workers must be woken.
    pub fn task_mark(&self) -> (u32, u32, u8) {
        let phase = match &self.phase {
            Phase::Waiting => 0,
            Phase::Collecting {
                secure: Some(secure),
                ..
            } => match secure.stage() {
                Stage::Keys => 1,
                Stage::Shares => 2,
                Stage::Masked => 3,
                Stage::Unmask => 4,
            },
            Phase::Collecting { secure: None, .. } => 5,
            Phase::Aggregating => 6,
            Phase::Finalizing => 7,
            Phase::Finished => 8,
            Phase::Failed => 9,
        };
        (self.round, self.attempt, phase)
    }

    /// True once every registered worker heard that the run is over.
    pub fn everyone_told(&self) -> bool {
        self.clients.values().all(|c| c.told_finished)
    }

    /// A snapshot for `/v1/status`.
    pub fn status(&self, now: Instant) -> RunStatus {
        let (phase, selected, reported) = match &self.phase {
            Phase::Waiting => ("waiting", 0, 0),
            Phase::Collecting {
                selected,
                secure: Some(secure),
                ..
            } => ("training", selected.len(), secure.reported()),
            Phase::Collecting {
                selected, updates, ..
            } => ("training", selected.len(), updates.len()),
            Phase::Aggregating => ("aggregating", 0, 0),
            Phase::Finalizing => ("finalizing", 0, 0),
            Phase::Finished => ("finished", 0, 0),
            Phase::Failed => ("failed", 0, 0),
        };
        RunStatus {
            run_id: self.run_id.clone(),
            phase: phase.to_string(),
            round: self.round.min(self.rules.rounds),
            rounds: self.rules.rounds,
            clients_available: self.available(now).len(),
            selected,
            reported,
            history: self.history.clone(),
            version: self.version.clone(),
            error: self.error.clone(),
            secure_aggregation: self.privacy.secure_aggregation,
            epsilon: self.privacy.dp.map(|_| {
                self.history
                    .iter()
                    .rev()
                    .find_map(|r| r.epsilon)
                    .unwrap_or(0.0)
            }),
            delta: self.privacy.dp.map(|dp| dp.delta),
        }
    }
}
