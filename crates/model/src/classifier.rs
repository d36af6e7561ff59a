//! The sentiment classifier: embedding -> fused LSTM -> pooling -> dropout -> linear.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};

pub use crate::batch::Batch;
use crate::config::{ModelConfig, Pooling};
use crate::lstm::{fused_lstm, FoldedLstm, LstmSlices, LstmWeights};
use crate::tensor_data::F32Data;

/// Parameter names, PyTorch's `state_dict` keys for the same module layout
/// (`nn.Embedding` as `embedding`, `nn.LSTM` as `lstm`, `nn.Linear` as `fc`).
pub mod names {
    /// Embedding table `[V, E]`.
    pub const EMBEDDING: &str = "embedding.weight";
    /// LSTM input weights `[4H, E]`.
    pub const W_IH: &str = "lstm.weight_ih_l0";
    /// LSTM recurrent weights `[4H, H]`.
    pub const W_HH: &str = "lstm.weight_hh_l0";
    /// LSTM input bias `[4H]`.
    pub const B_IH: &str = "lstm.bias_ih_l0";
    /// LSTM recurrent bias `[4H]`.
    pub const B_HH: &str = "lstm.bias_hh_l0";
    /// Reverse-direction LSTM input weights `[4H, E]` (bidirectional only).
    pub const W_IH_REV: &str = "lstm.weight_ih_l0_reverse";
    /// Reverse-direction recurrent weights `[4H, H]`.
    pub const W_HH_REV: &str = "lstm.weight_hh_l0_reverse";
    /// Reverse-direction input bias `[4H]`.
    pub const B_IH_REV: &str = "lstm.bias_ih_l0_reverse";
    /// Reverse-direction recurrent bias `[4H]`.
    pub const B_HH_REV: &str = "lstm.bias_hh_l0_reverse";
    /// Output weights `[C, H]` (`[C, 2H]` when bidirectional).
    pub const FC_W: &str = "fc.weight";
    /// Output bias `[C]`.
    pub const FC_B: &str = "fc.bias";
}

/// The classifier's parameters, held as named candle variables.
pub struct SentimentModel {
    config: ModelConfig,
    varmap: VarMap,
    threads: usize,
}

impl std::fmt::Debug for SentimentModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentimentModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn uniform(rng: &mut StdRng, shape: &[usize], bound: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..=bound)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

impl SentimentModel {
    /// A freshly initialised model, with PyTorch's default initialisation:
    /// N(0, 1) embeddings (the `<pad>` row zero), U(±1/sqrt(H)) LSTM weights,
    /// U(±1/sqrt(H)) output layer.
    pub fn new(config: ModelConfig, rng: &mut StdRng) -> Result<Self> {
        Self::with_embedding_std(config, 1.0, rng)
    }

    /// Like [`SentimentModel::new`] with N(0, `embed_std`) embeddings.
    pub fn with_embedding_std(
        config: ModelConfig,
        embed_std: f32,
        rng: &mut StdRng,
    ) -> Result<Self> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let (v, e, h) = (config.vocab_size, config.embed_dim, config.hidden_dim);
        let normal = Normal::new(0.0f32, embed_std)
            .map_err(|err| candle_core::Error::Msg(err.to_string()))?;
        let mut emb: Vec<f32> = (0..v * e).map(|_| normal.sample(rng)).collect();
        emb[..e].fill(0.0);
        let k = 1.0 / (h as f32).sqrt();
        let k_fc = 1.0 / (config.feature_dim() as f32).sqrt();
        let mut tensors = HashMap::new();
        for (name, shape) in config.parameter_shapes() {
            let tensor = match name {
                names::EMBEDDING => {
                    Tensor::from_vec(std::mem::take(&mut emb), (v, e), &Device::Cpu)?
                }
                names::FC_W | names::FC_B => uniform(rng, &shape, k_fc)?,
                _ => uniform(rng, &shape, k)?,
            };
            tensors.insert(name, tensor);
        }
        Self::from_tensors(
            config,
            tensors
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// A model over existing weights (a checkpoint or a PyTorch `state_dict`);
    /// every parameter must be present with the shape the config implies.
    pub fn from_tensors(config: ModelConfig, mut tensors: HashMap<String, Tensor>) -> Result<Self> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let expected = config.parameter_shapes();
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
            for (name, shape) in expected {
                let tensor = tensors
                    .remove(name)
                    .ok_or_else(|| candle_core::Error::Msg(format!("missing parameter {name}")))?;
                if tensor.dims() != shape.as_slice() {
                    candle_core::bail!(
                        "parameter {name} has shape {:?}, expected {shape:?}",
                        tensor.dims()
                    )
                }
                // `detach` makes `Var::from_tensor` copy even a variable's tensor, so the
                // model never shares storage with its source.
                let tensor = tensor
                    .detach()
                    .to_dtype(DType::F32)?
                    .to_device(&Device::Cpu)?
                    .contiguous()?;
                data.insert(name.to_string(), Var::from_tensor(&tensor)?);
            }
        }
        Ok(Self {
            config,
            varmap,
            threads: 1,
        })
    }

    /// Sets the GEMM thread count of the LSTM (1 by default).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The architecture it was built with, as its checkpoints store it.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The named variables, for optimisers and federated averaging.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// All parameters in [`ModelConfig::parameter_shapes`] order.
    pub fn vars(&self) -> Result<Vec<(String, Var)>> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        self.config
            .parameter_shapes()
            .into_iter()
            .map(|(name, _)| {
                data.get(name)
                    .map(|v| (name.to_string(), v.clone()))
                    .ok_or_else(|| candle_core::Error::Msg(format!("missing parameter {name}")))
            })
            .collect()
    }

    /// A copy of every parameter's current value.
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.vars()?
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().copy()?)))
            .collect()
    }

    /// Overwrites parameters with `tensors` (same names and shapes).
    pub fn restore(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.vars()? {
            let value = tensors
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing parameter {name}")))?;
            var.set(value)?;
        }
        Ok(())
    }

    fn param(&self, name: &str) -> Result<Tensor> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("missing parameter {name}")))
    }

    /// The forward LSTM's parameters.
    pub fn lstm_weights(&self) -> Result<LstmWeights> {
        Ok(LstmWeights {
            w_ih: self.param(names::W_IH)?,
            w_hh: self.param(names::W_HH)?,
            b_ih: self.param(names::B_IH)?,
            b_hh: self.param(names::B_HH)?,
        })
    }

    /// The backward LSTM's parameters, when bidirectional.
    pub fn reverse_lstm_weights(&self) -> Result<Option<LstmWeights>> {
        if !self.config.bidirectional {
            return Ok(None);
        }
        Ok(Some(LstmWeights {
            w_ih: self.param(names::W_IH_REV)?,
            w_hh: self.param(names::W_HH_REV)?,
            b_ih: self.param(names::B_IH_REV)?,
            b_hh: self.param(names::B_HH_REV)?,
        }))
    }

    /// Both directions' weights packed for the fused op (inference caches this).
    pub fn pack(&self) -> Result<PackedWeights> {
        Ok(PackedWeights {
            forward: self.lstm_weights()?.pack()?,
            reverse: self.reverse_lstm_weights()?.map(|w| w.pack()).transpose()?,
            folded: None,
        })
    }

    /// Like [`SentimentModel::pack`], plus the embedding folded into each
    /// direction's input projection: a `[V, 4H]` table per direction, built
    /// once, that makes every later inference pass skip the input GEMM.
    pub fn pack_for_inference(&self) -> Result<PackedWeights> {
        let mut packed = self.pack()?;
        let cfg = &self.config;
        let embedding = self.param(names::EMBEDDING)?.contiguous()?;
        let embedding = F32Data::of(&embedding)?;
        let fold = |w: LstmWeights| -> Result<FoldedLstm> {
            let (w_ih, w_hh) = (w.w_ih.contiguous()?, w.w_hh.contiguous()?);
            let (b_ih, b_hh) = (w.b_ih.contiguous()?, w.b_hh.contiguous()?);
            let (w_ih, w_hh) = (F32Data::of(&w_ih)?, F32Data::of(&w_hh)?);
            let (b_ih, b_hh) = (F32Data::of(&b_ih)?, F32Data::of(&b_hh)?);
            let slices = LstmSlices {
                w_ih: w_ih.slice(),
                w_hh: w_hh.slice(),
                b_ih: b_ih.slice(),
                b_hh: b_hh.slice(),
                hidden: cfg.hidden_dim,
            };
            let folded = FoldedLstm::new(embedding.slice(), cfg.embed_dim, slices, self.threads);
            Ok(folded)
        };
        let forward = fold(self.lstm_weights()?)?;
        let reverse = self.reverse_lstm_weights()?.map(fold).transpose()?;
        packed.folded = Some(Arc::new(FoldedPair { forward, reverse }));
        Ok(packed)
    }

    /// Hidden states `[B, T, H or 2H]` from the folded weights (inference only).
    fn folded_states(&self, batch: &Batch, folded: &FoldedPair) -> Result<Tensor> {
        let (b, t) = batch.tokens.dims2()?;
        let h = self.config.hidden_dim;
        let tokens = batch.tokens.flatten_all()?.to_vec1::<u32>()?;
        let lengths = &batch.host_lengths;
        let forward = folded.forward.forward(&tokens, lengths, t, self.threads);
        let Some(reverse) = &folded.reverse else {
            return Tensor::from_vec(forward, (b, t, h), &Device::Cpu);
        };
        // Read each text backwards within its length; the permutation is its own inverse.
        let idx = reversal_index(lengths, t);
        let reversed: Vec<u32> = idx.iter().map(|&i| tokens[i as usize]).collect();
        let backward = reverse.forward(&reversed, lengths, t, self.threads);
        let mut both = vec![0.0f32; b * t * 2 * h];
        for (pos, row) in both.chunks_exact_mut(2 * h).enumerate() {
            let src = idx[pos] as usize;
            row[..h].copy_from_slice(&forward[pos * h..(pos + 1) * h]);
            row[h..].copy_from_slice(&backward[src * h..(src + 1) * h]);
        }
        Tensor::from_vec(both, (b, t, 2 * h), &Device::Cpu)
    }

    /// Class probabilities of `seqs` (encoded texts) as one inference batch, in
    /// input order; `packed` comes from [`SentimentModel::pack`].
    pub fn probabilities(&self, seqs: &[&[u32]], packed: &PackedWeights) -> Result<Vec<Vec<f32>>> {
        let batch = Batch::new(seqs, None, &Device::Cpu)?;
        let logits = self.forward(&batch, None, Some(packed))?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
        let mut out = vec![Vec::new(); seqs.len()];
        for (row, p) in probs.into_iter().enumerate() {
            out[batch.order[row]] = p;
        }
        Ok(out)
    }

    /// Logits `[B, C]` in batch row order. With `dropout_rng` the forward pass
    /// trains (dropout on, activations kept for backward); without, it infers.
    /// `packed` may carry the LSTM weights pre-packed (inference caches them).
    pub fn forward(
        &self,
        batch: &Batch,
        dropout_rng: Option<&mut StdRng>,
        packed: Option<&PackedWeights>,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, t) = batch.tokens.dims2()?;
        if dropout_rng.is_none() {
            if let Some(folded) = packed.and_then(|p| p.folded.as_deref()) {
                let hs = self.folded_states(batch, folded)?;
                let pooled = pool(&hs, batch, cfg.pooling, cfg.bidirectional)?;
                return self.head(&pooled);
            }
        }
        let embedding = self.param(names::EMBEDDING)?;
        let x = embedding
            .index_select(&batch.tokens.flatten_all()?, 0)?
            .reshape((b, t, cfg.embed_dim))?;
        let train = dropout_rng.is_some();
        let mut dropout_rng = dropout_rng;
        let x = match dropout_rng.as_deref_mut() {
            Some(rng) if cfg.embed_dropout > 0.0 => {
                let mask = dropout_mask(rng, b * cfg.embed_dim, cfg.embed_dropout);
                x.broadcast_mul(&Tensor::from_vec(
                    mask,
                    (b, 1, cfg.embed_dim),
                    &Device::Cpu,
                )?)?
            }
            _ => x,
        };
        let packed = match packed {
            Some(p) => p.clone(),
            None => self.pack()?,
        };
        let (e, h) = (cfg.embed_dim, cfg.hidden_dim);
        let mut hs = fused_lstm(
            &x,
            &packed.forward,
            &batch.lengths,
            e,
            h,
            train,
            self.threads,
        )?;
        if let Some(reverse) = &packed.reverse {
            // Reverse each text within its length (padding stays in place), run
            // the second LSTM, and put its states back in reading order; the
            // permutation is its own inverse.
            let idx =
                Tensor::from_vec(reversal_index(&batch.host_lengths, t), b * t, &Device::Cpu)?;
            let x_rev = x
                .reshape((b * t, e))?
                .index_select(&idx, 0)?
                .reshape((b, t, e))?;
            let hs_rev = fused_lstm(&x_rev, reverse, &batch.lengths, e, h, train, self.threads)?;
            let hs_rev = hs_rev
                .reshape((b * t, h))?
                .index_select(&idx, 0)?
                .reshape((b, t, h))?;
            hs = Tensor::cat(&[hs, hs_rev], 2)?;
        }
        let pooled = pool(&hs, batch, cfg.pooling, cfg.bidirectional)?;
        let pooled = match dropout_rng {
            Some(rng) if cfg.dropout > 0.0 => {
                let mask = dropout_mask(rng, b * cfg.feature_dim(), cfg.dropout);
                (pooled * Tensor::from_vec(mask, (b, cfg.feature_dim()), &Device::Cpu)?)?
            }
            _ => pooled,
        };
        self.head(&pooled)
    }

    /// The output layer over pooled features.
    fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        let fc_w = self.param(names::FC_W)?;
        let fc_b = self.param(names::FC_B)?;
        pooled.matmul(&fc_w.t()?)?.broadcast_add(&fc_b)
    }
}

/// Row-major indices into `[B * T]` that reverse each row's first `len` steps.
// Indices into one batch's `[B * T]` tokens, in candle's u32 index dtype; a
// batch never holds 2^32 tokens.
#[allow(clippy::cast_possible_truncation)]
fn reversal_index(lengths: &[usize], steps: usize) -> Vec<u32> {
    let mut idx = Vec::with_capacity(lengths.len() * steps);
    for (row, &len) in lengths.iter().enumerate() {
        let base = (row * steps) as u32;
        idx.extend((0..steps).map(|t| {
            base + if t < len {
                (len - 1 - t) as u32
            } else {
                t as u32
            }
        }));
    }
    idx
}

/// LSTM weights packed for the fused op, per direction.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    /// The forward direction's four tensors, flattened into one for the fused op.
    pub forward: Tensor,
    /// The backward direction, when bidirectional.
    pub reverse: Option<Tensor>,
    /// Both directions with the embedding folded into the input projection,
    /// for inference over token ids (see [`SentimentModel::pack_for_inference`]).
    pub folded: Option<Arc<FoldedPair>>,
}

/// The folded forward (and reverse) LSTM of a model.
#[derive(Debug)]
pub struct FoldedPair {
    /// The forward direction, with the embedding folded into its input projection.
    pub forward: FoldedLstm,
    /// The backward direction, when bidirectional.
    pub reverse: Option<FoldedLstm>,
}

/// Inverted-dropout mask from our seeded generator (candle's CPU generator
/// cannot be seeded, and training must be reproducible).
fn dropout_mask(rng: &mut StdRng, n: usize, rate: f32) -> Vec<f32> {
    let keep = 1.0 - rate;
    (0..n)
        .map(|_| {
            if rng.random::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect()
}

fn pool(hs: &Tensor, batch: &Batch, pooling: Pooling, bidirectional: bool) -> Result<Tensor> {
    let (b, t, h) = hs.dims3()?;
    let device = hs.device();
    match pooling {
        Pooling::Last => {
            // Forward channels: the state at the last real token. Backward
            // channels (bidirectional): the state at t = 0, the one that has read
            // the whole text, as PyTorch's h_n holds it.
            let forward = if bidirectional { h / 2 } else { h };
            // Time steps of one batch, in candle's u32 index dtype.
            #[allow(clippy::cast_possible_truncation)]
            let idx: Vec<u32> = batch
                .host_lengths
                .iter()
                .flat_map(|&n| (0..h).map(move |c| if c < forward { (n - 1) as u32 } else { 0 }))
                .collect();
            let idx = Tensor::from_vec(idx, (b, 1, h), device)?;
            hs.gather(&idx, 1)?.squeeze(1)
        }
        Pooling::Mean => {
            let inv: Vec<f32> = batch.host_lengths.iter().map(|&n| 1.0 / n as f32).collect();
            hs.sum(1)?
                .broadcast_mul(&Tensor::from_vec(inv, (b, 1), device)?)
        }
        Pooling::Max => {
            // Outputs past a sequence's end are zero; push them far below any
            // real state (which lies in (-1, 1)) so they never win the max.
            let mut mask = vec![0f32; b * t];
            for (row, &n) in batch.host_lengths.iter().enumerate() {
                mask[row * t + n..row * t + t].fill(-1e4);
            }
            let mask = Tensor::from_vec(mask, (b, t, 1), device)?;
            hs.broadcast_add(&mask)?.max(D::Minus2)
        }
    }
}
