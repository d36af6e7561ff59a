//! Text normalisation applied before segmentation, in training and serving alike.

/// Normalises text for segmentation.
///
/// - full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space become
///   their half-width forms, so `ＡＢＣ！` and `abc!` share tokens;
/// - letters are lower-cased (Chinese characters have no case and pass through);
/// - control characters are dropped and every run of whitespace becomes one
///   space, with none at either end.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in text.chars() {
        let ch = to_half_width(ch);
        if ch.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if ch.is_control() {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if ch.is_ascii() {
            out.push(ch.to_ascii_lowercase());
        } else {
            out.extend(ch.to_lowercase());
        }
    }
    out
}

fn to_half_width(ch: char) -> char {
    match ch {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch),
        _ => ch,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn full_width_becomes_half_width_and_lower_case() {
        assert_eq!(normalize("ＡＢＣ！１２３"), "abc!123");
        assert_eq!(normalize("Hello　World"), "hello world");
    }

    #[test]
    fn whitespace_is_collapsed_and_trimmed() {
        assert_eq!(normalize("  很好 \t\n 不错  "), "很好 不错");
        assert_eq!(normalize(" \u{3000}\t"), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(normalize("好\u{0007}评"), "好评");
    }

    #[test]
    fn chinese_and_emoji_pass_through() {
        assert_eq!(normalize("质量很好😀"), "质量很好😀");
    }
}
