//! The checkpoint: one self-describing safetensors file per model version.
//!
//! Tensors keep PyTorch's names, so Python's `safetensors` reads the file as a
//! `state_dict`. The header's string metadata carries the rest: a format tag
//! and version, the model config, the vocabulary, the training metadata and a
//! SHA-256 over all of it and the tensor bytes, checked on every load.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bloginfer_text::{Encoder, Vocab};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classifier::SentimentModel;
use crate::config::ModelConfig;
use crate::data::hex;
use crate::error::{ModelError, Result};
use crate::metrics::Metrics;
use crate::train::EpochRecord;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "bloginfer-sentiment";
/// Version of the layout written by this code.
pub const FORMAT_VERSION: u32 = 1;

/// How a model was trained; stored with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetadata {
    /// How it was trained: `central` or `federated`.
    pub method: String,
    /// Training run id, when a run produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// SHA-256 of the training examples.
    pub data_fingerprint: String,
    /// Examples the model trained on (over all shards, for a federated run).
    pub train_samples: usize,
    /// Examples in the validation split that `metrics` come from.
    pub val_samples: usize,
    /// Epochs (central) or rounds (federated) run.
    pub epochs: usize,
    /// The epoch or round whose weights were kept.
    pub best_epoch: usize,
    /// Seed of initialisation, shuffling and dropout, to repeat the training.
    pub seed: u64,
    /// Validation metrics of the stored weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Per-epoch (or per-round) history.
    #[serde(default)]
    pub history: Vec<EpochRecord>,
    /// Training settings as free-form JSON (learning rate, batch size, strategy, ...),
    /// for people to read.
    #[serde(default)]
    pub settings: serde_json::Value,
    /// When training started (RFC 3339).
    pub started_at: String,
    /// When training finished (RFC 3339).
    pub finished_at: String,
}

/// A model with everything needed to use it.
pub struct Checkpoint {
    /// The architecture the weights fit.
    pub config: ModelConfig,
    /// Vocabulary the embedding rows refer to.
    pub vocab: Vocab,
    /// Parameters by PyTorch name.
    pub weights: HashMap<String, Tensor>,
    /// Provenance and metrics.
    pub metadata: TrainingMetadata,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("config", &self.config)
            .field("vocab_size", &self.vocab.len())
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// Metadata of a checkpoint, readable without loading the weights.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// The architecture the weights fit.
    pub config: ModelConfig,
    /// Tokens in the vocabulary, which is also the embedding's row count.
    pub vocab_size: usize,
    /// Provenance and metrics.
    pub metadata: TrainingMetadata,
    /// SHA-256 of the content.
    pub content_sha256: String,
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// SHA-256 over the metadata strings and the tensors (name, shape, bytes), both
/// in name order.
fn content_hash<'a>(
    strings: &BTreeMap<String, String>,
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [u8])>,
) -> String {
    let mut h = Sha256::new();
    for (k, v) in strings {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    for (name, shape, bytes) in tensors {
        h.update(name.as_bytes());
        for d in shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update(bytes);
    }
    hex(&h.finalize())
}

fn f32_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let values = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

impl Checkpoint {
    /// Captures `model`'s current weights.
    pub fn from_model(
        model: &SentimentModel,
        vocab: Vocab,
        metadata: TrainingMetadata,
    ) -> Result<Self> {
        Ok(Self {
            config: model.config().clone(),
            vocab,
            weights: model.snapshot()?,
            metadata,
        })
    }

    /// Builds the model (it copies the weights; the checkpoint stays usable).
    pub fn model(&self) -> Result<SentimentModel> {
        Ok(SentimentModel::from_tensors(
            self.config.clone(),
            self.weights.clone(),
        )?)
    }

    /// The encoder (vocabulary, truncation, granularity) this model was trained with.
    pub fn encoder(&self) -> Encoder {
        Encoder::new(self.vocab.clone(), self.config.max_len)
            .with_granularity(self.config.granularity)
    }

    fn strings(&self) -> Result<BTreeMap<String, String>> {
        Ok(BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("format_version".to_string(), FORMAT_VERSION.to_string()),
            ("config".to_string(), to_json(&self.config)?),
            ("vocab".to_string(), to_json(&self.vocab)?),
            ("training".to_string(), to_json(&self.metadata)?),
        ]))
    }

    /// Serialises to bytes; returns them with the content hash.
    pub fn to_bytes(&self) -> Result<(Vec<u8>, String)> {
        let mut strings = self.strings()?;
        let mut tensors = BTreeMap::new();
        for (name, _) in self.config.parameter_shapes() {
            let t = self
                .weights
                .get(name)
                .ok_or_else(|| ModelError::Config(format!("checkpoint lacks parameter {name}")))?;
            tensors.insert(name.to_string(), (t.dims().to_vec(), f32_bytes(t)?));
        }
        let hash = content_hash(
            &strings,
            tensors
                .iter()
                .map(|(name, (shape, bytes))| (name.as_str(), shape.as_slice(), bytes.as_slice())),
        );
        strings.insert("content_sha256".to_string(), hash.clone());
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(name, (shape, bytes))| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| ModelError::Config(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let bytes = safetensors::serialize(views, Some(strings.into_iter().collect()))
            .map_err(|e| ModelError::Config(format!("cannot serialise checkpoint: {e}")))?;
        Ok((bytes, hash))
    }

    /// Writes the checkpoint to `path` (through a temporary file and a rename,
    /// so readers never see half a file). Returns the content hash.
    pub fn save(&self, path: &Path) -> Result<String> {
        let (bytes, hash) = self.to_bytes()?;
        crate::registry::replace_file(path, &bytes)?;
        Ok(hash)
    }

    /// Reads a checkpoint, verifying format, version, hash and shapes.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses checkpoint bytes; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let (strings, hash) = verified_strings(bytes, path)?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unhashed = strings.clone();
        unhashed.remove("content_sha256");
        let hashed = views
            .iter()
            .map(|(name, view)| (name.as_str(), view.shape(), view.data()));
        if content_hash(&unhashed, hashed) != hash {
            return Err(bad(path, "content hash mismatch: the file is corrupted"));
        }
        let mut weights = HashMap::new();
        for (name, view) in views {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(
                    path,
                    format!("tensor {name} is {:?}, expected F32", view.dtype()),
                ));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            weights.insert(name, Tensor::from_vec(values, view.shape(), &Device::Cpu)?);
        }
        let header = parse_header(&strings, hash, path)?;
        let vocab: Vocab = parse_json(&strings, "vocab", path)?;
        if vocab.len() != header.config.vocab_size {
            return Err(bad(
                path,
                format!(
                    "vocabulary has {} tokens, config says {}",
                    vocab.len(),
                    header.config.vocab_size
                ),
            ));
        }
        for (name, shape) in header.config.parameter_shapes() {
            match weights.get(name) {
                None => return Err(bad(path, format!("missing parameter {name}"))),
                Some(t) if t.dims() != shape.as_slice() => {
                    let reason = format!(
                        "parameter {name} has shape {:?}, expected {shape:?}",
                        t.dims()
                    );
                    return Err(bad(path, reason));
                }
                Some(_) => {}
            }
        }
        Ok(Self {
            config: header.config,
            vocab,
            weights,
            metadata: header.metadata,
        })
    }

    /// Reads the header (config, metadata, hash) without decoding the weights.
    pub fn read_header(path: &Path) -> Result<Header> {
        let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
        let (strings, hash) = verified_strings(&bytes, path)?;
        parse_header(&strings, hash, path)
    }
}

fn verified_strings(bytes: &[u8], path: &Path) -> Result<(BTreeMap<String, String>, String)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        bad(
            path,
            format!("not a safetensors file (truncated or foreign): {e}"),
        )
    })?;
    let strings: BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    match strings.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(bad(
                path,
                format!("foreign format {other:?}, expected {FORMAT:?}"),
            ))
        }
        None => return Err(bad(path, "not a bloginfer checkpoint (no format tag)")),
    }
    let version = strings
        .get("format_version")
        .map(String::as_str)
        .unwrap_or("");
    if version != FORMAT_VERSION.to_string() {
        return Err(bad(
            path,
            format!(
                "format version {version:?} is not supported (this build reads {FORMAT_VERSION})"
            ),
        ));
    }
    let hash = strings
        .get("content_sha256")
        .cloned()
        .ok_or_else(|| bad(path, "missing content hash"))?;
    Ok((strings, hash))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ModelError::Config(e.to_string()))
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    strings: &BTreeMap<String, String>,
    key: &str,
    path: &Path,
) -> Result<T> {
    let raw = strings
        .get(key)
        .ok_or_else(|| bad(path, format!("missing {key}")))?;
    serde_json::from_str(raw).map_err(|e| bad(path, format!("invalid {key}: {e}")))
}

fn parse_header(strings: &BTreeMap<String, String>, hash: String, path: &Path) -> Result<Header> {
    let config: ModelConfig = parse_json(strings, "config", path)?;
    config.validate().map_err(|e| bad(path, e))?;
    let metadata: TrainingMetadata = parse_json(strings, "training", path)?;
    let vocab_size = config.vocab_size;
    Ok(Header {
        config,
        vocab_size,
        metadata,
        content_sha256: hash,
    })
}
