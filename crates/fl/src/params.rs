//! Model parameters as plain named `f32` vectors: what aggregation, server
//! optimisers and the wire work on (no autograd, no tensors).

use std::collections::{BTreeMap, HashMap};

use bloginfer_model::{ModelConfig, SentimentModel};
use candle_core::{Device, Tensor};

use crate::error::{FlError, Result};

/// One parameter: its shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f32>,
}

impl Param {
    /// Length of one row (product of all dimensions but the first).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>().max(1)
    }
}

/// Every parameter of a model, by PyTorch name, in name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamSet(pub BTreeMap<String, Param>);

impl ParamSet {
    /// Zeros shaped like `config`'s parameters.
    pub fn zeros(config: &ModelConfig) -> Self {
        Self(
            config
                .parameter_shapes()
                .into_iter()
                .map(|(name, shape)| {
                    let n = shape.iter().product();
                    (
                        name.to_string(),
                        Param {
                            shape,
                            values: vec![0.0; n],
                        },
                    )
                })
                .collect(),
        )
    }

    /// A copy of `model`'s current weights.
    pub fn from_model(model: &SentimentModel) -> Result<Self> {
        Self::from_tensors(&model.snapshot()?)
    }

    /// Copies named tensors (any float dtype, read as f32) into host parameters.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let mut out = BTreeMap::new();
        for (name, t) in tensors {
            let values = t
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1()?;
            out.insert(
                name.clone(),
                Param {
                    shape: t.dims().to_vec(),
                    values,
                },
            );
        }
        Ok(Self(out))
    }

    /// Named tensors for a model.
    pub fn to_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.0
            .iter()
            .map(|(name, p)| {
                Ok((
                    name.clone(),
                    Tensor::from_slice(&p.values, p.shape.as_slice(), &Device::Cpu)?,
                ))
            })
            .collect()
    }

    /// Checks that names and shapes are exactly `config`'s.
    pub fn check_shapes(&self, config: &ModelConfig) -> Result<()> {
        let expected = config.parameter_shapes();
        if expected.len() != self.0.len() {
            return Err(FlError::Invalid(format!(
                "expected {} parameters, got {}",
                expected.len(),
                self.0.len()
            )));
        }
        for (name, shape) in expected {
            match self.0.get(name) {
                None => return Err(FlError::Invalid(format!("missing parameter {name}"))),
                Some(p)
                    if p.shape != shape || p.values.len() != shape.iter().product::<usize>() =>
                {
                    return Err(FlError::Invalid(format!(
                        "parameter {name} has shape {:?}, expected {shape:?}",
                        p.shape
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `self - other`, parameter by parameter (shapes must match).
    pub fn minus(&self, other: &ParamSet) -> Result<ParamSet> {
        let mut out = BTreeMap::new();
        for (name, p) in &self.0 {
            let q = other
                .0
                .get(name)
                .filter(|q| q.shape == p.shape)
                .ok_or_else(|| FlError::Invalid(format!("parameter {name} does not match")))?;
            let values = p.values.iter().zip(&q.values).map(|(a, b)| a - b).collect();
            out.insert(
                name.clone(),
                Param {
                    shape: p.shape.clone(),
                    values,
                },
            );
        }
        Ok(ParamSet(out))
    }

    /// Euclidean norm over all values (accumulated in f64).
    pub fn norm(&self) -> f64 {
        self.0
            .values()
            .flat_map(|p| p.values.iter())
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    }

    /// The largest absolute difference to `other` over all values.
    pub fn max_abs_diff(&self, other: &ParamSet) -> f32 {
        self.0
            .iter()
            .filter_map(|(name, p)| other.0.get(name).map(|q| (p, q)))
            .flat_map(|(p, q)| p.values.iter().zip(&q.values))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// Every value in name order, each parameter row-major: what secure
    /// aggregation masks and sums.
    pub fn flatten(&self) -> Vec<f32> {
        self.0
            .values()
            .flat_map(|p| p.values.iter().copied())
            .collect()
    }

    /// `values` (as [`ParamSet::flatten`] lays them out) shaped like `self`.
    pub fn unflatten(&self, values: &[f32]) -> Result<ParamSet> {
        if values.len() != self.len() {
            return Err(FlError::Invalid(format!(
                "{} values where the model has {}",
                values.len(),
                self.len()
            )));
        }
        let mut rest = values;
        let mut out = BTreeMap::new();
        for (name, p) in &self.0 {
            let (head, tail) = rest.split_at(p.values.len());
            out.insert(
                name.clone(),
                Param {
                    shape: p.shape.clone(),
                    values: head.to_vec(),
                },
            );
            rest = tail;
        }
        Ok(ParamSet(out))
    }

    /// Values across all parameters (not the number of parameters).
    pub fn len(&self) -> usize {
        self.0.values().map(|p| p.values.len()).sum()
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
