//! Secrets made and checked: random tokens in hex, and a comparison whose
//! time does not depend on where two tokens differ.

use rand::RngCore;
use subtle::ConstantTimeEq;

/// `bytes` random bytes from the thread's cryptographically secure generator
/// (seeded and reseeded from the operating system), as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

/// Lower-case hex of `bytes` (digests, tokens).
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// Whether two secrets are equal, in time that depends only on their lengths
/// (a length mismatch answers at once; lengths are not secret here).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_of_the_asked_size_and_differ() {
        let a = random_hex(24);
        let b = random_hex(24);
        assert_eq!(a.len(), 48);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
