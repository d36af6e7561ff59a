//! The wire format: safetensors bodies (little-endian tensors behind a small
//! JSON header) carrying weights and updates, never text or token ids.
//!
//! Dense parameters travel under their own name as `F32` or `F16`. A sparse
//! parameter (the embedding, of which one worker's data touches a small part)
//! travels as the touched rows: `<name>` holds `[k, row_len]` values and
//! `<name>#rows` the `k` row indices as `U32`. The string metadata holds a
//! `kind` tag and a JSON `header` describing the message.

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{FlError, Result};
use crate::params::{Param, ParamSet};

/// Suffix of the tensor holding a sparse parameter's row indices.
const ROWS_SUFFIX: &str = "#rows";

/// Element type of transmitted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WireDtype {
    /// 4-byte IEEE floats: exact.
    #[default]
    F32,
    /// 2-byte IEEE half floats: half the bytes, ~3 significant digits.
    F16,
}

impl std::str::FromStr for WireDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "unknown wire dtype {other:?} (expected f32 or f16)"
            )),
        }
    }
}

/// A parameter's values as sent: all of them, or some rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Every value, row-major.
    Dense(Vec<f32>),
    /// Only these rows (ascending, unique); the others are zero.
    Rows {
        /// Indices of the rows sent, along the parameter's first dimension.
        rows: Vec<u32>,
        /// `rows.len() * row_len` values.
        values: Vec<f32>,
    },
}

/// One parameter of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct WireParam {
    /// The full parameter's shape.
    pub shape: Vec<usize>,
    /// Its values, all of them or only the non-zero rows.
    pub values: Values,
}

impl WireParam {
    fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>().max(1)
    }

    /// Every value in order, rows not sent being zero.
    pub fn for_each_value(&self, mut f: impl FnMut(usize, f32)) {
        match &self.values {
            Values::Dense(v) => v.iter().enumerate().for_each(|(i, &x)| f(i, x)),
            Values::Rows { rows, values } => {
                let w = self.row_len();
                for (r, chunk) in rows.iter().zip(values.chunks_exact(w)) {
                    let base = *r as usize * w;
                    chunk.iter().enumerate().for_each(|(j, &x)| f(base + j, x));
                }
            }
        }
    }
}

/// Named parameters as they cross the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireSet(pub BTreeMap<String, WireParam>);

impl WireSet {
    /// Wraps `params`, sending the parameters named in `sparse` as their
    /// non-zero rows only.
    pub fn from_params(params: ParamSet, sparse: &[&str]) -> Self {
        Self(
            params
                .0
                .into_iter()
                .map(|(name, p)| {
                    let values = if sparse.contains(&name.as_str()) {
                        nonzero_rows(&p)
                    } else {
                        Values::Dense(p.values)
                    };
                    (
                        name,
                        WireParam {
                            shape: p.shape,
                            values,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Expands to dense parameters.
    pub fn to_params(&self) -> ParamSet {
        ParamSet(
            self.0
                .iter()
                .map(|(name, p)| {
                    let mut values = vec![0.0; p.shape.iter().product()];
                    p.for_each_value(|i, x| values[i] = x);
                    (
                        name.clone(),
                        Param {
                            shape: p.shape.clone(),
                            values,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Euclidean norm over all values.
    pub fn norm(&self) -> f64 {
        let mut sum = 0f64;
        for p in self.0.values() {
            p.for_each_value(|_, x| sum += f64::from(x) * f64::from(x));
        }
        sum.sqrt()
    }

    /// The first parameter holding NaN or infinity.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.0.iter().find_map(|(name, p)| {
            let mut bad = false;
            p.for_each_value(|_, x| bad |= !x.is_finite());
            bad.then_some(name.as_str())
        })
    }

    /// Checks names and shapes against `expected` (name, shape) pairs.
    pub fn check_shapes(&self, expected: &[(&str, Vec<usize>)]) -> Result<()> {
        if expected.len() != self.0.len() {
            return Err(FlError::Invalid(format!(
                "expected {} parameters, got {}",
                expected.len(),
                self.0.len()
            )));
        }
        for (name, shape) in expected {
            let p = self
                .0
                .get(*name)
                .ok_or_else(|| FlError::Invalid(format!("missing parameter {name}")))?;
            if &p.shape != shape {
                return Err(FlError::Invalid(format!(
                    "parameter {name} has shape {:?}, expected {shape:?}",
                    p.shape
                )));
            }
        }
        Ok(())
    }
}

fn nonzero_rows(p: &Param) -> Values {
    let w = p.row_len();
    let mut rows = Vec::new();
    let mut values = Vec::new();
    for (r, chunk) in p.values.chunks_exact(w).enumerate() {
        if chunk.iter().any(|&x| x != 0.0) {
            // Row indices travel as u32; a tensor taller than that goes dense.
            let Ok(r) = u32::try_from(r) else {
                return Values::Dense(p.values.clone());
            };
            rows.push(r);
            values.extend_from_slice(chunk);
        }
    }
    Values::Rows { rows, values }
}

fn float_bytes(values: &[f32], dtype: WireDtype) -> Vec<u8> {
    match dtype {
        WireDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        WireDtype::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

/// Serialises a message: `kind` tag, JSON `header` and the parameters.
pub fn encode<H: Serialize>(
    kind: &str,
    header: &H,
    set: &WireSet,
    dtype: WireDtype,
) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let st_dtype = match dtype {
        WireDtype::F32 => Dtype::F32,
        WireDtype::F16 => Dtype::F16,
    };
    for (name, p) in &set.0 {
        match &p.values {
            Values::Dense(v) => buffers.push((
                name.clone(),
                st_dtype,
                p.shape.clone(),
                float_bytes(v, dtype),
            )),
            Values::Rows { rows, values } => {
                let rows_bytes = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
                buffers.push((
                    format!("{name}{ROWS_SUFFIX}"),
                    Dtype::U32,
                    vec![rows.len()],
                    rows_bytes,
                ));
                buffers.push((
                    name.clone(),
                    st_dtype,
                    vec![rows.len(), p.row_len()],
                    float_bytes(values, dtype),
                ));
            }
        }
    }
    let mut shapes = BTreeMap::new();
    for (name, p) in &set.0 {
        shapes.insert(name.clone(), p.shape.clone());
    }
    let metadata = HashMap::from([
        ("kind".to_string(), kind.to_string()),
        ("header".to_string(), json(header)?),
        ("shapes".to_string(), json(&shapes)?),
    ]);
    let views = buffers
        .iter()
        .map(|(name, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| FlError::Invalid(format!("cannot encode {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| FlError::Invalid(format!("cannot encode message: {e}")))
}

/// The tensor name of a masked input.
const MASKED_TENSOR: &str = "masked";

/// Serialises a masked input (secure aggregation): `kind` tag, JSON `header`
/// and the ring elements as one `U32` tensor.
pub fn encode_masked<H: Serialize>(kind: &str, header: &H, masked: &[u32]) -> Result<Vec<u8>> {
    let bytes: Vec<u8> = masked.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::U32, vec![masked.len()], &bytes)
        .map_err(|e| FlError::Invalid(format!("cannot encode the masked input: {e}")))?;
    let metadata = HashMap::from([
        ("kind".to_string(), kind.to_string()),
        ("header".to_string(), json(header)?),
    ]);
    safetensors::serialize([(MASKED_TENSOR, view)], Some(metadata))
        .map_err(|e| FlError::Invalid(format!("cannot encode message: {e}")))
}

/// Parses a masked input of `kind`: its header and ring elements.
pub fn decode_masked<H: DeserializeOwned>(bytes: &[u8], kind: &str) -> Result<(H, Vec<u32>)> {
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| FlError::Invalid(format!("body is not a safetensors message: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| FlError::Invalid(format!("body is not a safetensors message: {e}")))?;
    let strings = meta.metadata().clone().unwrap_or_default();
    if strings.get("kind").map(String::as_str) != Some(kind) {
        return Err(FlError::Invalid(format!("expected a {kind:?} message")));
    }
    let header = strings
        .get("header")
        .ok_or_else(|| FlError::Invalid("message has no header".into()))?;
    let header: H = serde_json::from_str(header)
        .map_err(|e| FlError::Invalid(format!("invalid message header: {e}")))?;
    let view = tensors
        .tensor(MASKED_TENSOR)
        .map_err(|_| FlError::Invalid("message holds no masked input".into()))?;
    if view.dtype() != Dtype::U32 || tensors.len() != 1 {
        return Err(FlError::Invalid(
            "a masked input is exactly one U32 tensor".into(),
        ));
    }
    let values = view
        .data()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((header, values))
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| FlError::Invalid(e.to_string()))
}

fn floats(view: &TensorView<'_>, name: &str) -> Result<Vec<f32>> {
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        other => Err(FlError::Invalid(format!(
            "tensor {name} is {other:?}; expected F32 or F16"
        ))),
    }
}

/// Parses a message of `kind`: its header and parameters. Structural checks
/// only (row indices in range and ascending, value counts); shapes against a
/// model are the caller's business.
pub fn decode<H: DeserializeOwned>(bytes: &[u8], kind: &str) -> Result<(H, WireSet)> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| FlError::Invalid(format!("body is not a safetensors message: {e}")))?;
    let strings = meta.metadata().clone().unwrap_or_default();
    let got = strings.get("kind").map(String::as_str).unwrap_or("");
    if got != kind {
        return Err(FlError::Invalid(format!(
            "expected a {kind:?} message, got {got:?}"
        )));
    }
    let parse = |key: &str| {
        strings
            .get(key)
            .ok_or_else(|| FlError::Invalid(format!("message lacks {key}")))
    };
    let header: H = serde_json::from_str(parse("header")?)
        .map_err(|e| FlError::Invalid(format!("invalid message header: {e}")))?;
    let shapes: BTreeMap<String, Vec<usize>> = serde_json::from_str(parse("shapes")?)
        .map_err(|e| FlError::Invalid(format!("invalid shapes: {e}")))?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| FlError::Invalid(format!("body is not a safetensors message: {e}")))?;
    let mut set = BTreeMap::new();
    for (name, shape) in shapes {
        let view = st
            .tensor(&name)
            .map_err(|_| FlError::Invalid(format!("message lacks tensor {name}")))?;
        let values = floats(&view, &name)?;
        let total: usize = shape.iter().product();
        let row_len = shape.iter().skip(1).product::<usize>().max(1);
        let param_values = match st.tensor(&format!("{name}{ROWS_SUFFIX}")) {
            Err(_) => {
                if values.len() != total {
                    return Err(FlError::Invalid(format!(
                        "tensor {name} has {} values, shape {shape:?} needs {total}",
                        values.len()
                    )));
                }
                Values::Dense(values)
            }
            Ok(rows_view) => {
                if rows_view.dtype() != Dtype::U32 {
                    return Err(FlError::Invalid(format!(
                        "row indices of {name} are not U32"
                    )));
                }
                let rows: Vec<u32> = rows_view
                    .data()
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let first_dim = shape.first().copied().unwrap_or(0);
                if rows.windows(2).any(|w| w[0] >= w[1])
                    || rows.last().is_some_and(|&r| r as usize >= first_dim)
                {
                    return Err(FlError::Invalid(format!(
                        "row indices of {name} must be ascending and below {first_dim}"
                    )));
                }
                if values.len() != rows.len() * row_len {
                    return Err(FlError::Invalid(format!(
                        "tensor {name} has {} values for {} rows of {row_len}",
                        values.len(),
                        rows.len()
                    )));
                }
                Values::Rows { rows, values }
            }
        };
        set.insert(
            name,
            WireParam {
                shape,
                values: param_values,
            },
        );
    }
    Ok((header, WireSet(set)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ParamSet {
        let mut emb = vec![0.0f32; 5 * 3];
        emb[3..6].copy_from_slice(&[1.0, -2.0, 0.5]);
        emb[12..15].copy_from_slice(&[0.25, 0.0, 3.0]);
        ParamSet(BTreeMap::from([
            (
                "embedding.weight".to_string(),
                Param {
                    shape: vec![5, 3],
                    values: emb,
                },
            ),
            (
                "fc.bias".to_string(),
                Param {
                    shape: vec![2],
                    values: vec![0.1, -0.1],
                },
            ),
        ]))
    }

    #[test]
    fn sparse_rows_round_trip_exactly() {
        let params = sample();
        let set = WireSet::from_params(params.clone(), &["embedding.weight"]);
        match &set.0["embedding.weight"].values {
            Values::Rows { rows, .. } => assert_eq!(rows, &[1, 4]),
            other => panic!("expected rows, got {other:?}"),
        }
        let bytes = encode("update", &7u32, &set, WireDtype::F32).unwrap();
        let (header, back): (u32, WireSet) = decode(&bytes, "update").unwrap();
        assert_eq!(header, 7);
        assert_eq!(back.to_params(), params);
    }

    #[test]
    fn f16_halves_the_values_and_stays_close() {
        let set = WireSet::from_params(sample(), &[]);
        let f32_len = encode("w", &0u8, &set, WireDtype::F32).unwrap().len();
        let bytes = encode("w", &0u8, &set, WireDtype::F16).unwrap();
        assert!(bytes.len() < f32_len);
        let (_, back): (u8, WireSet) = decode(&bytes, "w").unwrap();
        assert!(back.to_params().max_abs_diff(&sample()) < 2e-3);
    }

    #[test]
    fn rejects_foreign_kinds_bad_rows_and_garbage() {
        let set = WireSet::from_params(sample(), &["embedding.weight"]);
        let bytes = encode("update", &0u8, &set, WireDtype::F32).unwrap();
        assert!(decode::<u8>(&bytes, "weights").is_err());
        assert!(decode::<u8>(b"not a message", "update").is_err());
        let mut bad = set.clone();
        if let Some(p) = bad.0.get_mut("embedding.weight") {
            p.values = Values::Rows {
                rows: vec![9],
                values: vec![1.0; 3],
            };
        }
        let bytes = encode("update", &0u8, &bad, WireDtype::F32).unwrap();
        let err = decode::<u8>(&bytes, "update").unwrap_err().to_string();
        assert!(err.contains("below 5"), "{err}");
    }

    #[test]
    fn norm_and_non_finite_detection() {
        let mut set = WireSet::from_params(sample(), &["embedding.weight"]);
        let expected = sample().norm();
        assert!((set.norm() - expected).abs() < 1e-9);
        assert_eq!(set.first_non_finite(), None);
        if let Some(p) = set.0.get_mut("fc.bias") {
            p.values = Values::Dense(vec![f32::NAN, 0.0]);
        }
        assert_eq!(set.first_non_finite(), Some("fc.bias"));
    }
}
