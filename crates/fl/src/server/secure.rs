//! The aggregator's side of secure aggregation ([`crate::secagg`]): one
//! round's four stages (keys → shares → masked inputs → unmasking), who is
//! expected at each, and the unmasking of the sum. Masked inputs are added to
//! a running sum as they arrive; no individual input is ever kept.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::coordinator::Refusal;
use crate::error::{FlError, Result};
use crate::params::ParamSet;
use crate::protocol::{MaskedHeader, Participant, SecureUnmask, Task};
use crate::secagg::{self, EncryptedShare, PublicKeys, RoundContext};

/// Largest accepted encrypted share (a share of two 32-byte secrets plus framing).
const MAX_SHARE_BYTES: usize = 1024;

/// Where a secure round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Collecting the selected workers' public keys.
    Keys,
    /// Collecting encrypted shares from those that sent keys.
    Shares,
    /// Collecting masked inputs from those that shared.
    Masked,
    /// Collecting the shares that unmask the sum from those whose input arrived.
    Unmask,
}

/// What a worker of a finished round reported, for the round's record.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its roster id.
    pub worker_id: String,
    /// Its roster samples.
    pub samples: u64,
    /// Its mean local training loss.
    pub train_loss: f64,
    /// Its local training time.
    pub train_seconds: f64,
    /// Its upload size.
    pub bytes: usize,
}

/// Everything needed to unmask a round's sum, handed to the aggregation task.
#[derive(Debug)]
pub struct SecureInput {
    context: RoundContext,
    sum: Vec<u32>,
    keys: BTreeMap<u16, PublicKeys>,
    weights: BTreeMap<u16, f64>,
    survivors: BTreeMap<u16, Report>,
    dropped: Vec<u16>,
    revealed: Vec<SecureUnmask>,
    threshold: usize,
    selected: usize,
}

impl SecureInput {
    /// Workers selected for the round (the accountant's sample, dropouts included).
    pub fn selected(&self) -> usize {
        self.selected
    }
}

/// One securely aggregated round in progress.
#[derive(Debug)]
pub struct SecureRound {
    context: RoundContext,
    stage: Stage,
    stage_deadline: Instant,
    control_timeout: Duration,
    round_deadline: Instant,
    /// Selected workers by id, with their index (Shamir x-coordinate) and samples.
    index: BTreeMap<String, (u16, u64)>,
    threshold: usize,
    /// Every participant weighs the same (differential privacy).
    uniform: bool,
    keys: BTreeMap<u16, PublicKeys>,
    /// Encrypted shares by recipient; senders in `shared`.
    inbox: BTreeMap<u16, Vec<EncryptedShare>>,
    shared: BTreeSet<u16>,
    sum: Vec<u32>,
    masked: BTreeMap<u16, Report>,
    revealed: BTreeMap<u16, SecureUnmask>,
}

/// What [`SecureRound::advance`] found.
pub enum Advance {
    /// The stage is still open.
    Waiting,
    /// The stage closed without enough participants: the round starts over.
    Retry(String),
    /// Everything needed to unmask the sum is in.
    Ready(Box<SecureInput>),
}

fn conflict(code: &'static str, message: String) -> Refusal {
    Refusal::new(409, code, message)
}

impl SecureRound {
    /// A round among `selected` (ids with roster samples), of `length`
    /// values; `uniform`: every participant weighs the same (DP).
    pub fn new(
        context: RoundContext,
        selected: &BTreeMap<String, u64>,
        uniform: bool,
        length: usize,
        now: Instant,
        control_timeout: Duration,
        round_deadline: Instant,
    ) -> Self {
        let index = selected
            .iter()
            .zip(1u16..)
            .map(|((id, &samples), i)| (id.clone(), (i, samples)))
            .collect();
        Self {
            context,
            stage: Stage::Keys,
            stage_deadline: (now + control_timeout).min(round_deadline),
            control_timeout,
            round_deadline,
            index,
            threshold: secagg::threshold_for(selected.len()),
            uniform,
            keys: BTreeMap::new(),
            inbox: BTreeMap::new(),
            shared: BTreeSet::new(),
            sum: vec![0; length],
            masked: BTreeMap::new(),
            revealed: BTreeMap::new(),
        }
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Masked inputs received.
    pub fn reported(&self) -> usize {
        self.masked.len()
    }

    fn index_of(&self, worker: &str) -> Option<u16> {
        self.index.get(worker).map(|&(i, _)| i)
    }

    /// Who is expected to act in the current stage.
    fn expected(&self) -> BTreeSet<u16> {
        match self.stage {
            Stage::Keys => self.index.values().map(|&(i, _)| i).collect(),
            Stage::Shares => self.keys.keys().copied().collect(),
            Stage::Masked => self.shared.clone(),
            Stage::Unmask => self.masked.keys().copied().collect(),
        }
    }

    fn done(&self, index: u16) -> bool {
        match self.stage {
            Stage::Keys => self.keys.contains_key(&index),
            Stage::Shares => self.shared.contains(&index),
            Stage::Masked => self.masked.contains_key(&index),
            Stage::Unmask => self.revealed.contains_key(&index),
        }
    }

    /// What `worker` should do now, if anything.
    pub fn task_for(&self, worker: &str) -> Option<Task> {
        let me = self.index_of(worker)?;
        if !self.expected().contains(&me) || self.done(me) {
            return None;
        }
        let round = self.context.round;
        Some(match self.stage {
            Stage::Keys => Task::SecureKeys { round },
            Stage::Shares => Task::SecureShares {
                round,
                participants: self.participants(),
                threshold: self.threshold,
            },
            Stage::Masked => Task::SecureMasked {
                round,
                peers: self.shared.iter().copied().collect(),
                shares: self.inbox.get(&me).cloned().unwrap_or_default(),
            },
            Stage::Unmask => Task::SecureUnmask {
                round,
                survivors: self.masked.keys().copied().collect(),
                dropped: self.dropped(),
            },
        })
    }

    fn participants(&self) -> Vec<Participant> {
        self.index
            .iter()
            .filter_map(|(id, &(index, samples))| {
                self.keys.get(&index).map(|keys| Participant {
                    index,
                    worker_id: id.clone(),
                    samples,
                    keys: *keys,
                })
            })
            .collect()
    }

    fn dropped(&self) -> Vec<u16> {
        self.shared
            .iter()
            .filter(|i| !self.masked.contains_key(i))
            .copied()
            .collect()
    }

    /// Checks that `worker` may send a message of `stage` now; its index.
    fn admit(&self, worker: &str, stage: Stage) -> Result<u16, Refusal> {
        let me = self.index_of(worker).ok_or_else(|| {
            conflict(
                "not_selected",
                format!("worker {worker} is not selected for this round"),
            )
        })?;
        if self.stage != stage {
            return Err(conflict(
                "wrong_stage",
                format!("the round is at stage {:?}, not {stage:?}", self.stage),
            ));
        }
        if !self.expected().contains(&me) {
            return Err(conflict(
                "not_expected",
                format!("worker {worker} dropped out of this round"),
            ));
        }
        if self.done(me) {
            return Err(conflict(
                "duplicate_update",
                format!("worker {worker} already sent its {stage:?} message"),
            ));
        }
        Ok(me)
    }

    /// Stage 1: `worker`'s public keys.
    pub fn accept_keys(&mut self, worker: &str, keys: PublicKeys) -> Result<usize, Refusal> {
        let me = self.admit(worker, Stage::Keys)?;
        if self.keys.values().any(|k| *k == keys) {
            return Err(Refusal::new(
                422,
                "reused_keys",
                "these public keys were already sent",
            ));
        }
        self.keys.insert(me, keys);
        Ok(self.keys.len())
    }

    /// Stage 2: `worker`'s encrypted shares, exactly one for every
    /// participant that sent keys (itself included).
    pub fn accept_shares(
        &mut self,
        worker: &str,
        shares: Vec<EncryptedShare>,
    ) -> Result<usize, Refusal> {
        let me = self.admit(worker, Stage::Shares)?;
        // One share for every participant that sent keys, the sender included
        // (it keeps a share of its own secrets, which counts towards the threshold).
        let expected: BTreeSet<u16> = self.keys.keys().copied().collect();
        let addressed: BTreeSet<u16> = shares.iter().map(|s| s.to).collect();
        let well_formed = shares.len() == expected.len()
            && addressed == expected
            && shares
                .iter()
                .all(|s| s.from == me && s.ciphertext.len() <= MAX_SHARE_BYTES);
        if !well_formed {
            return Err(Refusal::new(
                422,
                "invalid_shares",
                "send one share from yourself to each participant that sent keys, yourself included",
            ));
        }
        for share in shares {
            self.inbox.entry(share.to).or_default().push(share);
        }
        self.shared.insert(me);
        Ok(self.shared.len())
    }

    /// Stage 3: adds `worker`'s masked input to the running sum.
    pub fn accept_masked(
        &mut self,
        header: &MaskedHeader,
        masked: &[u32],
        bytes: usize,
    ) -> Result<usize, Refusal> {
        let me = self.admit(&header.worker_id, Stage::Masked)?;
        if masked.len() != self.sum.len() {
            return Err(Refusal::new(
                422,
                "wrong_shape",
                format!(
                    "a masked input has {} values, not {}",
                    self.sum.len(),
                    masked.len()
                ),
            ));
        }
        for (s, &m) in self.sum.iter_mut().zip(masked) {
            *s = s.wrapping_add(m);
        }
        let samples = self.index.get(&header.worker_id).map_or(0, |&(_, n)| n);
        self.masked.insert(
            me,
            Report {
                worker_id: header.worker_id.clone(),
                samples,
                train_loss: if header.train_loss.is_finite() {
                    header.train_loss
                } else {
                    0.0
                },
                train_seconds: header.train_seconds.max(0.0),
                bytes,
            },
        );
        Ok(self.masked.len())
    }

    /// Stage 4: the shares a survivor reveals: its shares of every survivor's
    /// self seed and of every dropped participant's masking key, nothing else.
    pub fn accept_unmask(&mut self, message: SecureUnmask) -> Result<usize, Refusal> {
        let me = self.admit(&message.worker_id, Stage::Unmask)?;
        let of = |list: &[(u16, Vec<u8>)]| list.iter().map(|(i, _)| *i).collect::<BTreeSet<_>>();
        let survivors: BTreeSet<u16> = self.masked.keys().copied().collect();
        let dropped: BTreeSet<u16> = self.dropped().into_iter().collect();
        let complete = of(&message.self_seed_shares) == survivors
            && of(&message.masking_key_shares) == dropped
            && message.self_seed_shares.len() == survivors.len()
            && message.masking_key_shares.len() == dropped.len();
        if !complete {
            return Err(Refusal::new(
                422,
                "invalid_unmask",
                "reveal one self-seed share per survivor and one masking-key share per dropped participant",
            ));
        }
        self.revealed.insert(me, message);
        Ok(self.revealed.len())
    }

    /// Closes the stage when everyone expected acted or its deadline passed;
    /// `needed` is the fewest participants the round may go on with.
    pub fn advance(&mut self, now: Instant, needed: usize) -> Advance {
        let expected = self.expected();
        let acted = expected.iter().filter(|&&i| self.done(i)).count();
        let deadline = self.stage_deadline;
        if acted < expected.len() && now < deadline {
            return Advance::Waiting;
        }
        let needed = match self.stage {
            Stage::Unmask => self.threshold,
            _ => needed.max(self.threshold),
        };
        if acted < needed {
            return Advance::Retry(format!(
                "{acted} of {} participants finished stage {:?}; {needed} are needed",
                expected.len(),
                self.stage
            ));
        }
        let next = match self.stage {
            Stage::Keys => Stage::Shares,
            Stage::Shares => Stage::Masked,
            Stage::Masked => Stage::Unmask,
            Stage::Unmask => return Advance::Ready(Box::new(self.take_input())),
        };
        self.stage = next;
        // Training happens in the masked stage, which has the rest of the
        // round; the others only exchange small messages.
        self.stage_deadline = if next == Stage::Masked {
            self.round_deadline.max(now + self.control_timeout)
        } else {
            now + self.control_timeout
        };
        Advance::Waiting
    }

    fn take_input(&mut self) -> SecureInput {
        // Weights first: they are computed from the keys taken below.
        let weights = self.participants_weights().into_iter().collect();
        SecureInput {
            context: self.context.clone(),
            sum: std::mem::take(&mut self.sum),
            keys: std::mem::take(&mut self.keys),
            weights,
            dropped: self.dropped(),
            survivors: std::mem::take(&mut self.masked),
            revealed: std::mem::take(&mut self.revealed).into_values().collect(),
            threshold: self.threshold,
            selected: self.index.len(),
        }
    }

    /// Each selected participant's weight, as its worker computed it
    /// ([`crate::secure_weight`]) from the participant list of stage 2.
    fn participants_weights(&self) -> Vec<(u16, f64)> {
        let participants = self.participants();
        participants
            .iter()
            .map(|p| {
                (
                    p.index,
                    crate::client::secure_weight(p, &participants, self.uniform),
                )
            })
            .collect()
    }
}

/// Picks one kind of revealed shares (of self seeds, or of masking keys) from a message.
type SharesOf = fn(&SecureUnmask) -> &Vec<(u16, Vec<u8>)>;

/// Removes the masks from a round's sum and turns it into the combined
/// pseudo-gradient (the weighted mean of the survivors' updates).
pub fn unmask(global: &ParamSet, input: SecureInput) -> Result<(ParamSet, Vec<Report>)> {
    let SecureInput {
        context,
        mut sum,
        keys,
        weights,
        survivors,
        dropped,
        revealed,
        threshold,
        ..
    } = input;
    let gather = |target: u16, pick: SharesOf| -> Vec<Vec<u8>> {
        revealed
            .iter()
            .filter_map(|m| {
                pick(m)
                    .iter()
                    .find(|(i, _)| *i == target)
                    .map(|(_, s)| s.clone())
            })
            .collect()
    };
    let mut self_seeds = Vec::with_capacity(survivors.len());
    for &u in survivors.keys() {
        let shares = gather(u, |m| &m.self_seed_shares);
        self_seeds.push(*secagg::recover_secret(&shares, threshold).map_err(secure_error)?);
    }
    let survivors_public: Vec<(u16, [u8; 32])> = survivors
        .keys()
        .filter_map(|u| keys.get(u).map(|k| (*u, k.masking)))
        .collect();
    let mut pairwise = Vec::new();
    for &v in &dropped {
        let shares = gather(v, |m| &m.masking_key_shares);
        let secret = secagg::recover_secret(&shares, threshold).map_err(secure_error)?;
        // Shares that rebuild another key than the one announced would leave
        // masks in the sum: refuse the round rather than publish noise.
        if keys.get(&v).map(|k| k.masking) != Some(secagg::masking_public(&secret)) {
            return Err(FlError::Invalid(format!(
                "the revealed shares of participant {v}'s masking key do not match its public key"
            )));
        }
        pairwise.extend(
            secagg::dropped_pairwise_seeds(v, &secret, &survivors_public, &context)
                .map_err(secure_error)?,
        );
    }
    secagg::unmask_sum(&mut sum, &self_seeds, &pairwise).map_err(secure_error)?;
    let values = secagg::FixedPoint::default()
        .decode_sum(&sum, survivors.len())
        .map_err(secure_error)?;
    // The sum holds Σ w_u x_u over survivors; dividing by Σ w_u gives their weighted mean.
    let survived_weight: f64 = survivors.keys().filter_map(|u| weights.get(u)).sum();
    if survived_weight <= 0.0 {
        return Err(FlError::Invalid("no weight survived the round".into()));
    }
    let mut combined = global.unflatten(&values)?;
    crate::bounds::scale(&mut combined, 1.0 / survived_weight);
    Ok((combined, survivors.into_values().collect()))
}

fn secure_error(e: secagg::SecAggError) -> FlError {
    FlError::Invalid(format!("cannot unmask the round: {e}"))
}
