//! The model crate from the outside: the fused LSTM against candle's stock
//! LSTM, PyTorch compatibility of checkpoints, training, checkpoints and the
//! registry.

mod lstm_matches_stock;
mod pytorch_compat;
mod training;
