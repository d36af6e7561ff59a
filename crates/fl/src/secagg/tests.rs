//! End-to-end rounds (keys → shares → masked inputs → unmasking), with and
//! without dropouts, and the share transport's refusals.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;

struct Participant {
    idx: u16,
    keys: RoundKeys,
    self_seed: [u8; 32],
    values: Vec<f32>,
    encoded: Vec<u32>,
}

fn ctx() -> RoundContext {
    RoundContext::new("run-e2e", 3)
}

fn participants(n: u16, len: usize, rng: &mut ChaCha20Rng) -> Vec<Participant> {
    let fp = FixedPoint::default();
    (1..=n)
        .map(|idx| {
            let keys = RoundKeys::generate(rng);
            let self_seed: [u8; 32] = rng.random();
            let values: Vec<f32> = (0..len).map(|_| rng.random_range(-2.0..2.0)).collect();
            let encoded = fp.encode(&values, rng).unwrap();
            Participant {
                idx,
                keys,
                self_seed,
                values,
                encoded,
            }
        })
        .collect()
}

fn roster(ps: &[Participant]) -> Vec<(u16, PublicKeys)> {
    ps.iter().map(|p| (p.idx, p.keys.public())).collect()
}

/// Runs a whole round where `dropped` send shares but never a masked input.
/// Returns (plain sum of survivors' encodings, unmasked sum, sum without the
/// dropout correction).
fn run_round(n: u16, dropped: &[u16], seed: u64) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let len = 5_000;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ps = participants(n, len, &mut rng);
    let roster = roster(&ps);
    let t = threshold_for(usize::from(n));

    // Stage 2: everyone shares; the server routes by recipient.
    let mut inbox: BTreeMap<u16, Vec<EncryptedShare>> = BTreeMap::new();
    for p in &ps {
        let sent = make_shares(&p.keys, &p.self_seed, p.idx, &roster, t, &ctx(), &mut rng).unwrap();
        assert_eq!(sent.len(), usize::from(n));
        for s in sent {
            inbox.entry(s.to).or_default().push(s);
        }
    }
    let survivors: Vec<&Participant> = ps.iter().filter(|p| !dropped.contains(&p.idx)).collect();

    // Stage 3: survivors mask; the server sums.
    let mut sum = vec![0u32; len];
    for p in &survivors {
        let pairwise: Vec<(u16, [u8; 32])> = roster
            .iter()
            .filter(|(v, _)| *v != p.idx)
            .map(|(v, pk)| {
                (
                    *v,
                    p.keys
                        .mask_seed_with(&pk.masking, &ctx(), p.idx, *v)
                        .unwrap(),
                )
            })
            .collect();
        let mut y = p.encoded.clone();
        mask_input(&mut y, p.idx, &p.self_seed, &pairwise).unwrap();
        for (s, v) in sum.iter_mut().zip(&y) {
            *s = s.wrapping_add(*v);
        }
    }

    // Stage 4: each survivor opens its inbox and reveals one share per peer.
    let mut seed_shares: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut secret_shares: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    for p in &survivors {
        for share in &inbox[&p.idx] {
            let sender = roster.iter().find(|(i, _)| *i == share.from).unwrap();
            let opened = open_share(&p.keys, p.idx, sender.0, &sender.1, share, &ctx()).unwrap();
            if dropped.contains(&opened.from) {
                secret_shares
                    .entry(opened.from)
                    .or_default()
                    .push(opened.masking_secret_share);
            } else {
                seed_shares
                    .entry(opened.from)
                    .or_default()
                    .push(opened.self_seed_share);
            }
        }
    }
    let self_seeds: Vec<[u8; 32]> = survivors
        .iter()
        .map(|p| {
            let b = recover_secret(&seed_shares[&p.idx], t).unwrap();
            assert_eq!(*b, p.self_seed);
            *b
        })
        .collect();
    let survivor_keys: Vec<(u16, [u8; 32])> = survivors
        .iter()
        .map(|p| (p.idx, p.keys.public().masking))
        .collect();
    let mut orphans = Vec::new();
    for &v in dropped {
        let s_v = recover_secret(&secret_shares[&v], t).unwrap();
        assert_eq!(
            masking_public(&s_v),
            ps[usize::from(v) - 1].keys.public().masking
        );
        orphans.extend(dropped_pairwise_seeds(v, &s_v, &survivor_keys, &ctx()).unwrap());
    }
    let mut uncorrected = sum.clone();
    unmask_sum(&mut uncorrected, &self_seeds, &[]).unwrap();
    unmask_sum(&mut sum, &self_seeds, &orphans).unwrap();

    let mut plain = vec![0u32; len];
    for p in &survivors {
        for (s, v) in plain.iter_mut().zip(&p.encoded) {
            *s = s.wrapping_add(*v);
        }
    }
    // The decoded sum is the float sum, within the encoding's bound.
    let fp = FixedPoint::default();
    let decoded = fp.decode_sum(&sum, survivors.len()).unwrap();
    for (i, d) in decoded.iter().enumerate() {
        let exact: f64 = survivors.iter().map(|p| f64::from(p.values[i])).sum();
        assert!((f64::from(*d) - exact).abs() < fp.error_bound(survivors.len()));
    }
    (plain, sum, uncorrected)
}

#[test]
fn three_participants_sum_exactly() {
    let (plain, unmasked, _) = run_round(3, &[], 1);
    assert_eq!(unmasked, plain);
}

#[test]
fn five_participants_sum_exactly() {
    let (plain, unmasked, _) = run_round(5, &[], 2);
    assert_eq!(unmasked, plain);
}

#[test]
fn one_of_three_drops_out() {
    // The middle index: survivors 1 and 3 masked with opposite signs to it.
    let (plain, unmasked, uncorrected) = run_round(3, &[2], 3);
    assert_eq!(unmasked, plain);
    // Without rebuilding the dropped participant's pairwise masks the sum is noise.
    assert_ne!(uncorrected, plain);
}

#[test]
fn two_of_five_drop_out() {
    let (plain, unmasked, _) = run_round(5, &[1, 4], 4);
    assert_eq!(unmasked, plain);
}

#[test]
fn threshold_is_a_majority_of_at_least_two() {
    let got: Vec<usize> = (1..=7).map(threshold_for).collect();
    assert_eq!(got, [2, 2, 2, 3, 3, 4, 4]);
}

#[test]
fn shares_refuse_wrong_recipient_tampering_and_other_rounds() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let ps = participants(3, 1, &mut rng);
    let roster = roster(&ps);
    let (p1, p2, p3) = (&ps[0], &ps[1], &ps[2]);
    let pk1 = p1.keys.public();
    let sent = make_shares(&p1.keys, &p1.self_seed, 1, &roster, 2, &ctx(), &mut rng).unwrap();
    let to2 = sent.iter().find(|s| s.to == 2).unwrap();
    assert!(open_share(&p2.keys, 2, 1, &pk1, to2, &ctx()).is_ok());

    // JSON shape: hex nonce and ciphertext.
    let json = serde_json::to_value(to2).unwrap();
    assert_eq!(json["nonce"].as_str().unwrap().len(), 24);
    assert_eq!(json["ciphertext"].as_str().unwrap().len(), 2 * 86);
    assert_eq!(
        &serde_json::from_value::<EncryptedShare>(json).unwrap(),
        to2
    );

    // Participant 3 tries to open participant 2's share.
    assert!(matches!(
        open_share(&p3.keys, 3, 1, &pk1, to2, &ctx()),
        Err(SecAggError::WrongRecipient {
            expected: 3,
            got: 2
        })
    ));
    // ... or relabels it as addressed to itself.
    let relabelled = EncryptedShare {
        to: 3,
        ..to2.clone()
    };
    assert!(matches!(
        open_share(&p3.keys, 3, 1, &pk1, &relabelled, &ctx()),
        Err(SecAggError::Authentication { .. })
    ));
    assert!(matches!(
        open_share(&p2.keys, 2, 3, &p3.keys.public(), to2, &ctx()),
        Err(SecAggError::UnexpectedSender {
            expected: 3,
            got: 1
        })
    ));
    let mut tampered = to2.clone();
    tampered.ciphertext[10] ^= 1;
    assert!(matches!(
        open_share(&p2.keys, 2, 1, &pk1, &tampered, &ctx()),
        Err(SecAggError::Authentication { from: 1, to: 2 })
    ));
    for other in [
        RoundContext::new("run-e2e", 4),
        RoundContext::new("other", 3),
    ] {
        assert!(matches!(
            open_share(&p2.keys, 2, 1, &pk1, to2, &other),
            Err(SecAggError::Authentication { .. })
        ));
    }
}

#[test]
fn recovery_needs_threshold_consistent_shares() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let ps = participants(5, 1, &mut rng);
    let roster = roster(&ps);
    let t = threshold_for(5);
    let sent = make_shares(
        &ps[0].keys,
        &ps[0].self_seed,
        1,
        &roster,
        t,
        &ctx(),
        &mut rng,
    )
    .unwrap();
    let opened: Vec<OpenedShare> = sent
        .iter()
        .map(|s| {
            let p = &ps[usize::from(s.to) - 1];
            open_share(&p.keys, p.idx, 1, &roster[0].1, s, &ctx()).unwrap()
        })
        .collect();
    let seeds: Vec<Vec<u8>> = opened.iter().map(|o| o.self_seed_share.clone()).collect();
    let secrets: Vec<Vec<u8>> = opened
        .iter()
        .map(|o| o.masking_secret_share.clone())
        .collect();
    assert_eq!(*recover_secret(&seeds[1..4], t).unwrap(), ps[0].self_seed);
    assert_eq!(
        recover_secret(&secrets[2..], t).unwrap(),
        ps[0].keys.masking_secret_bytes()
    );
    // Fewer than t distinct shares, even if one is repeated.
    let short = [seeds[0].clone(), seeds[3].clone(), seeds[3].clone()];
    assert_eq!(
        recover_secret(&short, t),
        Err(SecAggError::NotEnoughShares {
            got: 2,
            threshold: 3
        })
    );
    // Two different values at one x-coordinate are refused.
    let mut forged = seeds[2].clone();
    forged[5] ^= 0xff;
    assert_eq!(
        recover_secret(&[seeds[0].clone(), seeds[2].clone(), forged], t),
        Err(SecAggError::ConflictingShares(3))
    );
    assert!(matches!(
        recover_secret(&[vec![1, 2, 3], seeds[0].clone(), seeds[1].clone()], t),
        Err(SecAggError::MalformedShare(_))
    ));
    // Bad share parameters are refused before anything is sent.
    assert!(matches!(
        make_shares(
            &ps[0].keys,
            &ps[0].self_seed,
            1,
            &roster,
            6,
            &ctx(),
            &mut rng
        ),
        Err(SecAggError::InvalidThreshold { .. })
    ));
    assert_eq!(
        make_shares(
            &ps[0].keys,
            &ps[0].self_seed,
            2,
            &roster,
            t,
            &ctx(),
            &mut rng
        ),
        Err(SecAggError::NotAParticipant(2))
    );
}
