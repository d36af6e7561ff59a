//! Usernames readers can tell apart. A name is shown next to everything its
//! owner writes, so it may not hide characters (controls, bidi overrides,
//! zero-width joiners), must be in its NFKC form (no full-width or
//! compatibility look-alikes), and may not look like a name that is already
//! taken: every name has a *skeleton* (Unicode TS #39: confusable characters
//! mapped to one prototype, then case-folded), which the database keeps unique,
//! so `аlice` with a Cyrillic `а`, or `ALICE`, cannot be registered beside `alice`.

use unicode_normalization::UnicodeNormalization;

/// Longest username, in characters.
pub const MAX_CHARS: usize = 64;

/// Characters a name may not contain: controls, and everything TS #39 treats
/// as default-ignorable (zero-width spaces and joiners, bidi controls,
/// variation selectors, tags), which a reader cannot see.
fn hidden(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    let mut buf = [0u8; 4];
    let ignorable = unicode_security::skeleton(c.encode_utf8(&mut buf))
        .next()
        .is_none();
    ignorable
}

/// What is wrong with `name` as a username, if anything (the RealWorld 422 message).
pub fn problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        return Some("can't be blank");
    }
    if name.chars().count() > MAX_CHARS {
        return Some("is too long (maximum is 64 characters)");
    }
    if name.chars().any(|c| c.is_whitespace() || c == '/') {
        return Some("may not contain spaces or slashes");
    }
    if name.chars().any(hidden) {
        return Some("may not contain invisible or control characters");
    }
    if !name.chars().eq(name.nfkc()) {
        return Some("must be written in Unicode normal form (NFKC)");
    }
    None
}

/// The form under which names that look alike collide: lower-cased, the
/// TS #39 skeleton of that, lower-cased again (prototypes can be capitals:
/// `0` → `O`), and `l` folded into `i`, because a capital `I` looks like an
/// `l` and lower-cases to an `i` (so `aIice`, `ALICE` and `a1ice` all meet
/// `alice`). A few honest names collide too (`lan`, `ian`): they get "taken".
pub fn skeleton(name: &str) -> String {
    let prototypes: String = unicode_security::skeleton(&name.to_lowercase()).collect();
    prototypes
        .to_lowercase()
        .chars()
        .map(|c| if c == 'l' { 'i' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_unnormalised_names_are_refused() {
        for name in [
            "ali\u{200B}ce", // zero-width space
            "ali\u{202E}ce", // right-to-left override
            "ali\u{0007}ce", // bell
            "ali\u{FE0F}ce", // variation selector
            "ali\u{2060}ce", // word joiner
        ] {
            assert_eq!(
                problem(name),
                Some("may not contain invisible or control characters"),
                "{name:?}"
            );
        }
        assert!(problem("ａｌｉｃｅ").is_some(), "full-width letters");
        assert_eq!(problem("alice"), None);
        assert_eq!(problem("小明"), None, "CJK names are fine");
        assert_eq!(problem("josé"), None);
    }

    #[test]
    fn lookalikes_share_a_skeleton() {
        let alice = skeleton("alice");
        assert_eq!(skeleton("аlice"), alice, "Cyrillic а");
        assert_eq!(skeleton("ALICE"), alice);
        assert_eq!(skeleton("aIice"), alice, "capital I for l");
        assert_eq!(skeleton("a1ice"), alice, "one for l");
        assert_eq!(skeleton("b0b"), skeleton("bob"), "zero for o");
        assert_ne!(skeleton("alicia"), alice);
        assert_ne!(skeleton("小明"), skeleton("小红"));
    }
}
