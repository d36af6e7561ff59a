//! The model crate from the outside: the fused LSTM against candle's stock
//! LSTM, PyTorch compatibility of checkpoints, training, checkpoints and the
//! registry.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

mod lstm_matches_stock;
mod pytorch_compat;
mod training;
