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

/// Inference buffers: gates are read only, the cell state is one `[B, H]`
/// buffer carried from step to step, and nothing is kept for a backward pass.
pub(crate) struct Infer<'a> {
    pub gates: &'a [f32],
    pub bias: &'a [f32],
    pub state: &'a mut [f32],
    pub out: &'a mut [f32],
    pub lengths: &'a [usize],
}

/// Splits a `[4H]` gate row into its four `[H]` parts (i, f, g, o).
#[inline(always)]
fn quarters_mut(row: &mut [f32], h: usize) -> [&mut [f32]; 4] {
    let (i, rest) = row.split_at_mut(h);
    let (f, rest) = rest.split_at_mut(h);
    let (g, o) = rest.split_at_mut(h);
    [i, f, g, &mut o[..h]]
}

#[inline(always)]
fn quarters(row: &[f32], h: usize) -> [&[f32]; 4] {
    let (i, rest) = row.split_at(h);
    let (f, rest) = rest.split_at(h);
    let (g, o) = rest.split_at(h);
    [i, f, g, &o[..h]]
}

// The row kernels work on 16-lane local arrays: loads and stores go through
// plain copies, so the arithmetic in between has no aliasing questions and
// LLVM turns each lane loop into straight SIMD code (loops over the nine
// buffers directly stayed scalar behind its runtime alias checks). Rows whose
// length is not a multiple of 16 finish in a scalar tail loop: folding the
// tail into the lane loop (partial copies) measured 50% slower at batch 64.
const LANES: usize = 16;

#[inline(always)]
fn load(src: &[f32]) -> [f32; LANES] {
    let mut out = [0.0; LANES];
    out.copy_from_slice(&src[..LANES]);
    out
}

#[inline(always)]
fn store(dst: &mut [f32], v: &[f32; LANES]) {
    dst[..LANES].copy_from_slice(v);
}

/// One hidden unit, forward: pre-activations (i, f, g, o) with bias and the
/// previous cell state give the activated gates, the new cell state, its tanh
/// and the output.
#[inline(always)]
fn unit_forward(pre: [f32; 4], c_prev: f32) -> ([f32; 4], f32, f32, f32) {
    let (i, f, g, o) = (
        sigmoid(pre[0]),
        sigmoid(pre[1]),
        tanh(pre[2]),
        sigmoid(pre[3]),
    );
    let c = f * c_prev + i * g;
    let tc = tanh(c);
    ([i, f, g, o], c, tc, o * tc)
}

/// One hidden unit, backward: activated gates, tanh of the cell state, the
/// previous cell state, dL/dh and the cell gradient from the next step give the
/// pre-activation gradients and the cell gradient for the previous step.
#[inline(always)]
fn unit_backward(act: [f32; 4], tc: f32, c_prev: f32, dh: f32, dc_next: f32) -> ([f32; 4], f32) {
    let [i, f, g, o] = act;
    let dc = dc_next + dh * o * (1.0 - tc * tc);
    let grads = [
        dc * g * i * (1.0 - i),
        dc * c_prev * f * (1.0 - f),
        dc * i * (1.0 - g * g),
        dh * tc * o * (1.0 - o),
    ];
    (grads, dc * f)
}

#[inline(always)]
fn forward_row(
    gates: [&mut [f32]; 4],
    bias: [&[f32]; 4],
    prev: &[f32],
    cell: &mut [f32],
    tanh_cell: &mut [f32],
    out: &mut [f32],
) {
    let [gi, gf, gg, go] = gates;
    let [b_i, b_f, b_g, b_o] = bias;
    let h = out.len();
    let full = h - h % LANES;
    let mut j = 0;
    while j < full {
        let r = j..j + LANES;
        let (mut i, mut f, mut g, mut o) = (
            load(&gi[r.clone()]),
            load(&gf[r.clone()]),
            load(&gg[r.clone()]),
            load(&go[r.clone()]),
        );
        let (bi, bf, bg, bo) = (
            load(&b_i[r.clone()]),
            load(&b_f[r.clone()]),
            load(&b_g[r.clone()]),
            load(&b_o[r.clone()]),
        );
        let p = load(&prev[r.clone()]);
        let (mut c, mut tc, mut hv) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
        for k in 0..LANES {
            let pre = [i[k] + bi[k], f[k] + bf[k], g[k] + bg[k], o[k] + bo[k]];
            let act;
            (act, c[k], tc[k], hv[k]) = unit_forward(pre, p[k]);
            [i[k], f[k], g[k], o[k]] = act;
        }
        store(&mut gi[r.clone()], &i);
        store(&mut gf[r.clone()], &f);
        store(&mut gg[r.clone()], &g);
        store(&mut go[r.clone()], &o);
        store(&mut cell[r.clone()], &c);
        store(&mut tanh_cell[r.clone()], &tc);
        store(&mut out[r], &hv);
        j += LANES;
    }
    for j in full..h {
        let pre = [
            gi[j] + b_i[j],
            gf[j] + b_f[j],
            gg[j] + b_g[j],
            go[j] + b_o[j],
        ];
        let act;
        (act, cell[j], tanh_cell[j], out[j]) = unit_forward(pre, prev[j]);
        [gi[j], gf[j], gg[j], go[j]] = act;
    }
}

#[inline(always)]
fn infer_row(gates: [&[f32]; 4], bias: [&[f32]; 4], state: &mut [f32], out: &mut [f32]) {
    let [gi, gf, gg, go] = gates;
    let [b_i, b_f, b_g, b_o] = bias;
    let h = out.len();
    let full = h - h % LANES;
    let mut j = 0;
    while j < full {
        let r = j..j + LANES;
        let (i, f, g, o) = (
            load(&gi[r.clone()]),
            load(&gf[r.clone()]),
            load(&gg[r.clone()]),
            load(&go[r.clone()]),
        );
        let (bi, bf, bg, bo) = (
            load(&b_i[r.clone()]),
            load(&b_f[r.clone()]),
            load(&b_g[r.clone()]),
            load(&b_o[r.clone()]),
        );
        let mut c = load(&state[r.clone()]);
        let mut hv = [0.0f32; LANES];
        for k in 0..LANES {
            let pre = [i[k] + bi[k], f[k] + bf[k], g[k] + bg[k], o[k] + bo[k]];
            (_, c[k], _, hv[k]) = unit_forward(pre, c[k]);
        }
        store(&mut state[r.clone()], &c);
        store(&mut out[r], &hv);
        j += LANES;
    }
    for j in full..h {
        let pre = [
            gi[j] + b_i[j],
            gf[j] + b_f[j],
            gg[j] + b_g[j],
            go[j] + b_o[j],
        ];
        (_, state[j], _, out[j]) = unit_forward(pre, state[j]);
    }
}

#[inline(always)]
fn backward_row(
    gates: [&mut [f32]; 4],
    tanh_cell: &[f32],
    grad_out: &[f32],
    grad_h: &[f32],
    grad_c: &mut [f32],
    prev: &[f32],
) {
    let [gi, gf, gg, go] = gates;
    let h = grad_c.len();
    let full = h - h % LANES;
    let mut j = 0;
    while j < full {
        let r = j..j + LANES;
        let (mut i, mut f, mut g, mut o) = (
            load(&gi[r.clone()]),
            load(&gf[r.clone()]),
            load(&gg[r.clone()]),
            load(&go[r.clone()]),
        );
        let (tc, dout, dhr, mut dc, p) = (
            load(&tanh_cell[r.clone()]),
            load(&grad_out[r.clone()]),
            load(&grad_h[r.clone()]),
            load(&grad_c[r.clone()]),
            load(&prev[r.clone()]),
        );
        for k in 0..LANES {
            let act = [i[k], f[k], g[k], o[k]];
            let grads;
            (grads, dc[k]) = unit_backward(act, tc[k], p[k], dout[k] + dhr[k], dc[k]);
            [i[k], f[k], g[k], o[k]] = grads;
        }
        store(&mut gi[r.clone()], &i);
        store(&mut gf[r.clone()], &f);
        store(&mut gg[r.clone()], &g);
        store(&mut go[r.clone()], &o);
        store(&mut grad_c[r], &dc);
        j += LANES;
    }
    for j in full..h {
        let act = [gi[j], gf[j], gg[j], go[j]];
        let grads;
        (grads, grad_c[j]) = unit_backward(
            act,
            tanh_cell[j],
            prev[j],
            grad_out[j] + grad_h[j],
            grad_c[j],
        );
        [gi[j], gf[j], gg[j], go[j]] = grads;
    }
}

#[inline(always)]
fn forward_generic(d: Dims, t: usize, rows: usize, b: &mut Forward<'_>) {
    let h = d.hidden;
    let [b_i, b_f, b_g, b_o] = quarters(&b.bias[..4 * h], h);
    let zeros = vec![0.0f32; if t == 0 { h } else { 0 }];
    for row in 0..rows {
        let g0 = (row * d.steps + t) * 4 * h;
        let s0 = (row * d.steps + t) * h;
        if t >= b.lengths[row] {
            b.out[s0..s0 + h].fill(0.0);
            b.gates[g0..g0 + 4 * h].fill(0.0);
            continue;
        }
        let [gi, gf, gg, go] = quarters_mut(&mut b.gates[g0..g0 + 4 * h], h);
        let (cell_before, cell_here) = b.cell.split_at_mut(s0);
        let prev = if t == 0 {
            &zeros[..h]
        } else {
            &cell_before[s0 - h..s0]
        };
        let cell = &mut cell_here[..h];
        let tanh_cell = &mut b.tanh_cell[s0..s0 + h];
        let out = &mut b.out[s0..s0 + h];
        forward_row(
            [gi, gf, gg, go],
            [b_i, b_f, b_g, b_o],
            prev,
            cell,
            tanh_cell,
            out,
        );
    }
}

#[inline(always)]
fn backward_generic(d: Dims, t: usize, rows: usize, b: &mut Backward<'_>) {
    let h = d.hidden;
    let zeros = vec![0.0f32; if t == 0 { h } else { 0 }];
    for row in 0..rows {
        let g0 = (row * d.steps + t) * 4 * h;
        let s0 = (row * d.steps + t) * h;
        if t >= b.lengths[row] {
            b.gates[g0..g0 + 4 * h].fill(0.0);
            continue;
        }
        let [gi, gf, gg, go] = quarters_mut(&mut b.gates[g0..g0 + 4 * h], h);
        let tanh_cell = &b.tanh_cell[s0..s0 + h];
        let grad_out = &b.grad_out[s0..s0 + h];
        let grad_h = &b.grad_h[row * h..row * h + h];
        let grad_c = &mut b.grad_c[row * h..row * h + h];
        let prev = if t == 0 {
            &zeros[..h]
        } else {
            &b.cell[s0 - h..s0]
        };
        backward_row([gi, gf, gg, go], tanh_cell, grad_out, grad_h, grad_c, prev);
    }
}

#[inline(always)]
fn infer_generic(d: Dims, t: usize, rows: usize, b: &mut Infer<'_>) {
    let h = d.hidden;
    let bias = quarters(&b.bias[..4 * h], h);
    for row in 0..rows {
        // Ended rows keep their (zero-initialised) outputs and frozen state.
        if t >= b.lengths[row] {
            continue;
        }
        let g0 = (row * d.steps + t) * 4 * h;
        let s0 = (row * d.steps + t) * h;
        let gates = quarters(&b.gates[g0..g0 + 4 * h], h);
        let state = &mut b.state[row * h..row * h + h];
        infer_row(gates, bias, state, &mut b.out[s0..s0 + h]);
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
dispatch!(infer_step, infer_generic, Infer<'_>);
