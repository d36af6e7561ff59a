//! The sentiment model: an LSTM classifier on candle with our fused LSTM op.
//!
//! - [`config`]: architecture and training settings, saved with the weights;
//! - [`data`]: labelled TSV, the bundled corpus, the fixed validation split;
//! - [`batch`]: encoded texts padded into length-sorted batches;
//! - [`classifier`]: embedding -> [`lstm`] -> pooling -> dropout -> linear;
//! - [`optim`]: fused in-place Adam with gradient clipping;
//! - [`train`]: length-bucketed batches, epochs, early stopping, evaluation;
//! - [`metrics`]: accuracy, per-class precision / recall / F1, confusion matrix;
//! - [`checkpoint`]: one self-describing, hash-checked safetensors file;
//! - [`registry`]: immutable versions, an atomic `current` pointer, retention;
//! - [`predict`]: text in, label and probabilities out;
//! - [`follow`]: the served model, following the registry's current pointer.

#![warn(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod data;
mod error;
pub mod follow;
pub mod lstm;
pub mod metrics;
pub mod optim;
pub mod predict;
pub mod registry;
pub mod runtime;
mod tensor_data;
pub mod train;

pub use checkpoint::{Checkpoint, TrainingMetadata};
pub use classifier::{Batch, SentimentModel};
pub use config::{ModelConfig, Pooling, TrainConfig};
pub use error::{ModelError, Result};
pub use follow::{LoadedModel, ModelFollower, Reload};
pub use metrics::Metrics;
pub use predict::{Prediction, Predictor};
pub use registry::Registry;
