//! An aggregator's configuration read from a run directory: the run's
//! description, its token, its model (fresh or continued) and validation data.

use std::path::{Path, PathBuf};

use bloginfer_model::config::ModelConfig;
use bloginfer_model::{data, Checkpoint, Registry};
use bloginfer_text::Vocab;

use super::{AggregatorConfig, RoundRules};
use crate::error::{FlError, Result};
use crate::params::ParamSet;
use crate::spec::{read_json, ModelSource, RunDir, RunSpec};

/// What the process hosting an aggregator decides, beyond the run itself.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// The model registry the final model goes to (`None`: keep it only in the state).
    pub models_dir: Option<PathBuf>,
    /// Threads for the server-side evaluation after each round.
    pub threads: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl AggregatorConfig {
    /// The configuration of the run in `dir` (its `run.json`, token, model and
    /// validation data); state, status and result files live there too.
    pub fn from_run_dir(dir: &RunDir, host: &HostSettings) -> Result<Self> {
        let spec = dir.read_spec()?;
        let token = dir.read_token()?;
        let (model, vocab, initial) = load_model(dir, &spec, host.models_dir.as_deref())?;
        let validation_path = dir.validation();
        let validation = if validation_path.is_file() {
            data::read_tsv(&validation_path)?
        } else {
            Vec::new()
        };
        let embed_init_std = match spec.model {
            ModelSource::Fresh { embed_init_std } => embed_init_std,
            ModelSource::Continue { .. } => 0.0,
        };
        Ok(Self {
            run_id: spec.run_id.clone(),
            run_key: token.into(),
            roster: spec
                .workers
                .iter()
                .map(|w| (w.id.clone(), w.samples))
                .collect(),
            model,
            vocab,
            initial,
            embed_init_std,
            strategy: spec.strategy,
            local: spec.local.clone(),
            rules: RoundRules {
                rounds: spec.rounds.rounds,
                min_clients: spec.rounds.min_clients,
                min_available: spec.rounds.min_available.max(spec.rounds.min_clients),
                fraction: spec.rounds.fraction,
                deadline: spec.deadline(),
                lease: spec.lease(),
                seed: spec.local.seed,
            },
            max_update_norm: spec.max_update_norm,
            adaptive_norm_multiple: spec.adaptive_norm_multiple,
            upload_dtype: spec.upload_dtype,
            privacy: spec.privacy.clone(),
            validation,
            state_dir: dir.state(),
            models_dir: host.models_dir.clone(),
            promote: spec.promote,
            linger: spec.linger(),
            max_body_bytes: host.max_body_bytes,
            threads: host.threads,
            data_fingerprint: spec.data_fingerprint.clone(),
            settings: spec.settings.clone(),
            status_file: Some(dir.status()),
        })
    }
}

/// The run's architecture, vocabulary and (when it continues a model) weights.
fn load_model(
    dir: &RunDir,
    spec: &RunSpec,
    models_dir: Option<&Path>,
) -> Result<(ModelConfig, Vocab, Option<ParamSet>)> {
    match &spec.model {
        ModelSource::Continue { from } => {
            let path = Path::new(from);
            let checkpoint = if path.is_file() {
                Checkpoint::load(path)?
            } else {
                let models = models_dir.ok_or_else(|| {
                    FlError::Config(format!(
                        "the run continues {from:?}, but no model registry is given"
                    ))
                })?;
                let version = (from != "current").then_some(from.as_str());
                Registry::open(models)?.load_version_or_current(version)?.1
            };
            let params = ParamSet::from_tensors(&checkpoint.weights)?;
            Ok((checkpoint.config, checkpoint.vocab, Some(params)))
        }
        ModelSource::Fresh { .. } => {
            let mut config: ModelConfig = read_json(&dir.model_config(), "model config")?;
            let vocab: Vocab = read_json(&dir.vocab(), "vocabulary")?;
            config.vocab_size = vocab.len();
            config.validate().map_err(FlError::Config)?;
            Ok((config, vocab, None))
        }
    }
}
