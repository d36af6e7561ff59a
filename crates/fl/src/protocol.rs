//! The JSON messages between workers and the aggregator (tensors travel in
//! [`crate::wire`] bodies). Paths:
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/register` | [`RegisterRequest`] | [`RunPlan`] |
//! | GET | `/v1/task?worker_id=ID` | - | [`Task`] (long poll) |
//! | GET | `/v1/rounds/{round}/weights` | - | `weights` message ([`WeightsHeader`]) |
//! | POST | `/v1/rounds/{round}/update` | `update` message ([`UpdateHeader`]) | [`UpdateAccepted`] |
//! | POST | `/v1/rounds/{round}/secure/keys` | [`SecureKeys`] | [`StageAccepted`] |
//! | POST | `/v1/rounds/{round}/secure/shares` | [`SecureShares`] | [`StageAccepted`] |
//! | POST | `/v1/rounds/{round}/secure/masked` | `masked` message ([`MaskedHeader`]) | [`StageAccepted`] |
//! | POST | `/v1/rounds/{round}/secure/unmask` | [`SecureUnmask`] | [`StageAccepted`] |
//! | GET | `/v1/status` | - | [`RunStatus`] |
//!
//! Every request carries `Authorization: Bearer <credential>`: a worker's own
//! credential (it may act only as that worker), or the run key (status only);
//! see [`crate::credentials`]. Errors are the chassis's `{"error": {"code",
//! "message"}}` with a status: 401 bad credential, 403 acting as another
//! worker or one outside the roster, 409 stale or unexpected round (or stage),
//! 422 invalid update, 404 unknown path.

use bloginfer_model::ModelConfig;
use bloginfer_text::Vocab;
use serde::{Deserialize, Serialize};

use crate::secagg::{EncryptedShare, PublicKeys};
use crate::spec::PrivacySpec;
use crate::strategy::Strategy;
use crate::wire::WireDtype;

/// `kind` tag of global-weight messages.
pub const WEIGHTS_KIND: &str = "bloginfer-fl/weights";
/// `kind` tag of update messages.
pub const UPDATE_KIND: &str = "bloginfer-fl/update";
/// `kind` tag of masked-input messages (secure aggregation).
pub const MASKED_KIND: &str = "bloginfer-fl/masked";
/// Parameters sent as touched rows only.
pub const SPARSE_PARAMS: [&str; 1] = ["embedding.weight"];

/// A worker introduces itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Stable worker id (e.g. the Job completion index).
    pub worker_id: String,
    /// Training samples in its shard.
    pub samples: u64,
}

/// Local-training settings shared by every worker of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LocalSettings {
    /// Examples per mini-batch of local training.
    pub batch_size: usize,
    /// Gradient-norm clip for local steps (0: none).
    pub clip_norm: f64,
    /// Token dropout during local training.
    pub token_dropout: f64,
    /// Base seed; each worker and round derives its own.
    pub seed: u64,
}

/// Everything a worker needs to take part, sent when it registers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPlan {
    /// The run the worker joined; it checks this against the run it was started for.
    pub run_id: String,
    /// The model's architecture, to build the local model from.
    pub model: ModelConfig,
    /// Shared vocabulary (part of the model, not of anyone's data).
    pub vocab: Vocab,
    /// Strategy, including what clients do.
    pub strategy: Strategy,
    /// How to train locally: batch size, clipping, token dropout, seed.
    pub local: LocalSettings,
    /// Element type for uploads.
    pub upload_dtype: WireDtype,
    /// Rounds in the run.
    pub rounds: u32,
    /// The round now running.
    pub current_round: u32,
    /// Secure aggregation, differential privacy, dense embedding updates:
    /// what the worker must do to its update before it leaves.
    #[serde(default)]
    pub privacy: PrivacySpec,
    /// Updates a round needs (the share of DP noise each worker adds under
    /// secure aggregation is calibrated to it).
    #[serde(default)]
    pub min_clients: usize,
}

/// What a worker should do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Task {
    /// Train on this round's global weights and upload.
    Train {
        /// The round whose weights to fetch, train and upload an update for.
        round: u32,
    },
    /// Nothing for you now; ask again.
    Wait {
        /// The round now running.
        round: u32,
    },
    /// The run is over; exit.
    Finished {
        /// The registry version of the final model, if it was stored.
        version: Option<String>,
    },
    /// Secure aggregation, stage 1: make this round's key pairs and send the
    /// public halves.
    SecureKeys {
        /// The round.
        round: u32,
    },
    /// Stage 2: Shamir-share your secrets among these participants, each
    /// share encrypted for its recipient.
    SecureShares {
        /// The round.
        round: u32,
        /// Who sent keys, with their index, public keys and roster samples.
        participants: Vec<Participant>,
        /// Shares needed to reconstruct a secret.
        threshold: usize,
    },
    /// Stage 3: train, mask the update with these peers' pairwise masks and
    /// your self mask, and send it.
    SecureMasked {
        /// The round.
        round: u32,
        /// The indices of the participants that shared their secrets (you included).
        peers: Vec<u16>,
        /// The shares addressed to you.
        shares: Vec<EncryptedShare>,
    },
    /// Stage 4: reveal your shares of the survivors' self-mask seeds and of
    /// the dropped participants' masking keys, and nothing else.
    SecureUnmask {
        /// The round.
        round: u32,
        /// Participants whose masked input arrived.
        survivors: Vec<u16>,
        /// Participants that shared secrets but sent no masked input.
        dropped: Vec<u16>,
    },
}

impl Task {
    /// The round a task is about, if it is about one.
    pub fn round(&self) -> Option<u32> {
        match self {
            Self::Train { round }
            | Self::Wait { round }
            | Self::SecureKeys { round }
            | Self::SecureShares { round, .. }
            | Self::SecureMasked { round, .. }
            | Self::SecureUnmask { round, .. } => Some(*round),
            Self::Finished { .. } => None,
        }
    }
}

/// A participant of a securely aggregated round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Its 1-based index in the round (its Shamir x-coordinate).
    pub index: u16,
    /// Its roster id.
    pub worker_id: String,
    /// Its roster samples (its update's weight).
    pub samples: u64,
    /// Its public keys for the round.
    pub keys: PublicKeys,
}

/// Stage 1's message: a worker's public keys for the round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecureKeys {
    /// The sender.
    pub worker_id: String,
    /// Its public keys.
    pub keys: PublicKeys,
}

/// Stage 2's message: a worker's encrypted shares, one per other participant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecureShares {
    /// The sender.
    pub worker_id: String,
    /// One share per other participant.
    pub shares: Vec<EncryptedShare>,
}

/// Header of a masked-input message (stage 3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaskedHeader {
    /// The run.
    pub run_id: String,
    /// The round.
    pub round: u32,
    /// The sender.
    pub worker_id: String,
    /// Mean local training loss.
    pub train_loss: f64,
    /// Seconds of local training.
    pub train_seconds: f64,
}

/// Stage 4's message: the shares a survivor reveals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecureUnmask {
    /// The sender.
    pub worker_id: String,
    /// Its shares of each survivor's self-mask seed, by the survivor's index.
    pub self_seed_shares: Vec<(u16, Vec<u8>)>,
    /// Its shares of each dropped participant's masking key, by that one's index.
    pub masking_key_shares: Vec<(u16, Vec<u8>)>,
}

/// A secure-aggregation message was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageAccepted {
    /// The round.
    pub round: u32,
    /// Messages of this stage received so far.
    pub received: usize,
}

/// Header of a weights message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeightsHeader {
    /// The run the weights belong to; a worker refuses another run's.
    pub run_id: String,
    /// The round these weights start.
    pub round: u32,
}

/// Header of an update message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateHeader {
    /// The run the update is for; the aggregator refuses another run's.
    pub run_id: String,
    /// The round whose weights were trained; an update for another round is refused.
    pub round: u32,
    /// The worker that trained it.
    pub worker_id: String,
    /// Samples behind the update (the mean's weight).
    pub samples: u64,
    /// Mean local training loss.
    pub train_loss: f64,
    /// Local optimisation steps taken.
    pub steps: u64,
    /// Seconds of local training.
    pub train_seconds: f64,
}

/// An update was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateAccepted {
    /// The round it counts for.
    pub round: u32,
    /// Updates received for the round so far.
    pub received: usize,
}

/// One finished round, as recorded by the aggregator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// 1-based round (0: the initial weights, evaluated only).
    pub round: u32,
    /// Updates that went into the round's aggregate.
    pub clients: usize,
    /// Training samples behind those updates, as their workers reported them.
    pub samples: u64,
    /// Sample-weighted mean local training loss.
    pub train_loss: Option<f64>,
    /// Server-side validation loss after the round.
    pub val_loss: Option<f64>,
    /// Server-side validation accuracy after the round.
    pub val_accuracy: Option<f64>,
    /// Server-side validation macro-F1 after the round.
    pub val_macro_f1: Option<f64>,
    /// From selecting clients to the new global weights.
    pub seconds: f64,
    /// The slowest aggregated client's local training time.
    pub slowest_train_seconds: f64,
    /// Mean upload body size per client.
    pub upload_bytes_mean: u64,
    /// Download body size of the global weights.
    pub download_bytes: u64,
    /// Updates refused in this round.
    pub rejected: usize,
    /// Attempts the round needed (more than one after a missed deadline).
    pub attempts: u32,
    /// Seconds spent on server-side validation.
    pub eval_seconds: f64,
    /// Sample count per aggregated worker id (from the roster).
    pub worker_samples: Vec<(String, u64)>,
    /// The norm bound updates were scaled down to (adaptive, or DP's clip), if any.
    #[serde(default)]
    pub norm_bound: Option<f64>,
    /// Updates scaled down to the bound.
    #[serde(default)]
    pub clipped: usize,
    /// Share of the roster that took part (the accountant's sampling rate), under DP.
    #[serde(default)]
    pub dp_sample_rate: Option<f64>,
    /// Privacy spent up to and including this round (ε at the run's δ), under DP.
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// The aggregator saw only the sum of this round's updates.
    #[serde(default)]
    pub secure: bool,
    /// Workers selected for the round (some may not have sent an update).
    #[serde(default)]
    pub selected: usize,
}

/// Progress of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStatus {
    /// The run this aggregator serves.
    pub run_id: String,
    /// `waiting` (for clients), `training`, `aggregating`, `finalizing`,
    /// `finished` or `failed`.
    pub phase: String,
    /// The round running (or the last one, when finished).
    pub round: u32,
    /// Rounds in the run.
    pub rounds: u32,
    /// Workers heard from within their availability lease.
    pub clients_available: usize,
    /// Workers selected for this round.
    pub selected: usize,
    /// Updates received for this round.
    pub reported: usize,
    /// Records of the finished rounds, round 0 (the initial weights) first.
    pub history: Vec<RoundRecord>,
    /// Registry version of the final model.
    pub version: Option<String>,
    /// Why the run failed.
    pub error: Option<String>,
    /// Updates are masked so that the aggregator learns only their sum.
    #[serde(default)]
    pub secure_aggregation: bool,
    /// Differential privacy spent so far (ε at `delta`), when DP is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// The δ of `epsilon`, when DP is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
}
