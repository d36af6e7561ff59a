//! Text to token ids.

use crate::{normalize, Granularity, Tokenizer, Vocab};

/// Turns text into at most `max_len` token ids with a fixed tokenizer and vocabulary.
#[derive(Debug, Clone)]
pub struct Encoder {
    tokenizer: Tokenizer,
    vocab: Vocab,
    max_len: usize,
    granularity: Granularity,
}

impl Encoder {
    /// An encoder keeping the first `max_len` tokens of each text (`max_len` >= 1).
    pub fn new(vocab: Vocab, max_len: usize) -> Self {
        Self {
            tokenizer: Tokenizer::shared(),
            vocab,
            max_len: max_len.max(1),
            granularity: Granularity::Word,
        }
    }

    /// The same encoder producing tokens at `granularity`.
    pub fn with_granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// The vocabulary ids map into.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The most tokens an encoding keeps: the first `max_len` of each text.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Ids of the first `max_len` tokens; empty when the text has no tokens.
    /// Unknown tokens map to `<unk>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = normalize(text);
        let mut ids = Vec::with_capacity(self.max_len.min(normalized.len()));
        // Segmenting past the truncation point would be wasted work, but jieba needs
        // context to segment the boundary word correctly; a cut at 4 bytes per kept
        // token leaves ample context for Chinese (3 bytes a character).
        let budget = self.max_len.saturating_mul(8);
        let slice = if normalized.len() > budget {
            let mut end = budget;
            while !normalized.is_char_boundary(end) {
                end -= 1;
            }
            &normalized[..end]
        } else {
            normalized.as_str()
        };
        self.tokenizer
            .for_each_token(slice, self.granularity, |word| {
                if ids.len() < self.max_len {
                    ids.push(self.vocab.id(word));
                }
            });
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{VocabBuilder, UNK_ID};

    fn encoder(max_len: usize) -> Encoder {
        let mut b = VocabBuilder::new();
        b.add_all(&Tokenizer::shared().tokenize("酒店 服务 很好 价格 便宜"));
        Encoder::new(b.build(1, 100), max_len)
    }

    #[test]
    fn known_words_get_ids_and_unknown_get_unk() {
        let ids = encoder(16).encode("酒店 价格 qwerty");
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids[0] > UNK_ID && ids[1] > UNK_ID);
        assert_eq!(ids[2], UNK_ID);
    }

    #[test]
    fn long_text_is_truncated() {
        let e = encoder(5);
        let ids = e.encode(&"酒店很好，".repeat(1_000));
        assert_eq!(ids.len(), 5);
        assert_eq!(ids, e.encode(&"酒店很好，".repeat(3)));
    }

    #[test]
    fn truncated_prefix_matches_full_segmentation() {
        let e = encoder(64);
        let text = "服务很好价格便宜酒店".repeat(200);
        let full: Vec<u32> = Tokenizer::shared()
            .tokenize(&text)
            .iter()
            .take(64)
            .map(|w| e.vocab().id(w))
            .collect();
        assert_eq!(e.encode(&text), full);
    }

    #[test]
    fn empty_text_has_no_ids() {
        assert!(encoder(8).encode("   ").is_empty());
    }
}
