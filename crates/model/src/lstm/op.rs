//! The fused LSTM layer as one candle custom op with its own BPTT backward.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::tensor_data::F32Data;

use super::cell::{backward_step, forward_step, infer_step, Backward, Dims, Forward, Infer};
use super::gemm::{matmul, View};

/// Activations saved by the forward pass for the backward pass.
struct Saved {
    gates: Vec<f32>,
    cell: Vec<f32>,
    tanh_cell: Vec<f32>,
    lengths: Vec<usize>,
    /// Rows still running at each step when lengths are sorted longest first
    /// (the batcher sorts them so), letting each step's GEMM skip finished rows.
    active_rows: Vec<usize>,
}

/// One LSTM layer over `[B, T, E]` inputs, packed weights and `[B]` lengths,
/// producing `[B, T, H]` hidden states (zero past each sequence's length).
pub(crate) struct FusedLstm {
    pub input: usize,
    pub hidden: usize,
    pub threads: usize,
    /// Keep activations for `bwd`; off for inference.
    pub train: bool,
    saved: Mutex<Option<Saved>>,
}

impl FusedLstm {
    pub fn new(input: usize, hidden: usize, threads: usize, train: bool) -> Self {
        Self {
            input,
            hidden,
            threads,
            train,
            saved: Mutex::new(None),
        }
    }

    fn packed_len(&self) -> usize {
        let g = 4 * self.hidden;
        g * self.input + g * self.hidden + 2 * g
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("fused lstm: {what} must be f32, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("fused lstm: {what} must be contiguous"),
    }
}

fn lengths_of(
    s: &CpuStorage,
    l: &Layout,
    batch: usize,
    steps: usize,
) -> candle_core::Result<Vec<usize>> {
    let CpuStorage::U32(v) = s else {
        candle_core::bail!("fused lstm: lengths must be u32, got {:?}", s.dtype())
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("fused lstm: lengths must be contiguous")
    };
    if end - start != batch {
        candle_core::bail!("fused lstm: {} lengths for a batch of {batch}", end - start)
    }
    Ok(v[start..end]
        .iter()
        .map(|&n| (n as usize).min(steps))
        .collect())
}

/// Rows running at each step: a prefix of the batch when lengths are sorted
/// longest first, otherwise the whole batch (ended rows are masked per row).
pub(crate) fn active_rows(lengths: &[usize], steps: usize) -> Vec<usize> {
    let sorted = lengths.windows(2).all(|w| w[0] >= w[1]);
    (0..steps)
        .map(|t| {
            if sorted {
                lengths.iter().take_while(|&&n| n > t).count()
            } else {
                lengths.len()
            }
        })
        .collect()
}

struct Weights<'a> {
    w_ih: &'a [f32],
    w_hh: &'a [f32],
    b_ih: &'a [f32],
    b_hh: &'a [f32],
}

fn split_weights(packed: &[f32], input: usize, hidden: usize) -> Weights<'_> {
    let g = 4 * hidden;
    let (w_ih, rest) = packed.split_at(g * input);
    let (w_hh, rest) = rest.split_at(g * hidden);
    let (b_ih, b_hh) = rest.split_at(g);
    Weights {
        w_ih,
        w_hh,
        b_ih,
        b_hh,
    }
}

impl CustomOp3 for FusedLstm {
    fn name(&self) -> &'static str {
        "fused-lstm"
    }

    fn cpu_fwd(
        &self,
        x_s: &CpuStorage,
        x_l: &Layout,
        w_s: &CpuStorage,
        w_l: &Layout,
        len_s: &CpuStorage,
        len_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, steps, input) = x_l.shape().dims3()?;
        if input != self.input {
            candle_core::bail!(
                "fused lstm: input size {input}, layer expects {}",
                self.input
            )
        }
        let x = f32_slice(x_s, x_l, "input")?;
        let packed = f32_slice(w_s, w_l, "weights")?;
        if packed.len() != self.packed_len() {
            candle_core::bail!(
                "fused lstm: {} packed weights, expected {}",
                packed.len(),
                self.packed_len()
            )
        }
        let lengths = lengths_of(len_s, len_l, batch, steps)?;
        let h = self.hidden;
        let d = Dims { steps, hidden: h };
        let w = split_weights(packed, input, h);
        let bias: Vec<f32> = w.b_ih.iter().zip(w.b_hh).map(|(a, b)| a + b).collect();

        // Input projection for every step at once: [B*T, E] x [E, 4H].
        let mut gates = vec![0.0f32; batch * steps * 4 * h];
        matmul(
            &mut gates,
            4 * h,
            false,
            View::dense(x, batch * steps, input),
            View::dense(w.w_ih, 4 * h, input).t(),
            self.threads,
        );
        // Inference needs only a running cell state; training keeps every step's.
        let saved_len = if self.train { batch * steps * h } else { 0 };
        let mut cell = vec![0.0f32; saved_len];
        let mut tanh_cell = vec![0.0f32; saved_len];
        let mut state = vec![0.0f32; if self.train { 0 } else { batch * h }];
        let mut out = vec![0.0f32; batch * steps * h];
        let active = active_rows(&lengths, steps);
        // For batches, a dense row-major copy of W_hh^T made once per call saves
        // the GEMM re-packing the transposed view at every step (about 9% of a
        // batch-64 forward); for a single text the copy costs more than it saves.
        let w_hh_t: Option<Vec<f32>> = (batch >= 8).then(|| {
            let mut t = vec![0.0f32; h * 4 * h];
            for (r, row) in w.w_hh.chunks_exact(h).enumerate() {
                for (c, v) in row.iter().enumerate() {
                    t[c * 4 * h + r] = *v;
                }
            }
            t
        });
        let recurrent = match &w_hh_t {
            Some(t) => View::dense(t, h, 4 * h),
            None => View::dense(w.w_hh, 4 * h, h).t(),
        };
        for t in 0..steps {
            let rows = active[t];
            if t > 0 && rows > 0 {
                // gates[:, t] += h_{t-1} W_hh^T, rows strided by T*4H and T*H.
                let prev = View {
                    data: &out[(t - 1) * h..],
                    rows,
                    cols: h,
                    row_stride: steps * h,
                    col_stride: 1,
                };
                matmul(
                    &mut gates[t * 4 * h..],
                    steps * 4 * h,
                    true,
                    prev,
                    recurrent,
                    self.threads,
                );
            }
            if self.train {
                let mut buffers = Forward {
                    gates: &mut gates,
                    bias: &bias,
                    cell: &mut cell,
                    tanh_cell: &mut tanh_cell,
                    out: &mut out,
                    lengths: &lengths,
                };
                forward_step(d, t, rows, &mut buffers);
            } else {
                let mut buffers = Infer {
                    gates: &gates,
                    bias: &bias,
                    state: &mut state,
                    out: &mut out,
                    lengths: &lengths,
                };
                infer_step(d, t, rows, &mut buffers);
            }
        }
        if self.train {
            let saved = Saved {
                gates,
                cell,
                tanh_cell,
                lengths,
                active_rows: active,
            };
            *self
                .saved
                .lock()
                .map_err(|_| candle_core::Error::Msg("fused lstm: poisoned".into()))? = Some(saved);
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, steps, h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _lengths: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused lstm: poisoned".into()))?
            .take();
        let Some(Saved {
            mut gates,
            cell,
            tanh_cell,
            lengths,
            active_rows,
        }) = saved
        else {
            candle_core::bail!("fused lstm: backward without a training forward (or run twice)")
        };
        let (batch, steps, input) = x.dims3()?;
        let h = self.hidden;
        let d = Dims { steps, hidden: h };
        let grad_res = grad_res.contiguous()?;
        let x_data = F32Data::of(x)?;
        let packed_data = F32Data::of(packed)?;
        let out_data = F32Data::of(res)?;
        let grad_data = F32Data::of(&grad_res)?;
        let (x_v, out_v, grad_out) = (x_data.slice(), out_data.slice(), grad_data.slice());
        let w = split_weights(packed_data.slice(), input, h);

        let mut grad_h = vec![0.0f32; batch * h];
        let mut grad_c = vec![0.0f32; batch * h];
        for t in (0..steps).rev() {
            let rows = active_rows[t];
            let mut buffers = Backward {
                gates: &mut gates,
                cell: &cell,
                tanh_cell: &tanh_cell,
                grad_out,
                grad_h: &grad_h,
                grad_c: &mut grad_c,
                lengths: &lengths,
            };
            // Every row, not just the running ones: ended rows must get zero gate
            // gradients for the all-steps GEMMs below.
            backward_step(d, t, batch, &mut buffers);
            if t > 0 && rows > 0 {
                // dh_{t-1} = dA_t W_hh. Rows past `rows` have ended before step t and,
                // since steps run backwards, have never been written: they stay zero.
                let da = View {
                    data: &gates[t * 4 * h..],
                    rows,
                    cols: 4 * h,
                    row_stride: steps * 4 * h,
                    col_stride: 1,
                };
                matmul(
                    &mut grad_h,
                    h,
                    false,
                    da,
                    View::dense(w.w_hh, 4 * h, h),
                    self.threads,
                );
            }
        }

        // Everything else is one large GEMM over all steps at once.
        let rows_all = batch * steps;
        let da_all = View::dense(&gates, rows_all, 4 * h);
        let mut grad_x = vec![0.0f32; rows_all * input];
        matmul(
            &mut grad_x,
            input,
            false,
            da_all,
            View::dense(w.w_ih, 4 * h, input),
            self.threads,
        );

        let mut grad_packed = vec![0.0f32; self.packed_len()];
        let g = 4 * h;
        let (gw_ih, rest) = grad_packed.split_at_mut(g * input);
        let (gw_hh, rest) = rest.split_at_mut(g * h);
        let (gb_ih, gb_hh) = rest.split_at_mut(g);
        matmul(
            gw_ih,
            input,
            false,
            da_all.t(),
            View::dense(x_v, rows_all, input),
            self.threads,
        );
        let mut h_prev = vec![0.0f32; rows_all * h];
        for b in 0..batch {
            let base = b * steps * h;
            h_prev[base + h..base + steps * h]
                .copy_from_slice(&out_v[base..base + (steps - 1) * h]);
        }
        matmul(
            gw_hh,
            h,
            false,
            da_all.t(),
            View::dense(&h_prev, rows_all, h),
            self.threads,
        );
        for row in gates.chunks_exact(g) {
            for (acc, v) in gb_ih.iter_mut().zip(row) {
                *acc += v;
            }
        }
        gb_hh.copy_from_slice(gb_ih);

        let device = x.device();
        let grad_x = Tensor::from_vec(grad_x, (batch, steps, input), device)?;
        let grad_packed = Tensor::from_vec(grad_packed, packed.shape(), device)?;
        Ok((Some(grad_x), Some(grad_packed), None))
    }
}
