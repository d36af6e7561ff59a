//! Batches of encoded texts for the classifier.

use candle_core::{Device, Result, Tensor};

/// A batch of encoded texts, sorted longest first (the fused LSTM then skips
/// finished rows).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids `[B, T]`, padded with `<pad>`.
    pub tokens: Tensor,
    /// Real lengths `[B]` (at least 1).
    pub lengths: Tensor,
    /// Host copy of `lengths`.
    pub host_lengths: Vec<usize>,
    /// Labels `[B]`, when known.
    pub labels: Option<Tensor>,
    /// `order[i]` is the caller's index of batch row `i`.
    pub order: Vec<usize>,
}

impl Batch {
    /// Builds a batch from id sequences (and optional labels). An empty sequence
    /// becomes a single `<pad>` token so every row has a state to pool.
    pub fn new(seqs: &[&[u32]], labels: Option<&[u32]>, device: &Device) -> Result<Self> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let steps = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
        let mut tokens = vec![0u32; seqs.len() * steps];
        let mut lengths = Vec::with_capacity(seqs.len());
        for (row, &i) in order.iter().enumerate() {
            let seq = seqs[i];
            tokens[row * steps..row * steps + seq.len()].copy_from_slice(seq);
            lengths.push(seq.len().max(1));
        }
        // Lengths are at most the longest text's token count; u32 is the
        // index dtype candle uses for them.
        #[allow(clippy::cast_possible_truncation)]
        let len_u32: Vec<u32> = lengths.iter().map(|&n| n as u32).collect();
        let labels = match labels {
            Some(l) => {
                let sorted: Vec<u32> = order.iter().map(|&i| l[i]).collect();
                Some(Tensor::new(sorted.as_slice(), device)?)
            }
            None => None,
        };
        Ok(Self {
            tokens: Tensor::from_vec(tokens, (seqs.len(), steps), device)?,
            lengths: Tensor::new(len_u32.as_slice(), device)?,
            host_lengths: lengths,
            labels,
            order,
        })
    }
}
