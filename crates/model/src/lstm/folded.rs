//! Serving-side LSTM over token ids, with the input projection folded into a
//! per-token table.
//!
//! At inference the embedding feeds the LSTM's input projection directly, so
//! `embedding[token] * W_ih^T` can be computed once per vocabulary entry when a
//! model is loaded (`[V, 4H]`, 41 MB for the default model). A forward pass then
//! gathers rows instead of running the `[B*T, E] x [E, 4H]` GEMM, which was
//! half of the arithmetic; only the recurrent GEMM and the cell remain.

use super::cell::{infer_step, Dims, Infer};
use super::gemm::{matmul, View};
use super::op::active_rows;

/// One direction's weights, prepared for token-id inference.
#[derive(Debug, Clone)]
pub struct FoldedLstm {
    /// `embedding * W_ih^T`, `[V, 4H]` row-major.
    table: Vec<f32>,
    /// `W_hh^T`, `[H, 4H]` row-major.
    w_hh_t: Vec<f32>,
    /// `b_ih + b_hh`.
    bias: Vec<f32>,
    hidden: usize,
}

/// One LSTM direction's parameters as row-major slices (PyTorch layout).
#[derive(Debug, Clone, Copy)]
pub struct LstmSlices<'a> {
    /// Input-to-hidden weights, `[4H, E]`.
    pub w_ih: &'a [f32],
    /// Hidden-to-hidden weights, `[4H, H]`.
    pub w_hh: &'a [f32],
    /// Input-to-hidden bias, `[4H]`.
    pub b_ih: &'a [f32],
    /// Hidden-to-hidden bias, `[4H]`.
    pub b_hh: &'a [f32],
    /// The hidden size H: each gate's width.
    pub hidden: usize,
}

impl FoldedLstm {
    /// Folds `embedding` (`[V, embed]`) into the input projection of `lstm`.
    pub fn new(embedding: &[f32], embed: usize, lstm: LstmSlices<'_>, threads: usize) -> Self {
        let LstmSlices {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            hidden,
        } = lstm;
        let g = 4 * hidden;
        let vocab = embedding.len() / embed.max(1);
        let mut table = vec![0.0f32; vocab * g];
        matmul(
            &mut table,
            g,
            false,
            View::dense(embedding, vocab, embed),
            View::dense(w_ih, g, embed).t(),
            threads,
        );
        let mut w_hh_t = vec![0.0f32; hidden * g];
        for (r, row) in w_hh.chunks_exact(hidden).enumerate() {
            for (c, v) in row.iter().enumerate() {
                w_hh_t[c * g + r] = *v;
            }
        }
        let bias = b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect();
        Self {
            table,
            w_hh_t,
            bias,
            hidden,
        }
    }

    /// Vocabulary size the table covers.
    pub fn vocab(&self) -> usize {
        self.table.len() / (4 * self.hidden)
    }

    /// Hidden states `[B, T, H]` (zero at and after each length) for `tokens`
    /// (`[B, T]` row-major, padded) with per-row `lengths`. Token ids beyond
    /// the vocabulary read as `<unk>` (1).
    pub fn forward(
        &self,
        tokens: &[u32],
        lengths: &[usize],
        steps: usize,
        threads: usize,
    ) -> Vec<f32> {
        let (h, g) = (self.hidden, 4 * self.hidden);
        let batch = lengths.len();
        let vocab = self.vocab();
        let mut gates = Vec::with_capacity(batch * steps * g);
        for &token in &tokens[..batch * steps] {
            let id = if (token as usize) < vocab {
                token as usize
            } else {
                vocab.saturating_sub(1).min(1)
            };
            gates.extend_from_slice(&self.table[id * g..(id + 1) * g]);
        }
        let mut state = vec![0.0f32; batch * h];
        let mut out = vec![0.0f32; batch * steps * h];
        let active = active_rows(lengths, steps);
        let recurrent = View::dense(&self.w_hh_t, h, g);
        let d = Dims { steps, hidden: h };
        for t in 0..steps {
            let rows = active[t];
            if t > 0 && rows > 0 {
                let prev = View {
                    data: &out[(t - 1) * h..],
                    rows,
                    cols: h,
                    row_stride: steps * h,
                    col_stride: 1,
                };
                matmul(
                    &mut gates[t * g..],
                    steps * g,
                    true,
                    prev,
                    recurrent,
                    threads,
                );
            }
            let mut buffers = Infer {
                gates: &gates,
                bias: &self.bias,
                state: &mut state,
                out: &mut out,
                lengths,
            };
            infer_step(d, t, rows, &mut buffers);
        }
        out
    }
}
