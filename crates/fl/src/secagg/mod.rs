//! Secure aggregation (SecAgg, Bonawitz et al. CCS 2017): cryptographic core.
//!
//! The server learns the *sum* of the surviving participants' updates and
//! nothing else about any single update. This module holds the pure,
//! deterministic pieces; the aggregator and workers run the protocol.
//!
//! Participants of a round are numbered `1..=n` (their position in the
//! round's sorted participant list, also their Shamir x-coordinate; at most
//! [`MAX_PARTICIPANTS`]), and every derivation is bound to a
//! [`RoundContext`] (run id and round number).
//!
//! # Stages
//!
//! 1. **Keys.** Each participant `u` makes [`RoundKeys`]: an X25519 pair
//!    `c_u` for encrypting shares and a pair `s_u` for pairwise masks, and
//!    draws a random self-mask seed `b_u`. It announces [`PublicKeys`]; the
//!    server relays the list to everyone.
//! 2. **Shares.** `u` Shamir-shares `b_u` and `s_u^SK` among all `n`
//!    participants (itself included) with threshold
//!    [`threshold_for`]`(n)`, encrypting each peer's pair of shares under
//!    [`share_key`] ([`make_shares`]); the server routes each
//!    [`EncryptedShare`] to its recipient, who checks it with
//!    [`open_share`]. Participants who sent no shares are out of the round.
//! 3. **Masked inputs.** `u` encodes its update in fixed point
//!    ([`FixedPoint::encode`]) and masks it ([`mask_input`]):
//!    `y_u = x_u + PRG(b_u) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv)`, with
//!    `s_uv` from [`pairwise_mask_seed`] (the same on both sides). Alone,
//!    `y_u` is uniformly random in the ring.
//! 4. **Unmasking.** The server sums the `y_u` it received (wrapping) and
//!    tells every survivor who dropped. Each survivor reveals, for each
//!    peer, one share: of `b_v` if `v` survived, of `s_v^SK` if `v` dropped
//!    (never both for the same `v`). With `t` shares the server rebuilds
//!    ([`recover_secret`]) the survivors' `b_u` and the dropped participants'
//!    `s_v^SK` (checking each against the announced key with
//!    [`masking_public`]), derives the orphaned pairwise seeds
//!    ([`dropped_pairwise_seeds`]) and removes every remaining mask
//!    ([`unmask_sum`]); [`FixedPoint::decode_sum`] turns the sum back into
//!    floats.
//!
//! # What it protects, what it does not
//!
//! Against an honest-but-curious server (it follows the protocol but reads
//! everything it sees) and fewer than `t` colluding participants, the server
//! learns only the sum of the survivors' inputs: each single masked input is
//! uniformly random, and no coalition below the threshold can rebuild a
//! `b_u` or `s_u^SK`.
//!
//! It does **not** protect against:
//! - a *malicious* server lying about dropouts, e.g. calling `u` dropped to
//!   some survivors (getting shares of `s_u^SK`) after receiving `y_u` (and
//!   shares of `b_u` from others), which would unmask `u` alone. Bonawitz's
//!   active-security version adds a consistency check (signed survivor lists)
//!   for this; it is **not implemented** here;
//! - hostile participants: an input is only bounded by the clipping range
//!   of the encoding, so one participant can still shift the sum by up to
//!   `clip` per coordinate (robust aggregation cannot inspect masked
//!   inputs);
//! - timing and size side channels, and who takes part in a round.

mod encoding;
mod error;
mod hex;
mod keys;
mod mask;
mod shares;

#[cfg(test)]
mod tests;

pub use encoding::{FixedPoint, DEFAULT_CLIP, DEFAULT_LEVELS};
pub use error::SecAggError;
pub use keys::{
    masking_public, pairwise_mask_seed, share_key, PublicKeys, RoundContext, RoundKeys,
};
pub use mask::{dropped_pairwise_seeds, expand_mask, mask_input, unmask_sum};
pub use shares::{
    make_shares, open_share, recover_secret, threshold_for, EncryptedShare, OpenedShare,
};

/// The most participants a round can have: Shamir shares over GF(256) have
/// x-coordinates `1..=255`. (The default encoding would allow 1024.)
pub const MAX_PARTICIPANTS: u16 = 255;

/// `index` as a Shamir x-coordinate, or an error outside `1..=255`.
pub(crate) fn check_index(index: u16) -> Result<u8, SecAggError> {
    u8::try_from(index)
        .ok()
        .filter(|&x| x != 0)
        .ok_or(SecAggError::InvalidIndex(index))
}
