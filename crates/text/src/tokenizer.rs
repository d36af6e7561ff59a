//! jieba word segmentation.

use std::sync::{Arc, OnceLock};

use jieba_rs::Jieba;
use serde::{Deserialize, Serialize};

use crate::normalize;

/// What the model's tokens are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Words as jieba segments the text (the default).
    #[default]
    Word,
    /// Single Chinese characters (other words stay whole).
    Char,
    /// Each jieba word followed by its characters when it has several: rare
    /// words still share evidence through their characters.
    Mixed,
}

impl std::fmt::Display for Granularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Granularity::Word => "word",
            Granularity::Char => "char",
            Granularity::Mixed => "mixed",
        })
    }
}

impl std::str::FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "word" => Ok(Self::Word),
            "char" => Ok(Self::Char),
            "mixed" => Ok(Self::Mixed),
            other => Err(format!(
                "unknown granularity {other:?} (expected word, char or mixed)"
            )),
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

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

    /// Calls `f` with each token of already-normalised text at `granularity`.
    pub fn for_each_token(
        &self,
        normalized: &str,
        granularity: Granularity,
        mut f: impl FnMut(&str),
    ) {
        self.for_each_word(normalized, |word| {
            let cjk_word = word.chars().any(is_cjk);
            let several = word.chars().nth(1).is_some();
            match granularity {
                Granularity::Word => f(word),
                Granularity::Char | Granularity::Mixed if cjk_word && several => {
                    if granularity == Granularity::Mixed {
                        f(word);
                    }
                    for (i, c) in word.char_indices() {
                        f(&word[i..i + c.len_utf8()]);
                    }
                }
                _ => f(word),
            }
        });
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
    use super::{Granularity, Tokenizer};

    #[test]
    fn segments_chinese_into_words() {
        let words = Tokenizer::shared().tokenize("这个酒店的服务非常好");
        assert!(words.contains(&"酒店".to_string()), "{words:?}");
        assert!(words.contains(&"非常".to_string()), "{words:?}");
        assert_eq!(words.concat(), "这个酒店的服务非常好");
    }

    #[test]
    fn granularities_split_chinese_words() {
        let t = Tokenizer::shared();
        let collect = |g| {
            let mut out = Vec::new();
            t.for_each_token("酒店 ok", g, |w| out.push(w.to_string()));
            out
        };
        assert_eq!(collect(Granularity::Word), ["酒店", "ok"]);
        assert_eq!(collect(Granularity::Char), ["酒", "店", "ok"]);
        assert_eq!(collect(Granularity::Mixed), ["酒店", "酒", "店", "ok"]);
        assert_eq!("mixed".parse::<Granularity>(), Ok(Granularity::Mixed));
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
        assert_eq!(words.concat(), text.replace('，', ","));
    }
}
