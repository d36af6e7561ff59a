//! Chinese text pipeline for the sentiment model.
//!
//! Raw text goes through [`normalize()`] (full-width to half-width, lower-case,
//! whitespace collapsed), then [`Tokenizer`] (jieba word segmentation), then a
//! [`Vocab`] maps tokens to ids, and [`Encoder`] ties the three together with
//! truncation to a maximum length. Every step is deterministic: the same text
//! always gives the same ids, which checkpoints and federated workers rely on.

#![warn(missing_docs)]

mod encode;
mod normalize;
mod tokenizer;
mod vocab;

pub use encode::Encoder;
pub use normalize::normalize;
pub use tokenizer::{Granularity, Tokenizer};
pub use vocab::{Vocab, VocabBuilder, VocabError, PAD_ID, PAD_TOKEN, UNK_ID, UNK_TOKEN};
