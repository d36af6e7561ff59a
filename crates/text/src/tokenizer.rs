//! jieba word segmentation.

use std::sync::{Arc, OnceLock};

use jieba_rs::Jieba;

use crate::normalize;

/// Word segmenter: [`normalize`] followed by jieba (with its HMM for unknown words).
///
/// Loading jieba's dictionary takes a noticeable fraction of a second, so one
/// dictionary is shared by every tokenizer in the process; cloning is cheap.
#[derive(Clone)]
pub struct Tokenizer {
    jieba: Arc<Jieba>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").finish_non_exhaustive()
    }
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::shared()
    }
}

impl Tokenizer {
    /// The process-wide tokenizer with jieba's default dictionary.
    pub fn shared() -> Self {
        static JIEBA: OnceLock<Arc<Jieba>> = OnceLock::new();
        let jieba = JIEBA.get_or_init(|| Arc::new(Jieba::new())).clone();
        Self { jieba }
    }

    /// Normalises `text` and splits it into words; whitespace is not a token.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let normalized = normalize(text);
        let mut words = Vec::new();
        self.for_each_word(&normalized, |word| words.push(word.to_owned()));
        words
    }

    /// Calls `f` with each word of already-normalised text, without allocating per word.
    pub fn for_each_word(&self, normalized: &str, mut f: impl FnMut(&str)) {
        for token in self.jieba.cut(normalized, true) {
            if !token.word.trim().is_empty() {
                f(token.word);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tokenizer;

    #[test]
    fn segments_chinese_into_words() {
        let words = Tokenizer::shared().tokenize("这个酒店的服务非常好");
        assert!(words.contains(&"酒店".to_string()), "{words:?}");
        assert!(words.contains(&"非常".to_string()), "{words:?}");
        assert_eq!(words.concat(), "这个酒店的服务非常好");
    }

    #[test]
    fn is_deterministic() {
        let t = Tokenizer::shared();
        let text = "房间很大，但是隔音太差了！Wi-Fi 也很慢。";
        let first = t.tokenize(text);
        for _ in 0..5 {
            assert_eq!(t.tokenize(text), first);
        }
    }

    #[test]
    fn empty_and_whitespace_give_no_tokens() {
        let t = Tokenizer::shared();
        assert!(t.tokenize("").is_empty());
        assert!(t.tokenize(" \t\n\u{3000}").is_empty());
    }

    #[test]
    fn latin_only_is_lower_cased_words() {
        let words = Tokenizer::shared().tokenize("GREAT Product");
        assert_eq!(words, vec!["great", "product"]);
    }

    #[test]
    fn emoji_survive_as_tokens() {
        let words = Tokenizer::shared().tokenize("好评😀😀");
        assert!(words.iter().any(|w| w.contains('😀')), "{words:?}");
    }

    #[test]
    fn very_long_input_is_segmented_completely() {
        let text = "物流很快，包装完好。".repeat(5_000);
        let words = Tokenizer::shared().tokenize(&text);
        assert!(words.len() >= 5_000 * 4);
        assert_eq!(words.concat(), text.replace('，', ",").replace('。', "。"));
    }
}
