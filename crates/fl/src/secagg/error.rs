//! What can go wrong in secure aggregation.

/// An error of the secure-aggregation core: bad parameters, a malformed or
/// forged message, or too few shares to reconstruct a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecAggError {
    /// The fixed-point parameters cannot encode anything.
    #[error("invalid fixed-point parameters: clip must be finite and > 0, levels > 0 (got clip {clip}, levels {levels})")]
    InvalidFixedPoint {
        /// The clipping bound given.
        clip: f32,
        /// The number of levels given.
        levels: u32,
    },
    /// Summing this many encoded vectors could wrap around the u32 ring.
    #[error("{count} summed vectors exceed the {max} this encoding can hold without wrapping")]
    TooManyVectors {
        /// How many vectors were summed.
        count: usize,
        /// The most the encoding allows.
        max: usize,
    },
    /// A participant index is outside 1..=255 (Shamir x-coordinates over GF(256)).
    #[error("participant index {0} is outside 1..=255")]
    InvalidIndex(u16),
    /// The same participant index appears twice in a list.
    #[error("participant index {0} appears more than once")]
    DuplicateIndex(u16),
    /// A pairwise mask or seed was asked for between a participant and itself.
    #[error("participant {0} cannot have a pairwise mask with itself")]
    SelfPair(u16),
    /// The Shamir threshold does not fit the participant count.
    #[error("threshold {threshold} is invalid for {participants} participants (need 2 <= threshold <= participants)")]
    InvalidThreshold {
        /// The threshold given.
        threshold: usize,
        /// How many participants the secret is shared among.
        participants: usize,
    },
    /// My own index is not in the participant list, or listed with other keys.
    #[error(
        "participant {0} is missing from the participant list or listed with other public keys"
    )]
    NotAParticipant(u16),
    /// A peer's public key gives a non-contributory (all-zero) Diffie-Hellman
    /// output: a low-order point, whose shared secret anyone can compute.
    #[error("the public key of participant {0} is a low-order point")]
    WeakPublicKey(u16),
    /// An encrypted share is addressed to someone else.
    #[error("share addressed to participant {got}, but I am {expected}")]
    WrongRecipient {
        /// My index.
        expected: u16,
        /// The index the share is addressed to.
        got: u16,
    },
    /// An encrypted share comes from another sender than expected.
    #[error("share from participant {got}, expected one from {expected}")]
    UnexpectedSender {
        /// The sender I expected.
        expected: u16,
        /// The sender the share names.
        got: u16,
    },
    /// Decryption failed: wrong key, tampered ciphertext, or another round's
    /// associated data.
    #[error("share from {from} to {to} failed authentication")]
    Authentication {
        /// The sender named on the envelope.
        from: u16,
        /// The recipient named on the envelope.
        to: u16,
    },
    /// A decrypted share or a Shamir share has the wrong layout.
    #[error("malformed share: {0}")]
    MalformedShare(&'static str),
    /// Fewer distinct shares than the threshold.
    #[error("{got} distinct shares, at least {threshold} needed")]
    NotEnoughShares {
        /// Distinct shares given.
        got: usize,
        /// The threshold.
        threshold: usize,
    },
    /// Two shares with the same x-coordinate disagree.
    #[error("two different shares claim x-coordinate {0}")]
    ConflictingShares(u8),
    /// Encryption failed (only on absurd plaintext sizes).
    #[error("share encryption failed")]
    Encryption,
}
