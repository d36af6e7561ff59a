//! Our fused LSTM against candle's stock LSTM: same weights, same outputs and
//! gradients (compared per tensor as max|a - b| / max|reference|).

use bloginfer_model::lstm::{fused_lstm, LstmWeights};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::{LSTMConfig, RNN};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOL: f32 = 1e-5;

fn rel_err(a: &Tensor, reference: &Tensor) -> f32 {
    let diff = (a - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    diff / scale.max(1e-12)
}

struct Setup {
    x: Var,
    w: [Var; 4],
    probe: Tensor,
}

fn setup(b: usize, t: usize, e: usize, h: usize, seed: u64) -> Setup {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut uniform = |shape: &[usize], bound: f32| {
        let n = shape.iter().product::<usize>();
        let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    };
    let mut var = |shape: &[usize]| Var::from_tensor(&uniform(shape, 0.8)).unwrap();
    let x = var(&[b, t, e]);
    let w = [
        var(&[4 * h, e]),
        var(&[4 * h, h]),
        var(&[4 * h]),
        var(&[4 * h]),
    ];
    Setup {
        x,
        w,
        probe: uniform(&[b, t, h], 1.0),
    }
}

fn weights(s: &Setup) -> LstmWeights {
    LstmWeights {
        w_ih: s.w[0].as_tensor().clone(),
        w_hh: s.w[1].as_tensor().clone(),
        b_ih: s.w[2].as_tensor().clone(),
        b_hh: s.w[3].as_tensor().clone(),
    }
}

/// Stock candle LSTM over `x[b, ..len]` for each row, outputs zero-padded to T.
fn stock_outputs(s: &Setup, lengths: &[u32], h: usize) -> Tensor {
    let dev = Device::Cpu;
    let mut map = std::collections::HashMap::new();
    for (name, var) in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        .iter()
        .zip(&s.w)
    {
        map.insert(name.to_string(), var.as_tensor().clone());
    }
    let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
    let (_, t, e) = s.x.dims3().unwrap();
    let lstm = candle_nn::rnn::lstm(e, h, LSTMConfig::default(), vb).unwrap();
    let rows: Vec<Tensor> = lengths
        .iter()
        .enumerate()
        .map(|(row, &len)| {
            let len = len as usize;
            let xs =
                s.x.as_tensor()
                    .narrow(0, row, 1)
                    .unwrap()
                    .narrow(1, 0, len)
                    .unwrap();
            let states = lstm.seq(&xs).unwrap();
            let hs: Vec<Tensor> = states.iter().map(|st| st.h().clone()).collect();
            let mut out = Tensor::stack(&hs, 1).unwrap();
            if len < t {
                out = Tensor::cat(
                    &[
                        out,
                        Tensor::zeros((1, t - len, h), DType::F32, &dev).unwrap(),
                    ],
                    1,
                )
                .unwrap();
            }
            out
        })
        .collect();
    Tensor::cat(&rows, 0).unwrap()
}

fn compare(b: usize, t: usize, e: usize, h: usize, lengths: Vec<u32>) {
    let s = setup(b, t, e, h, 7);
    let lens = Tensor::new(lengths.as_slice(), &Device::Cpu).unwrap();

    let ours = fused_lstm(
        s.x.as_tensor(),
        &weights(&s).pack().unwrap(),
        &lens,
        e,
        h,
        true,
        1,
    )
    .unwrap();
    let reference = stock_outputs(&s, &lengths, h);
    let out_err = rel_err(&ours, &reference);
    assert!(out_err <= TOL, "outputs differ: {out_err}");

    let ours_grads = (ours * &s.probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let ref_grads = (reference * &s.probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let names = ["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"];
    let vars = std::iter::once(&s.x).chain(s.w.iter());
    for (name, var) in names.iter().zip(vars) {
        let g = ours_grads.get(var).expect("our gradient");
        let r = ref_grads.get(var).expect("reference gradient");
        let err = rel_err(g, r);
        assert!(err <= TOL, "gradient of {name} differs: {err}");
    }
}

#[test]
fn full_length_sequences_match_stock_lstm() {
    compare(4, 9, 6, 5, vec![9, 9, 9, 9]);
}

#[test]
fn sorted_variable_lengths_match_stock_lstm_per_sequence() {
    compare(5, 12, 8, 16, vec![12, 10, 7, 7, 1]);
}

#[test]
fn unsorted_variable_lengths_match_stock_lstm_per_sequence() {
    compare(4, 10, 8, 16, vec![3, 10, 1, 6]);
}

#[test]
fn realistic_sizes_match_stock_lstm() {
    compare(8, 24, 32, 64, vec![24, 22, 20, 16, 16, 9, 5, 2]);
}

#[test]
fn wrong_weight_count_is_an_error_not_a_panic() {
    let s = setup(2, 3, 4, 5, 1);
    let lens = Tensor::new(&[3u32, 3], &Device::Cpu).unwrap();
    let short = Tensor::zeros(10, DType::F32, &Device::Cpu).unwrap();
    assert!(fused_lstm(s.x.as_tensor(), &short, &lens, 4, 5, false, 1).is_err());
    let bad_lens = Tensor::new(&[3u32], &Device::Cpu).unwrap();
    let packed = weights(&s).pack().unwrap();
    assert!(fused_lstm(s.x.as_tensor(), &packed, &bad_lens, 4, 5, false, 1).is_err());
}

#[test]
fn inference_mode_gives_the_training_mode_outputs() {
    for (b, t, e, h, lengths) in [
        (5usize, 12usize, 8usize, 16usize, vec![12u32, 10, 7, 7, 1]),
        (9, 7, 6, 21, vec![7, 7, 6, 5, 5, 4, 3, 2, 1]),
        (3, 6, 4, 5, vec![2, 6, 4]),
    ] {
        let s = setup(b, t, e, h, 11);
        let lens = Tensor::new(lengths.as_slice(), &Device::Cpu).unwrap();
        let packed = weights(&s).pack().unwrap();
        let train = fused_lstm(s.x.as_tensor(), &packed, &lens, e, h, true, 1).unwrap();
        let infer = fused_lstm(s.x.as_tensor(), &packed, &lens, e, h, false, 1).unwrap();
        let err = rel_err(&infer, &train);
        assert!(err <= 1e-6, "B={b} H={h}: inference differs by {err}");
    }
}
