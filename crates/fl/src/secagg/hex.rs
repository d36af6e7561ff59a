//! Lower-case hex strings for byte fields in JSON (keys, nonces, ciphertexts).
//!
//! The `hex` crate's codec behind `#[serde(with = "...")]` adapters for
//! byte vectors and fixed-size arrays.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) use ::hex::encode;

fn decode(s: &str) -> Option<Vec<u8>> {
    ::hex::decode(s).ok()
}

pub(crate) mod vec {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).ok_or_else(|| D::Error::custom("expected a hex string"))
    }
}

/// Serde adapter for `[u8; N]` as a hex string of exactly `2 N` digits.
pub(crate) mod array {
    use super::*;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        let bytes = decode(&s).ok_or_else(|| D::Error::custom("expected a hex string"))?;
        <[u8; N]>::try_from(bytes.as_slice())
            .map_err(|_| D::Error::custom(format!("expected {N} bytes of hex")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_input() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0x1a];
        assert_eq!(encode(bytes), "007f80ff1a");
        assert_eq!(decode("007F80ff1a").unwrap(), bytes);
        assert!(decode("abc").is_none());
        assert!(decode("zz").is_none());
    }
}
