//! A PyTorch `state_dict` saved as safetensors loads under the same names and
//! gives PyTorch's logits (fixture made by `bench/pytorch/make_fixture.py`).

use std::collections::HashMap;

use bloginfer_model::config::{ModelConfig, Pooling};
use bloginfer_model::{Batch, SentimentModel};
use candle_core::{Device, Tensor};

fn fixture_named(name: &str) -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bytes = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let expected = serde_json::from_str(&json).unwrap();
    (tensors, expected)
}

fn fixture() -> (HashMap<String, Tensor>, serde_json::Value) {
    fixture_named("pytorch_tiny")
}

#[test]
fn pytorch_weights_give_pytorch_logits_for_every_pooling() {
    check_fixture("pytorch_tiny", false);
}

#[test]
fn bidirectional_pytorch_weights_give_pytorch_logits_for_every_pooling() {
    check_fixture("pytorch_tiny_bi", true);
}

fn check_fixture(name: &str, bidirectional: bool) {
    let (tensors, expected) = fixture_named(name);
    for (pooling_name, pooling) in [
        ("last", Pooling::Last),
        ("mean", Pooling::Mean),
        ("max", Pooling::Max),
    ] {
        let config = ModelConfig {
            vocab_size: 40,
            embed_dim: 8,
            hidden_dim: 6,
            num_classes: 2,
            pooling,
            bidirectional,
            dropout: 0.0,
            embed_dropout: 0.0,
            granularity: Default::default(),
            max_len: 64,
        };
        let model = SentimentModel::from_tensors(config, tensors.clone()).unwrap();
        for (i, seq) in expected["sequences"].as_array().unwrap().iter().enumerate() {
            let ids: Vec<u32> = seq
                .as_array()
                .unwrap()
                .iter()
                .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
                .collect();
            let batch = Batch::new(&[ids.as_slice()], None, &Device::Cpu).unwrap();
            let logits = model
                .forward(&batch, None, None)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let want: Vec<f64> = expected["logits"][pooling_name][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (got, want) in logits[0].iter().zip(&want) {
                assert!(
                    (f64::from(*got) - want).abs() < 1e-5,
                    "{name} {pooling_name} seq {i}: {:?} vs {want:?}",
                    logits[0]
                );
            }
        }
    }
}

#[test]
fn missing_or_misshapen_parameters_are_errors() {
    let (mut tensors, _) = fixture();
    let config = ModelConfig {
        vocab_size: 40,
        embed_dim: 8,
        hidden_dim: 6,
        ..ModelConfig::default()
    };
    let wrong = ModelConfig {
        hidden_dim: 7,
        ..config.clone()
    };
    assert!(SentimentModel::from_tensors(wrong, tensors.clone()).is_err());
    tensors.remove("fc.bias");
    let err = SentimentModel::from_tensors(config, tensors).unwrap_err();
    assert!(err.to_string().contains("fc.bias"), "{err}");
}
