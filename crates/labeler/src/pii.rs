//! Masking of personal data before a comment is stored as a training sample
//! or sent to an LLM: email addresses, phone numbers (mainland mobiles, with
//! or without +86, landlines with an area code, international numbers) and
//! URLs (with a scheme, `www.`, or a bare domain with a common TLD) become
//! `<email>`, `<phone>`, `<url>`; long digit runs (ID and bank card numbers)
//! become `<number>`. Sentiment does not depend on any of them.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("email pattern")
});

// ASCII-only classes and ASCII word boundaries: in Chinese text a URL usually
// runs straight into the surrounding sentence, with no space on either side,
// and a Unicode `\b` sees no boundary between `com` and `上`.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?:(?:https?|ftp)://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+",
        r"|(?-u:\b)[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.",
        r"(?:com|cn|net|org|io|info|top|xyz|cc|me|co|tv|edu|gov|app|dev|site|shop|link)(?-u:\b)",
        r"(?:/[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?",
    ))
    .expect("url pattern")
});

/// Digit runs that may hold separators; classified by [`digit_mask`].
static DIGITS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?[0-9](?:[0-9]|[ \-][0-9])*[0-9Xx]?").expect("digit pattern"));

/// What a run of digits (separators removed) is, if it is personal.
fn digit_mask(run: &str) -> Option<&'static str> {
    let international = run.starts_with('+');
    let digits: String = run.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let n = digits.len();
    let numeric = digits.bytes().all(|b| b.is_ascii_digit());
    let mobile =
        |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
    if numeric && mobile(&digits) {
        return Some("<phone>");
    }
    if numeric && n == 13 && digits.starts_with("86") && mobile(&digits[2..]) {
        return Some("<phone>");
    }
    if numeric && international && (8..=15).contains(&n) {
        return Some("<phone>");
    }
    // Landlines: 0 + area code (2-3 digits) + 7-8 digits, written with a separator
    // after the area code; bare ten- to twelve-digit runs starting with 0 too.
    if numeric && digits.starts_with('0') && (10..=12).contains(&n) {
        return Some("<phone>");
    }
    // ID card numbers (17 digits and a check digit or X), bank cards (15-19).
    if (15..=19).contains(&n) && digits[..n - 1].bytes().all(|b| b.is_ascii_digit()) {
        return Some("<number>");
    }
    None
}

/// `text` with personal data masked (borrowed when there was none).
pub fn mask(text: &str) -> Cow<'_, str> {
    let text = EMAIL.replace_all(text, "<email>");
    let text = match URL.replace_all(&text, "<url>") {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => Cow::Owned(s),
    };
    // Most digit runs are prices, dates and counts: look before copying.
    if !DIGITS
        .find_iter(&text)
        .any(|m| digit_mask(m.as_str()).is_some())
    {
        return text;
    }
    let masked = DIGITS.replace_all(&text, |c: &Captures<'_>| {
        let run = &c[0];
        digit_mask(run).map_or_else(|| run.to_string(), str::to_string)
    });
    Cow::Owned(masked.into_owned())
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn emails_phones_and_urls_are_masked() {
        let cases = [
            (
                "联系我 zhang.san+blog@example.com.cn 谢谢",
                "联系我 <email> 谢谢",
            ),
            ("电话13812345678随时打", "电话<phone>随时打"),
            (
                "手机 138-1234-5678，或 +86 139 1234 5678",
                "手机 <phone>，或 <phone>",
            ),
            ("打 8613912345678 也行", "打 <phone> 也行"),
            (
                "座机010-62345678，深圳0755-2345678",
                "座机<phone>，深圳<phone>",
            ),
            ("call +1 415 555 0100 now", "call <phone> now"),
            (
                "看这里https://shop.example.com/item?id=42&x=1很便宜",
                "看这里<url>很便宜",
            ),
            ("去www.taobao.com/abc买", "去<url>买"),
            ("官网 jd.com 上有", "官网 <url> 上有"),
            ("官网jd.com上有", "官网<url>上有"),
            ("身份证11010519491231002X别外传", "身份证<number>别外传"),
            ("卡号 6222 0212 3456 7890 123", "卡号 <number>"),
        ];
        for (input, want) in cases {
            assert_eq!(mask(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_text_and_numbers_stay() {
        for text in [
            "这家酒店干净整洁，服务也很热情，下次还会再来",
            "用了2年，1999元买的，5星好评",
            "2026-11-28 到货，电池3000mAh",
            "评分 9.5 分，排名第 12",
            "订单号 12345678",
        ] {
            assert_eq!(mask(text), text);
            assert!(
                matches!(mask(text), std::borrow::Cow::Borrowed(_)),
                "{text}"
            );
        }
    }
}
