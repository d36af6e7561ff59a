//! Masks: pseudo-random `u32` vectors expanded from 32-byte seeds, added by
//! participants to their encoded inputs and removed from the sum by the
//! server.

use std::collections::BTreeSet;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::{check_index, pairwise_mask_seed, RoundContext, SecAggError};

/// Words expanded per PRG call: large enough to amortise the call, small
/// enough for a stack buffer.
const CHUNK_WORDS: usize = 1024;

#[derive(Clone, Copy)]
enum Sign {
    Add,
    Sub,
}

/// Adds (or subtracts) the mask of `seed` to `target`, wrapping, without
/// materialising the mask.
fn apply(target: &mut [u32], seed: &[u8; 32], sign: Sign) {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    let mut buf = [0u8; CHUNK_WORDS * 4];
    for chunk in target.chunks_mut(CHUNK_WORDS) {
        let bytes = &mut buf[..chunk.len() * 4];
        rng.fill_bytes(bytes);
        for (t, w) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
            let m = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            *t = match sign {
                Sign::Add => t.wrapping_add(m),
                Sign::Sub => t.wrapping_sub(m),
            };
        }
    }
}

/// The mask of `seed`: the first `len` words of the ChaCha20 keystream
/// (`rand_chacha::ChaCha20Rng::from_seed(seed)`, stream 0), read as
/// little-endian `u32` — the same words as `len` calls of `next_u32`.
pub fn expand_mask(seed: &[u8; 32], len: usize) -> Vec<u32> {
    let mut out = vec![0; len];
    apply(&mut out, seed, Sign::Add);
    out
}

/// Masks participant `me`'s encoded input in place:
/// `y = x + PRG(b_u) + Σ_{v > me} PRG(s_uv) − Σ_{v < me} PRG(s_uv)` (wrapping),
/// with `self_seed` = `b_u` and `pairwise` the seeds `s_uv` shared with every
/// other participant `v` (from [`crate::secagg::RoundKeys::mask_seed_with`]).
///
/// The pairwise masks cancel in the sum over all participants; the self
/// mask is removed by the server once a threshold of survivors reveal
/// shares of `b_u`. The input is left untouched on error.
pub fn mask_input(
    input: &mut [u32],
    me: u16,
    self_seed: &[u8; 32],
    pairwise: &[(u16, [u8; 32])],
) -> Result<(), SecAggError> {
    check_index(me)?;
    let mut seen = BTreeSet::new();
    for &(peer, _) in pairwise {
        check_index(peer)?;
        if peer == me {
            return Err(SecAggError::SelfPair(me));
        }
        if !seen.insert(peer) {
            return Err(SecAggError::DuplicateIndex(peer));
        }
    }
    apply(input, self_seed, Sign::Add);
    for (peer, seed) in pairwise {
        // The lower index adds, the higher subtracts: the pair cancels.
        apply(input, seed, if me < *peer { Sign::Add } else { Sign::Sub });
    }
    Ok(())
}

/// Unmasks, in place, the wrapping sum of the survivors' masked inputs:
/// subtracts every survivor's self mask, and removes each pairwise mask a
/// survivor added for a dropped participant (`(survivor, dropped, seed)`),
/// whose counterpart never arrived. What remains is the plain sum of the
/// survivors' encodings. Masks between two survivors cancelled already.
///
/// The sum is left untouched on error.
pub fn unmask_sum(
    sum: &mut [u32],
    self_seeds_of_survivors: &[[u8; 32]],
    dropped_pairwise: &[(u16, u16, [u8; 32])],
) -> Result<(), SecAggError> {
    let mut seen = BTreeSet::new();
    for &(survivor, dropped, _) in dropped_pairwise {
        check_index(survivor)?;
        check_index(dropped)?;
        if survivor == dropped {
            return Err(SecAggError::SelfPair(survivor));
        }
        if !seen.insert((survivor, dropped)) {
            return Err(SecAggError::DuplicateIndex(dropped));
        }
    }
    for seed in self_seeds_of_survivors {
        apply(sum, seed, Sign::Sub);
    }
    for (survivor, dropped, seed) in dropped_pairwise {
        // Undo what the survivor did in `mask_input`.
        let sign = if survivor < dropped {
            Sign::Sub
        } else {
            Sign::Add
        };
        apply(sum, seed, sign);
    }
    Ok(())
}

/// The server's side of a dropout: from dropped participant `dropped`'s
/// reconstructed masking secret and each survivor's masking public key,
/// the `(survivor, dropped, seed)` triples [`unmask_sum`] needs.
pub fn dropped_pairwise_seeds(
    dropped: u16,
    dropped_masking_secret: &[u8; 32],
    survivors_masking_public: &[(u16, [u8; 32])],
    context: &RoundContext,
) -> Result<Vec<(u16, u16, [u8; 32])>, SecAggError> {
    survivors_masking_public
        .iter()
        .map(|(survivor, public)| {
            let seed =
                pairwise_mask_seed(dropped_masking_secret, public, context, dropped, *survivor)?;
            Ok((*survivor, dropped, seed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_is_the_chacha20_word_stream() {
        let seed = [42u8; 32];
        let mut rng = ChaCha20Rng::from_seed(seed);
        let words: Vec<u32> = (0..2500).map(|_| rng.next_u32()).collect();
        assert_eq!(expand_mask(&seed, 2500), words);
        // A prefix of a longer mask is the shorter mask.
        assert_eq!(expand_mask(&seed, 1500), words[..1500]);
        assert_ne!(expand_mask(&[43u8; 32], 16), words[..16]);
    }

    #[test]
    fn pairwise_masks_cancel_and_bad_input_is_refused() {
        let x = vec![5u32, u32::MAX, 0, 77];
        let (s12, b1, b2) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let (mut y1, mut y2) = (x.clone(), x.clone());
        mask_input(&mut y1, 1, &b1, &[(2, s12)]).unwrap();
        mask_input(&mut y2, 2, &b2, &[(1, s12)]).unwrap();
        let mut sum: Vec<u32> = y1
            .iter()
            .zip(&y2)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        unmask_sum(&mut sum, &[b1, b2], &[]).unwrap();
        let want: Vec<u32> = x.iter().map(|v| v.wrapping_mul(2)).collect();
        assert_eq!(sum, want);

        let mut z = x.clone();
        assert_eq!(
            mask_input(&mut z, 1, &b1, &[(1, s12)]),
            Err(SecAggError::SelfPair(1))
        );
        assert_eq!(
            mask_input(&mut z, 1, &b1, &[(2, s12), (2, s12)]),
            Err(SecAggError::DuplicateIndex(2))
        );
        assert_eq!(z, x, "input untouched on error");
        assert_eq!(
            unmask_sum(&mut z, &[], &[(3, 3, s12)]),
            Err(SecAggError::SelfPair(3))
        );
    }

    #[test]
    fn masked_input_is_uncorrelated_with_plain_input() {
        let n = 100_000;
        // A strongly structured input: a ramp over the whole code range.
        let plain: Vec<u32> = (0..n).map(|i| (i * 41_943) % (1 << 22)).collect();
        let mut masked = plain.clone();
        mask_input(
            &mut masked,
            2,
            &[7u8; 32],
            &[(1, [8u8; 32]), (3, [9u8; 32])],
        )
        .unwrap();
        let equal = plain.iter().zip(&masked).filter(|(a, b)| a == b).count();
        // Chance level is n / 2^32 ≈ 0.00002.
        assert!(equal <= 1, "{equal} coordinates unchanged");
        let (xs, ys): (Vec<f64>, Vec<f64>) = plain
            .iter()
            .zip(&masked)
            .map(|(&a, &b)| (f64::from(a), f64::from(b)))
            .unzip();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / 100_000.0;
        let (mx, my) = (mean(&xs), mean(&ys));
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
        let r = cov / (vx * vy).sqrt();
        assert!(r.abs() < 0.05, "Pearson r = {r}");
        // Sanity: the statistic does detect dependence when there is some.
        let leaky: Vec<f64> = xs.iter().zip(&ys).map(|(x, y)| x * 1000.0 + y).collect();
        let ml = mean(&leaky);
        let cov_l: f64 = xs
            .iter()
            .zip(&leaky)
            .map(|(x, l)| (x - mx) * (l - ml))
            .sum();
        let vl: f64 = leaky.iter().map(|l| (l - ml).powi(2)).sum();
        assert!(cov_l / (vx * vl).sqrt() > 0.5);
    }

    /// Times the expansion of one 2.7M-word mask:
    /// `cargo test -p bloginfer-fl --release --lib secagg::mask -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing only"]
    fn time_mask_expansion() {
        let mut v = vec![0u32; 2_700_000];
        let start = std::time::Instant::now();
        apply(&mut v, &[1u8; 32], Sign::Add);
        let first = start.elapsed();
        let start = std::time::Instant::now();
        apply(&mut v, &[2u8; 32], Sign::Add);
        println!(
            "2.7M-word mask: {first:?} (cold), {:?} (warm)",
            start.elapsed()
        );
        assert!(v.iter().any(|&w| w != 0));
    }
}
