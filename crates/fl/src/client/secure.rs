//! The worker's side of secure aggregation ([`crate::secagg`]): a round's
//! secrets live only in this worker's memory, its update leaves only masked,
//! and at the end it reveals one share per peer (of the self seed of a
//! survivor, or of the masking key of a participant that dropped out), never
//! both for the same peer.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use secrecy::zeroize::Zeroizing;

use super::{Connection, Worker};
use crate::error::{FlError, Result};
use crate::protocol::{
    MaskedHeader, Participant, SecureKeys, SecureShares, SecureUnmask, StageAccepted, Task,
    MASKED_KIND,
};
use crate::secagg::{self, EncryptedShare, FixedPoint, OpenedShare, RoundContext, RoundKeys};
use crate::wire;

/// The factor a participant multiplies its update by before masking: its
/// share of the samples of the round's participants (so the masked sum is a
/// weighted mean's numerator), or `1/n` when every client must weigh the
/// same (differential privacy). The aggregator uses the same function.
pub fn secure_weight(me: &Participant, participants: &[Participant], uniform: bool) -> f64 {
    let total: u64 = participants.iter().map(|p| p.samples).sum();
    if uniform || total == 0 {
        1.0 / participants.len().max(1) as f64
    } else {
        me.samples as f64 / total as f64
    }
}

/// One round's secrets and what was learnt of the peers.
pub(super) struct Session {
    context: RoundContext,
    keys: RoundKeys,
    self_seed: Zeroizing<[u8; 32]>,
    me: Option<u16>,
    participants: Vec<Participant>,
    threshold: usize,
    opened: BTreeMap<u16, OpenedShare>,
    revealed: bool,
}

fn refuse(message: String) -> FlError {
    FlError::Invalid(format!("secure aggregation: {message}"))
}

/// How long a worker that sits a round out waits before asking again (the
/// aggregator keeps offering the stage's task until the stage closes).
const SIT_OUT_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl Worker {
    /// Carries out one secure-aggregation task. A task this worker cannot or
    /// will not carry out (its secrets are gone after a restart, or the
    /// aggregator asks for something inconsistent) makes it sit the round
    /// out: the others go on without it, by the protocol's dropout recovery.
    pub(super) async fn secure_task(&mut self, task: Task) -> Result<()> {
        let round = task.round().unwrap_or(0);
        match self.secure_step(task).await {
            Err(FlError::Invalid(message)) => {
                tracing::warn!(round, "sitting this round out: {message}");
                self.secure = None;
                tokio::time::sleep(SIT_OUT_PAUSE).await;
                Ok(())
            }
            other => other,
        }
    }

    async fn secure_step(&mut self, task: Task) -> Result<()> {
        let round = task.round().unwrap_or(0);
        let context = RoundContext::new(self.plan.run_id.clone(), round);
        if !matches!(task, Task::SecureKeys { .. })
            && self.secure.as_ref().map(|s| &s.context) != Some(&context)
        {
            return Err(refuse(
                "no secrets for this round (restarted mid-round?)".into(),
            ));
        }
        match task {
            Task::SecureKeys { .. } => {
                let mut self_seed = Zeroizing::new([0u8; 32]);
                rand::rng().fill(self_seed.as_mut_slice());
                let session = Session {
                    context,
                    keys: RoundKeys::generate(&mut rand::rng()),
                    self_seed,
                    me: None,
                    participants: Vec::new(),
                    threshold: 0,
                    opened: BTreeMap::new(),
                    revealed: false,
                };
                let message = SecureKeys {
                    worker_id: self.config.worker_id.clone(),
                    keys: session.keys.public(),
                };
                self.secure = Some(session);
                self.post_json(round, "keys", &message).await
            }
            Task::SecureShares {
                participants,
                threshold,
                ..
            } => {
                let message = self.make_shares(participants, threshold)?;
                self.post_json(round, "shares", &message).await?;
                tracing::info!(round, "secure shares sent");
                Ok(())
            }
            Task::SecureMasked { peers, shares, .. } => self.masked(round, &peers, &shares).await,
            Task::SecureUnmask {
                survivors, dropped, ..
            } => {
                let message = self.reveal(&survivors, &dropped)?;
                self.post_json(round, "unmask", &message).await?;
                self.secure = None;
                Ok(())
            }
            Task::Train { .. } | Task::Wait { .. } | Task::Finished { .. } => Ok(()),
        }
    }

    fn make_shares(
        &mut self,
        participants: Vec<Participant>,
        threshold: usize,
    ) -> Result<SecureShares> {
        let worker_id = self.config.worker_id.clone();
        let session = self
            .secure
            .as_mut()
            .ok_or_else(|| refuse("no session".into()))?;
        let mine = session.keys.public();
        let me = participants
            .iter()
            .find(|p| p.worker_id == worker_id && p.keys == mine)
            .map(|p| p.index)
            .ok_or_else(|| refuse("the participant list does not hold my keys".into()))?;
        let indices: BTreeSet<u16> = participants.iter().map(|p| p.index).collect();
        // A threshold below a majority would let a small coalition unmask me.
        if indices.len() != participants.len()
            || threshold < secagg::threshold_for(participants.len())
        {
            return Err(refuse(format!(
                "refusing threshold {threshold} for {} participants",
                participants.len()
            )));
        }
        let list: Vec<(u16, secagg::PublicKeys)> =
            participants.iter().map(|p| (p.index, p.keys)).collect();
        let shares = secagg::make_shares(
            &session.keys,
            &session.self_seed,
            me,
            &list,
            threshold,
            &session.context,
            &mut rand::rng(),
        )
        .map_err(|e| refuse(e.to_string()))?;
        session.me = Some(me);
        session.participants = participants;
        session.threshold = threshold;
        Ok(SecureShares { worker_id, shares })
    }

    /// Opens the shares addressed to me, trains, masks and sends the update.
    async fn masked(&mut self, round: u32, peers: &[u16], shares: &[EncryptedShare]) -> Result<()> {
        {
            let session = self
                .secure
                .as_mut()
                .ok_or_else(|| refuse("no session".into()))?;
            let me = session.me.ok_or_else(|| refuse("no index".into()))?;
            for share in shares {
                let sender = session
                    .participants
                    .iter()
                    .find(|p| p.index == share.from)
                    .ok_or_else(|| {
                        refuse(format!("a share from unknown participant {}", share.from))
                    })?;
                let opened = secagg::open_share(
                    &session.keys,
                    me,
                    share.from,
                    &sender.keys,
                    share,
                    &session.context,
                )
                .map_err(|e| refuse(e.to_string()))?;
                session.opened.insert(share.from, opened);
            }
            let from: BTreeSet<u16> = session.opened.keys().copied().collect();
            let peers_set: BTreeSet<u16> = peers.iter().copied().collect();
            if from != peers_set || !peers_set.contains(&me) {
                return Err(refuse("the shares do not match the list of peers".into()));
            }
        }
        let Some((trained, _)) = self.trained(round).await? else {
            return Ok(());
        };
        let session = self
            .secure
            .as_ref()
            .ok_or_else(|| refuse("no session".into()))?;
        let me = session.me.ok_or_else(|| refuse("no index".into()))?;
        let privacy = self.plan.privacy.clone();
        let min_clients = self.plan.min_clients.max(1);
        let participants = session.participants.clone();
        let mut pairwise = Vec::with_capacity(peers.len());
        for &peer in peers.iter().filter(|&&p| p != me) {
            let public = participants
                .iter()
                .find(|p| p.index == peer)
                .ok_or_else(|| refuse(format!("no keys of peer {peer}")))?;
            let seed = session
                .keys
                .mask_seed_with(&public.keys.masking, &session.context, me, peer)
                .map_err(|e| refuse(e.to_string()))?;
            pairwise.push((peer, seed));
        }
        let self_seed = *session.self_seed;
        let header = MaskedHeader {
            run_id: self.plan.run_id.clone(),
            round,
            worker_id: self.config.worker_id.clone(),
            train_loss: trained.train_loss,
            train_seconds: trained.train_seconds,
        };
        let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let mut update = trained.update;
            if let Some(dp) = privacy.dp {
                // Each worker adds its share of the noise: with at least
                // `min_clients` survivors, the sum carries N(0, (Z·C)²) or more,
                // and the server never holds an un-noised sum.
                crate::privacy::clip_to_norm(&mut update, dp.clip);
                let std = dp.noise_multiplier * dp.clip / (min_clients as f64).sqrt();
                crate::privacy::add_gaussian_noise(&mut update, std, &mut rand::rng());
            }
            let me_entry = participants
                .iter()
                .find(|p| p.index == me)
                .ok_or_else(|| refuse("not a participant".into()))?;
            let weight = secure_weight(me_entry, &participants, privacy.dp.is_some());
            crate::bounds::scale(&mut update, weight);
            let mut codes = FixedPoint::default()
                .encode(&update.flatten(), &mut rand::rng())
                .map_err(|e| refuse(e.to_string()))?;
            secagg::mask_input(&mut codes, me, &self_seed, &pairwise)
                .map_err(|e| refuse(e.to_string()))?;
            wire::encode_masked(MASKED_KIND, &header, &codes)
        })
        .await
        .map_err(|e| FlError::Config(format!("masking panicked: {e}")))??;
        let accepted: StageAccepted = self
            .upload(&format!("/v1/rounds/{round}/secure/masked"), body)
            .await?;
        tracing::info!(
            round,
            received = accepted.received,
            "masked update accepted"
        );
        Ok(())
    }

    /// The shares that unmask the sum: of each survivor's self seed and of
    /// each dropped participant's masking key. Refused when the survivors are
    /// too few (the sum would be of too few updates) or a peer is called both
    /// survivor and dropped.
    fn reveal(&mut self, survivors: &[u16], dropped: &[u16]) -> Result<SecureUnmask> {
        let worker_id = self.config.worker_id.clone();
        let session = self
            .secure
            .as_mut()
            .ok_or_else(|| refuse("no session".into()))?;
        let survived: BTreeSet<u16> = survivors.iter().copied().collect();
        let gone: BTreeSet<u16> = dropped.iter().copied().collect();
        let known: BTreeSet<u16> = session.opened.keys().copied().collect();
        let me = session.me.unwrap_or(0);
        let consistent = session.me.is_some_and(|me| survived.contains(&me))
            && survived.is_disjoint(&gone)
            && survived.union(&gone).copied().collect::<BTreeSet<_>>() == known
            && survived.len() >= session.threshold.max(2);
        if session.revealed || !consistent {
            return Err(refuse(format!(
                "participant {me} refuses to reveal shares for survivors {survivors:?} and dropped {dropped:?}"
            )));
        }
        session.revealed = true;
        let pick = |set: &BTreeSet<u16>, which: fn(&OpenedShare) -> &Vec<u8>| {
            set.iter()
                .filter_map(|v| session.opened.get(v).map(|o| (*v, which(o).clone())))
                .collect()
        };
        Ok(SecureUnmask {
            worker_id,
            self_seed_shares: pick(&survived, |o| &o.self_seed_share),
            masking_key_shares: pick(&gone, |o| &o.masking_secret_share),
        })
    }

    async fn post_json<T: serde::Serialize>(
        &mut self,
        round: u32,
        stage: &str,
        message: &T,
    ) -> Result<()> {
        let conn = &self.conn;
        let resp = conn
            .send(|c| {
                c.post(conn.url(&format!("/v1/rounds/{round}/secure/{stage}")))
                    .json(message)
            })
            .await?;
        Connection::json::<StageAccepted>(resp).await.map(|_| ())
    }
}
