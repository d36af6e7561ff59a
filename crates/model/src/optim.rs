//! Adam with global gradient-norm clipping, updating parameters in place.
//!
//! candle-nn's `AdamW` runs about a dozen allocating tensor ops per parameter
//! per step; over the 2.6 M parameters of the default model (mostly the
//! embedding) that cost as much as a whole PyTorch training step. This one is a
//! single pass over each parameter, its gradient and its two moment buffers.

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Var};

use crate::tensor_data::F32Data;

/// Adam's hyper-parameters and the gradient clip, set once per training.
#[derive(Debug, Clone, Copy)]
pub struct AdamConfig {
    /// Learning rate; [`Adam::set_learning_rate`] changes it between steps.
    pub learning_rate: f64,
    /// Decay of the running mean of gradients (PyTorch's default 0.9).
    pub beta1: f64,
    /// Decay of the running mean of squared gradients (PyTorch's default 0.999).
    pub beta2: f64,
    /// Added to the second moment's root so that no step divides by zero (1e-8).
    pub eps: f64,
    /// Global gradient-norm clip; 0 disables it.
    pub clip_norm: f64,
}

impl AdamConfig {
    /// PyTorch's defaults with the given learning rate and clip.
    pub fn new(learning_rate: f64, clip_norm: f64) -> Self {
        Self {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm,
        }
    }
}

struct Slot {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Adam over a fixed set of variables.
pub struct Adam {
    config: AdamConfig,
    slots: Vec<Slot>,
    step: u64,
}

struct AdamKernel<'a> {
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    /// Learning rate with both bias corrections folded in.
    step_size: f32,
    /// sqrt(1 - beta2^t): the second moment's bias correction on eps.
    eps_scaled: f32,
    beta1: f32,
    beta2: f32,
    grad_scale: f32,
}

impl InplaceOp2 for AdamKernel<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }

    fn cpu_fwd(
        &self,
        param: &mut CpuStorage,
        pl: &Layout,
        grad: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (param, grad) else {
            candle_core::bail!("fused adam: f32 parameters and gradients only")
        };
        let (Some((p0, p1)), Some((g0, g1))) = (pl.contiguous_offsets(), gl.contiguous_offsets())
        else {
            candle_core::bail!("fused adam: contiguous tensors only")
        };
        let (p, g) = (&mut p[p0..p1], &g[g0..g1]);
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        if p.len() != g.len() || p.len() != m.len() {
            candle_core::bail!("fused adam: parameter, gradient and state sizes differ")
        }
        let (b1, b2, s, lr, eps) = (
            self.beta1,
            self.beta2,
            self.grad_scale,
            self.step_size,
            self.eps_scaled,
        );
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * s;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= lr * *m / (v.sqrt() + eps);
        }
        Ok(())
    }
}

/// Sum of squares with 16 f32 partial sums (vectorises; a scalar f64 loop over
/// the embedding gradient was 4% of a step), combined in f64.
fn sum_of_squares(values: &[f32]) -> f64 {
    let mut lanes = [0f32; 16];
    let chunks = values.chunks_exact(16);
    let tail = chunks.remainder();
    let mut total = 0f64;
    for (i, chunk) in chunks.enumerate() {
        for (acc, v) in lanes.iter_mut().zip(chunk) {
            *acc += v * v;
        }
        // Flush to f64 now and then so the f32 partial sums stay accurate.
        if i % 4096 == 4095 {
            total += lanes.iter().map(|&x| f64::from(x)).sum::<f64>();
            lanes = [0.0; 16];
        }
    }
    total += lanes.iter().map(|&x| f64::from(x)).sum::<f64>();
    total
        + tail
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
}

impl Adam {
    /// An optimiser over `vars` with zeroed moments.
    pub fn new(vars: Vec<Var>, config: AdamConfig) -> Self {
        let slots = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                Slot {
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        Self {
            config,
            slots,
            step: 0,
        }
    }

    /// Changes the learning rate (schedules, federated rounds).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.learning_rate = lr;
    }

    /// Applies one update from `grads`; returns the gradient norm before clipping.
    /// Variables without a gradient are left alone.
    // The hyper-parameters and the norm are f64; the kernel runs in f32 like
    // the parameters, so the narrowing casts are the point.
    #[allow(clippy::cast_possible_truncation)]
    pub fn step(&mut self, grads: &GradStore) -> Result<f64> {
        let mut sum_sq = 0f64;
        for slot in &self.slots {
            if let Some(g) = grads.get(&slot.var) {
                let g = g.contiguous()?;
                let data = F32Data::of(&g)?;
                sum_sq += sum_of_squares(data.slice());
            }
        }
        let norm = sum_sq.sqrt();
        if !norm.is_finite() {
            candle_core::bail!("gradient norm is not finite ({norm})")
        }
        let c = &self.config;
        let scale = if c.clip_norm > 0.0 && norm > c.clip_norm {
            c.clip_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        // Past i32::MAX steps beta^t is 0 anyway, as with the cap.
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        // PyTorch's update p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), rearranged so
        // the loop needs no per-element bias correction.
        let step_size = (c.learning_rate * bc2.sqrt() / bc1) as f32;
        let eps_scaled = (c.eps * bc2.sqrt()) as f32;
        for slot in &mut self.slots {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let g = g.contiguous()?;
            let kernel = AdamKernel {
                m: RefCell::new(&mut slot.m),
                v: RefCell::new(&mut slot.v),
                step_size,
                eps_scaled,
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                grad_scale: scale as f32,
            };
            slot.var.as_tensor().inplace_op2(&g, &kernel)?;
        }
        Ok(norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_reference_adam_on_a_quadratic() {
        let var = Var::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![var.clone()], AdamConfig::new(0.1, 0.0));
        let (mut p, mut m, mut v) = ([1.0f64, -2.0, 3.0], [0.0f64; 3], [0.0f64; 3]);
        for t in 1..=5 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
            for i in 0..3 {
                let g = 2.0 * p[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                p[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        for (g, w) in got.iter().zip(p) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {p:?}");
        }
    }

    #[test]
    fn clipping_scales_the_gradient() {
        let var = Var::new(&[0.0f32, 0.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![var.clone()], AdamConfig::new(0.1, 1.0));
        let target = Tensor::new(&[30.0f32, 40.0], &Device::Cpu).unwrap();
        let loss = (var.as_tensor() * &target).unwrap().sum_all().unwrap();
        let norm = adam.step(&loss.backward().unwrap()).unwrap();
        assert!((norm - 50.0).abs() < 1e-4);
        // Adam's first step moves each coordinate by ~lr regardless of scale.
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        assert!(got.iter().all(|x| (x + 0.1).abs() < 1e-4), "{got:?}");
    }
}
