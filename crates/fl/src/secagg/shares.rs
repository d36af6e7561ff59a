//! Shamir shares of a participant's two round secrets, and their encrypted
//! transport to peers through the (untrusted) server.
//!
//! Participant `u` shares its self-mask seed `b_u` and its masking secret
//! `s_u^SK` among *all* participants of the round, itself included (as in
//! Bonawitz et al.): the share for participant `v` has x-coordinate `v`.
//! Keeping a share of its own secrets lets a survivor count towards the
//! threshold for its own `b_u`, so with 3 participants and `t = 2` one
//! dropout is survivable. Each pair of shares travels encrypted with
//! ChaCha20-Poly1305 under [`share_key`]`(u, v)`, a random nonce, and
//! associated data binding run id, round, sender and recipient.
//!
//! Shamir sharing is `sharks` over GF(256), byte by byte; hence at most 255
//! participants. `sharks` 0.5 draws polynomial coefficients from 1..=255,
//! not 0..=255: `t - 1` shares rule out a few values of each secret byte
//! (≈ `0.18 (t - 1)` bits of a 256-bit secret), a negligible loss.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use rand::CryptoRng;
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use sharks::{Share, Sharks};

use super::{check_index, share_key, PublicKeys, RoundContext, RoundKeys, SecAggError};

/// Bytes of one Shamir share of a 32-byte secret: x-coordinate, then 32 y bytes.
const SHARE_LEN: usize = 33;
/// Plaintext of an encrypted share: from, to (u16 BE), the share of `b_u`,
/// the share of `s_u^SK`.
const PLAINTEXT_LEN: usize = 4 + 2 * SHARE_LEN;

/// The threshold `t` for `participants`: a majority, `max(2, n / 2 + 1)`.
///
/// Unmasking survives up to `n - t = floor((n - 1) / 2)` dropouts (none for
/// `n = 2`), and fewer than `t` colluding participants (with or without the
/// server) cannot reconstruct anyone's secrets, hence cannot unmask anyone.
pub fn threshold_for(participants: usize) -> usize {
    (participants / 2 + 1).max(2)
}

/// One participant's shares for one peer, encrypted; the server only routes
/// it. JSON: `{"from": 1, "to": 2, "nonce": "<24 hex>", "ciphertext": "<hex>"}`
/// (the ciphertext is 86 bytes: 70 of plaintext and a 16-byte tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedShare {
    /// The sender's index.
    pub from: u16,
    /// The recipient's index.
    pub to: u16,
    /// The random ChaCha20-Poly1305 nonce.
    #[serde(with = "super::hex::array")]
    pub nonce: [u8; 12],
    /// The encrypted shares and their tag.
    #[serde(with = "super::hex::vec")]
    pub ciphertext: Vec<u8>,
}

/// A decrypted [`EncryptedShare`]: the recipient's shares of the sender's
/// secrets, each in `sharks` byte form (x-coordinate = recipient's index,
/// then 32 bytes). In the unmasking stage the recipient reveals exactly one
/// of the two to the server: the self-seed share if `from` survived, the
/// masking-secret share if `from` dropped out — never both.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedShare {
    /// The sender, whose secrets these are shares of.
    pub from: u16,
    /// A share of the sender's self-mask seed `b_u`.
    pub self_seed_share: Vec<u8>,
    /// A share of the sender's masking secret `s_u^SK`.
    pub masking_secret_share: Vec<u8>,
}

impl std::fmt::Debug for OpenedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shares are secret material: keep them out of logs.
        f.debug_struct("OpenedShare")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The first `count` Shamir shares (x = 1..=count) of `secret`.
fn deal(secret: &[u8; 32], threshold: u8, count: usize) -> Vec<Share> {
    // `dealer` draws coefficients from rand 0.8's thread RNG (a CSPRNG).
    // `dealer_rng` with a caller's RNG would make dealing reproducible, but
    // needs an RNG implementing rand 0.8's traits, which the crate lacks.
    Sharks(threshold).dealer(secret).take(count).collect()
}

/// Shares participant `me`'s self-mask seed and masking secret among
/// `participants` (every participant of the round with its announced keys,
/// `me` included) with threshold `threshold`, one [`EncryptedShare`] per
/// participant, in the list's order.
///
/// Fails if an index is invalid or repeated, `me` is missing or listed with
/// other keys than `keys`', the threshold is not in `2..=participants`, or a
/// peer's encryption key is a low-order point.
pub fn make_shares<R: CryptoRng + ?Sized>(
    keys: &RoundKeys,
    self_seed: &[u8; 32],
    me: u16,
    participants: &[(u16, PublicKeys)],
    threshold: usize,
    context: &RoundContext,
    rng: &mut R,
) -> Result<Vec<EncryptedShare>, SecAggError> {
    let mut seen = BTreeMap::new();
    for (idx, pk) in participants {
        check_index(*idx)?;
        if seen.insert(*idx, pk).is_some() {
            return Err(SecAggError::DuplicateIndex(*idx));
        }
    }
    if seen.get(&me) != Some(&&keys.public()) {
        return Err(SecAggError::NotAParticipant(me));
    }
    let t = u8::try_from(threshold)
        .ok()
        .filter(|&t| t >= 2 && usize::from(t) <= participants.len())
        .ok_or(SecAggError::InvalidThreshold {
            threshold,
            participants: participants.len(),
        })?;
    let count = seen.keys().next_back().map_or(0, |&i| usize::from(i));
    let seed_shares = deal(self_seed, t, count);
    let secret_shares = deal(&keys.masking_secret_bytes(), t, count);

    let mut out = Vec::with_capacity(participants.len());
    for (to, pk) in participants {
        let key = Zeroizing::new(share_key(keys, &pk.encryption, context, me, *to)?);
        let x = usize::from(*to) - 1;
        let (Some(b), Some(s)) = (seed_shares.get(x), secret_shares.get(x)) else {
            return Err(SecAggError::InvalidIndex(*to));
        };
        let mut plaintext = Zeroizing::new(Vec::with_capacity(PLAINTEXT_LEN));
        plaintext.extend_from_slice(&me.to_be_bytes());
        plaintext.extend_from_slice(&to.to_be_bytes());
        plaintext.extend_from_slice(&Zeroizing::new(Vec::from(b)));
        plaintext.extend_from_slice(&Zeroizing::new(Vec::from(s)));
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let aad = context.share_associated_data(me, *to);
        let ciphertext = ChaCha20Poly1305::new_from_slice(key.as_slice())
            .map_err(|_| SecAggError::Encryption)?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecAggError::Encryption)?;
        out.push(EncryptedShare {
            from: me,
            to: *to,
            nonce,
            ciphertext,
        });
    }
    Ok(out)
}

/// Decrypts a share sent to `me` by `sender` (whose announced keys are
/// `sender_public`), refusing one addressed to someone else, from another
/// sender, failing authentication (wrong key, tampering, another run or
/// round), or whose content does not match its envelope.
pub fn open_share(
    keys: &RoundKeys,
    me: u16,
    sender: u16,
    sender_public: &PublicKeys,
    share: &EncryptedShare,
    context: &RoundContext,
) -> Result<OpenedShare, SecAggError> {
    if share.to != me {
        return Err(SecAggError::WrongRecipient {
            expected: me,
            got: share.to,
        });
    }
    if share.from != sender {
        return Err(SecAggError::UnexpectedSender {
            expected: sender,
            got: share.from,
        });
    }
    let x = check_index(me)?;
    let key = Zeroizing::new(share_key(
        keys,
        &sender_public.encryption,
        context,
        me,
        sender,
    )?);
    let aad = context.share_associated_data(sender, me);
    let plaintext = Zeroizing::new(
        ChaCha20Poly1305::new_from_slice(key.as_slice())
            .map_err(|_| SecAggError::Encryption)?
            .decrypt(
                Nonce::from_slice(&share.nonce),
                Payload {
                    msg: &share.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecAggError::Authentication {
                from: share.from,
                to: share.to,
            })?,
    );
    if plaintext.len() != PLAINTEXT_LEN {
        return Err(SecAggError::MalformedShare("wrong plaintext length"));
    }
    // Authenticated already; these checks catch a sender's bug, not forgery.
    if plaintext[..4] != [sender.to_be_bytes(), me.to_be_bytes()].concat() {
        return Err(SecAggError::MalformedShare(
            "indices differ from the envelope",
        ));
    }
    let (b, s) = plaintext[4..].split_at(SHARE_LEN);
    if b[0] != x || s[0] != x {
        return Err(SecAggError::MalformedShare(
            "x-coordinate is not the recipient's index",
        ));
    }
    Ok(OpenedShare {
        from: sender,
        self_seed_share: b.to_vec(),
        masking_secret_share: s.to_vec(),
    })
}

/// Reconstructs a 32-byte secret from Shamir shares (as in [`OpenedShare`])
/// revealed by survivors. Duplicates are ignored; fails if two shares claim
/// the same x-coordinate with different values, a share is malformed, the
/// threshold is not in `2..=255`, or fewer than `threshold` distinct shares
/// are given.
pub fn recover_secret(
    shares: &[Vec<u8>],
    threshold: usize,
) -> Result<Zeroizing<[u8; 32]>, SecAggError> {
    let t =
        u8::try_from(threshold)
            .ok()
            .filter(|&t| t >= 2)
            .ok_or(SecAggError::InvalidThreshold {
                threshold,
                participants: shares.len(),
            })?;
    let mut distinct: BTreeMap<u8, &Vec<u8>> = BTreeMap::new();
    for share in shares {
        if share.len() != SHARE_LEN {
            return Err(SecAggError::MalformedShare(
                "a share of a 32-byte secret has 33 bytes",
            ));
        }
        if share[0] == 0 {
            return Err(SecAggError::MalformedShare("x-coordinate 0"));
        }
        // Interpolating through two points with the same x would be garbage.
        if let Some(prev) = distinct.insert(share[0], share) {
            if prev != share {
                return Err(SecAggError::ConflictingShares(share[0]));
            }
        }
    }
    if distinct.len() < threshold {
        return Err(SecAggError::NotEnoughShares {
            got: distinct.len(),
            threshold,
        });
    }
    let parsed = distinct
        .values()
        .map(|s| Share::try_from(s.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SecAggError::MalformedShare)?;
    let secret = Zeroizing::new(
        Sharks(t)
            .recover(&parsed)
            .map_err(|_| SecAggError::MalformedShare("Shamir recovery failed"))?,
    );
    let bytes = <[u8; 32]>::try_from(secret.as_slice())
        .map_err(|_| SecAggError::MalformedShare("recovered secret is not 32 bytes"))?;
    Ok(Zeroizing::new(bytes))
}
