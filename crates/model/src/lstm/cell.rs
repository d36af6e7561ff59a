//! Element-wise LSTM cell, forward and backward, for one time step of a batch.
//!
//! Buffers are batch-first: gates are `[B, T, 4H]`, cell states and outputs
//! `[B, T, H]`. Gate order is PyTorch's (i, f, g, o). A row whose sequence has
//! already ended (`t >= len`) gets zero outputs and zero gate gradients, which
//! is what freezes its state at its true length.

use super::math::{sigmoid, tanh};

/// Dimensions of one sequence batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub steps: usize,
    pub hidden: usize,
}

/// Forward buffers. On entry `gates` at step t holds pre-activations without
/// bias; on exit it holds activated gates.
pub(crate) struct Forward<'a> {
    pub gates: &'a mut [f32],
    pub bias: &'a [f32],
    pub cell: &'a mut [f32],
    pub tanh_cell: &'a mut [f32],
    pub out: &'a mut [f32],
    pub lengths: &'a [usize],
}

/// Backward buffers. On entry `gates` at step t holds activated gates; on exit
/// it holds the gradients of the pre-activations. `grad_h` holds the gradient
/// flowing into h_t from step t+1 (`[B, H]`), `grad_c` the one into c_t.
pub(crate) struct Backward<'a> {
    pub gates: &'a mut [f32],
    pub cell: &'a [f32],
    pub tanh_cell: &'a [f32],
    pub grad_out: &'a [f32],
    pub grad_h: &'a [f32],
    pub grad_c: &'a mut [f32],
    pub lengths: &'a [usize],
}

#[inline(always)]
fn forward_generic(d: Dims, t: usize, rows: usize, b: &mut Forward<'_>) {
    let h = d.hidden;
    let bias = &b.bias[..4 * h];
    for row in 0..rows {
        let g0 = (row * d.steps + t) * 4 * h;
        let s0 = (row * d.steps + t) * h;
        if t >= b.lengths[row] {
            b.out[s0..s0 + h].fill(0.0);
            b.gates[g0..g0 + 4 * h].fill(0.0);
            continue;
        }
        let gates = &mut b.gates[g0..g0 + 4 * h];
        let (cell_before, cell_here) = b.cell.split_at_mut(s0);
        let cell = &mut cell_here[..h];
        let tanh_cell = &mut b.tanh_cell[s0..s0 + h];
        let out = &mut b.out[s0..s0 + h];
        if t == 0 {
            for j in 0..h {
                let i = sigmoid(gates[j] + bias[j]);
                let f = sigmoid(gates[h + j] + bias[h + j]);
                let g = tanh(gates[2 * h + j] + bias[2 * h + j]);
                let o = sigmoid(gates[3 * h + j] + bias[3 * h + j]);
                let c = i * g;
                let tc = tanh(c);
                gates[j] = i;
                gates[h + j] = f;
                gates[2 * h + j] = g;
                gates[3 * h + j] = o;
                cell[j] = c;
                tanh_cell[j] = tc;
                out[j] = o * tc;
            }
        } else {
            let prev = &cell_before[s0 - h..s0];
            for j in 0..h {
                let i = sigmoid(gates[j] + bias[j]);
                let f = sigmoid(gates[h + j] + bias[h + j]);
                let g = tanh(gates[2 * h + j] + bias[2 * h + j]);
                let o = sigmoid(gates[3 * h + j] + bias[3 * h + j]);
                let c = f * prev[j] + i * g;
                let tc = tanh(c);
                gates[j] = i;
                gates[h + j] = f;
                gates[2 * h + j] = g;
                gates[3 * h + j] = o;
                cell[j] = c;
                tanh_cell[j] = tc;
                out[j] = o * tc;
            }
        }
    }
}

#[inline(always)]
fn backward_generic(d: Dims, t: usize, rows: usize, b: &mut Backward<'_>) {
    let h = d.hidden;
    for row in 0..rows {
        let g0 = (row * d.steps + t) * 4 * h;
        let s0 = (row * d.steps + t) * h;
        let gates = &mut b.gates[g0..g0 + 4 * h];
        if t >= b.lengths[row] {
            gates.fill(0.0);
            continue;
        }
        let tanh_cell = &b.tanh_cell[s0..s0 + h];
        let grad_out = &b.grad_out[s0..s0 + h];
        let grad_h = &b.grad_h[row * h..row * h + h];
        let grad_c = &mut b.grad_c[row * h..row * h + h];
        let zeros = [0.0f32; 0];
        let prev: &[f32] = if t == 0 { &zeros } else { &b.cell[s0 - h..s0] };
        for j in 0..h {
            let (i, f, g, o) = (gates[j], gates[h + j], gates[2 * h + j], gates[3 * h + j]);
            let tc = tanh_cell[j];
            let dh = grad_out[j] + grad_h[j];
            let dc = grad_c[j] + dh * o * (1.0 - tc * tc);
            let c_prev = if t == 0 { 0.0 } else { prev[j] };
            gates[j] = dc * g * i * (1.0 - i);
            gates[h + j] = dc * c_prev * f * (1.0 - f);
            gates[2 * h + j] = dc * i * (1.0 - g * g);
            gates[3 * h + j] = dh * tc * o * (1.0 - o);
            grad_c[j] = dc * f;
        }
    }
}

macro_rules! dispatch {
    ($name:ident, $generic:ident, $buffers:ty) => {
        /// Runs the step kernel compiled for the best instruction set available.
        pub(crate) fn $name(d: Dims, t: usize, rows: usize, b: &mut $buffers) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512(d: Dims, t: usize, rows: usize, b: &mut $buffers) {
                    $generic(d, t, rows, b)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2(d: Dims, t: usize, rows: usize, b: &mut $buffers) {
                    $generic(d, t, rows, b)
                }
                match super::simd_level() {
                    // SAFETY: simd_level() reports only features the CPU has.
                    super::SimdLevel::Avx512 => return unsafe { avx512(d, t, rows, b) },
                    super::SimdLevel::Avx2 => return unsafe { avx2(d, t, rows, b) },
                    super::SimdLevel::Baseline => {}
                }
            }
            $generic(d, t, rows, b)
        }
    };
}

dispatch!(forward_step, forward_generic, Forward<'_>);
dispatch!(backward_step, backward_generic, Backward<'_>);
