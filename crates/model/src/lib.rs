//! The sentiment model: an LSTM classifier on candle with our fused LSTM op.

pub mod lstm;
