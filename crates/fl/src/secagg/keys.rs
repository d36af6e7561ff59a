//! Per-round key pairs and the keys derived from them by Diffie-Hellman.

use rand::CryptoRng;
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use super::{check_index, SecAggError};

/// Domain-separation labels: a mask seed and a share key from the same keys
/// and indices must never coincide.
const MASK_SEED_LABEL: &[u8] = b"bloginfer/secagg/v1/pairwise-mask-seed";
const SHARE_KEY_LABEL: &[u8] = b"bloginfer/secagg/v1/share-key";
const SHARE_AD_LABEL: &[u8] = b"bloginfer/secagg/v1/share-envelope";

/// The round a secret belongs to, bound into every derived key and into the
/// encrypted shares' associated data, so nothing carries over to another run
/// or round.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoundContext {
    /// The federated run's id.
    pub run_id: String,
    /// The round number.
    pub round: u32,
}

/// Appends `bytes` with a length prefix, so concatenations are unambiguous.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Labels and run ids are short; a longer field saturates the prefix,
    // which cannot make two distinct inputs collide in practice.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl RoundContext {
    /// A context for `round` of run `run_id`.
    pub fn new(run_id: impl Into<String>, round: u32) -> Self {
        Self {
            run_id: run_id.into(),
            round,
        }
    }

    /// `label`, run id and round, length-prefixed.
    fn prefix(&self, label: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.run_id.len());
        put(&mut out, label);
        put(&mut out, self.run_id.as_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out
    }

    /// Associated data of the share sent from `from` to `to` in this round.
    pub(crate) fn share_associated_data(&self, from: u16, to: u16) -> Vec<u8> {
        let mut out = self.prefix(SHARE_AD_LABEL);
        out.extend_from_slice(&from.to_be_bytes());
        out.extend_from_slice(&to.to_be_bytes());
        out
    }
}

/// A participant's two public keys for a round, announced to every peer
/// through the server. JSON: `{"encryption": "<64 hex>", "masking": "<64 hex>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKeys {
    /// X25519 key for the channel carrying Shamir shares (`c_u^PK`).
    #[serde(with = "super::hex::array")]
    pub encryption: [u8; 32],
    /// X25519 key for pairwise masks (`s_u^PK`).
    #[serde(with = "super::hex::array")]
    pub masking: [u8; 32],
}

/// A participant's secret keys for one round: an encryption pair (`c`) to
/// send Shamir shares to peers, and a masking pair (`s`) for pairwise masks.
/// Fresh every round; the secrets are wiped on drop.
pub struct RoundKeys {
    encryption: StaticSecret,
    masking: StaticSecret,
}

impl std::fmt::Debug for RoundKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("RoundKeys")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

impl RoundKeys {
    /// Keys from 64 random bytes: the first half is the encryption secret,
    /// the second the masking secret. Deterministic, for tests and replay.
    pub fn from_seed(seed: [u8; 64]) -> Self {
        let seed = Zeroizing::new(seed);
        let mut enc = Zeroizing::new([0u8; 32]);
        let mut mask = Zeroizing::new([0u8; 32]);
        enc.copy_from_slice(&seed[..32]);
        mask.copy_from_slice(&seed[32..]);
        Self {
            encryption: StaticSecret::from(*enc),
            masking: StaticSecret::from(*mask),
        }
    }

    /// Fresh keys from a cryptographic RNG (e.g. `rand::rng()`).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(seed.as_mut_slice());
        Self::from_seed(*seed)
    }

    /// The public halves, to announce.
    pub fn public(&self) -> PublicKeys {
        PublicKeys {
            encryption: PublicKey::from(&self.encryption).to_bytes(),
            masking: PublicKey::from(&self.masking).to_bytes(),
        }
    }

    /// The masking secret `s_u^SK`: what is Shamir-shared so that the server
    /// can rebuild a dropped participant's pairwise masks.
    pub fn masking_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.masking.to_bytes())
    }

    /// [`pairwise_mask_seed`] with my own masking secret.
    pub fn mask_seed_with(
        &self,
        peer_masking_public: &[u8; 32],
        context: &RoundContext,
        me: u16,
        peer: u16,
    ) -> Result<[u8; 32], SecAggError> {
        mask_seed(&self.masking, peer_masking_public, context, me, peer)
    }
}

/// The seed of the pairwise mask between participants `me` and `peer`:
/// SHA-256 over a label, the round context, both indices and public keys in
/// index order, and the X25519 output. Symmetric: `me` with `peer`'s public
/// key gives the same seed as `peer` with `me`'s, which is also how the
/// server rebuilds a dropped participant's masks from its reconstructed
/// secret.
pub fn pairwise_mask_seed(
    my_masking_secret: &[u8; 32],
    peer_masking_public: &[u8; 32],
    context: &RoundContext,
    me: u16,
    peer: u16,
) -> Result<[u8; 32], SecAggError> {
    let secret = StaticSecret::from(*my_masking_secret);
    mask_seed(&secret, peer_masking_public, context, me, peer)
}

/// The one derivation behind both forms of [`pairwise_mask_seed`].
fn mask_seed(
    secret: &StaticSecret,
    peer_masking_public: &[u8; 32],
    context: &RoundContext,
    me: u16,
    peer: u16,
) -> Result<[u8; 32], SecAggError> {
    if me == peer {
        return Err(SecAggError::SelfPair(me));
    }
    derive(
        MASK_SEED_LABEL,
        secret,
        peer_masking_public,
        context,
        me,
        peer,
    )
}

/// The masking public key of a masking secret: lets the server check that
/// the secret it rebuilt from shares is the one the participant announced.
pub fn masking_public(masking_secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*masking_secret)).to_bytes()
}

/// The ChaCha20-Poly1305 key for shares between `me` and `peer` (either
/// direction; `peer == me` is allowed, for the share a participant keeps of
/// its own secrets). Derived like [`pairwise_mask_seed`], from the
/// encryption keys and under another label.
pub fn share_key(
    keys: &RoundKeys,
    peer_encryption_public: &[u8; 32],
    context: &RoundContext,
    me: u16,
    peer: u16,
) -> Result<[u8; 32], SecAggError> {
    derive(
        SHARE_KEY_LABEL,
        &keys.encryption,
        peer_encryption_public,
        context,
        me,
        peer,
    )
}

fn derive(
    label: &[u8],
    secret: &StaticSecret,
    peer_public: &[u8; 32],
    context: &RoundContext,
    me: u16,
    peer: u16,
) -> Result<[u8; 32], SecAggError> {
    check_index(me)?;
    check_index(peer)?;
    let mine = PublicKey::from(secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(*peer_public));
    // A low-order public key makes the output a constant anyone can compute.
    if !shared.was_contributory() {
        return Err(SecAggError::WeakPublicKey(peer));
    }
    // Index order makes the derivation symmetric.
    let (lo, lo_pub, hi, hi_pub) = if me <= peer {
        (me, &mine, peer, peer_public)
    } else {
        (peer, peer_public, me, &mine)
    };
    let mut h = Sha256::new();
    h.update(context.prefix(label));
    h.update(lo.to_be_bytes());
    h.update(hi.to_be_bytes());
    h.update(lo_pub);
    h.update(hi_pub);
    h.update(shared.as_bytes());
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(tag: u8) -> RoundKeys {
        let mut seed = [tag; 64];
        seed[32..].fill(tag ^ 0x80);
        RoundKeys::from_seed(seed)
    }

    #[test]
    fn mask_seed_is_symmetric_and_bound_to_context_and_pair() {
        let (a, b, c) = (keys(1), keys(2), keys(3));
        let ctx = RoundContext::new("run-a", 4);
        let ab = a.mask_seed_with(&b.public().masking, &ctx, 1, 2).unwrap();
        let ba = b.mask_seed_with(&a.public().masking, &ctx, 2, 1).unwrap();
        assert_eq!(ab, ba);
        // The server's view: a's reconstructed secret and b's public key.
        let server =
            pairwise_mask_seed(&a.masking_secret_bytes(), &b.public().masking, &ctx, 1, 2).unwrap();
        assert_eq!(server, ab);
        assert_eq!(
            masking_public(&a.masking_secret_bytes()),
            a.public().masking
        );
        let other_round = a
            .mask_seed_with(&b.public().masking, &RoundContext::new("run-a", 5), 1, 2)
            .unwrap();
        let other_run = a
            .mask_seed_with(&b.public().masking, &RoundContext::new("run-b", 4), 1, 2)
            .unwrap();
        let other_idx = a.mask_seed_with(&b.public().masking, &ctx, 1, 3).unwrap();
        let ac = a.mask_seed_with(&c.public().masking, &ctx, 1, 2).unwrap();
        for s in [other_round, other_run, other_idx, ac] {
            assert_ne!(s, ab);
        }
        // The share key from the other key pair differs from the mask seed.
        let k = share_key(&a, &b.public().encryption, &ctx, 1, 2).unwrap();
        assert_eq!(
            k,
            share_key(&b, &a.public().encryption, &ctx, 2, 1).unwrap()
        );
        assert_ne!(k, ab);
    }

    #[test]
    fn rejects_self_pairs_bad_indices_and_low_order_keys() {
        let (a, b) = (keys(1), keys(2));
        let ctx = RoundContext::new("r", 1);
        let pk = b.public().masking;
        assert_eq!(
            a.mask_seed_with(&pk, &ctx, 1, 1),
            Err(SecAggError::SelfPair(1))
        );
        assert_eq!(
            a.mask_seed_with(&pk, &ctx, 0, 2),
            Err(SecAggError::InvalidIndex(0))
        );
        assert_eq!(
            a.mask_seed_with(&pk, &ctx, 1, 256),
            Err(SecAggError::InvalidIndex(256))
        );
        assert_eq!(
            a.mask_seed_with(&[0u8; 32], &ctx, 1, 2),
            Err(SecAggError::WeakPublicKey(2))
        );
    }

    #[test]
    fn keys_are_deterministic_and_public_keys_serialise_as_hex() {
        assert_eq!(keys(9).public(), keys(9).public());
        assert_ne!(keys(9).public(), keys(8).public());
        let pk = keys(9).public();
        assert_ne!(pk.encryption, pk.masking);
        let json = serde_json::to_value(pk).unwrap();
        let enc = json["encryption"].as_str().unwrap();
        assert_eq!(enc.len(), 64);
        assert_eq!(enc, super::super::hex::encode(pk.encryption));
        assert_eq!(serde_json::from_value::<PublicKeys>(json).unwrap(), pk);
        assert!(
            serde_json::from_str::<PublicKeys>(r#"{"encryption":"00","masking":"00"}"#).is_err()
        );
    }
}
