//! Token vocabulary built from training data.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Padding token; always id 0 so zero-initialised buffers are valid padding.
pub const PAD_TOKEN: &str = "<pad>";
/// Out-of-vocabulary token; always id 1.
pub const UNK_TOKEN: &str = "<unk>";
/// Id of [`PAD_TOKEN`].
pub const PAD_ID: u32 = 0;
/// Id of [`UNK_TOKEN`].
pub const UNK_ID: u32 = 1;

/// Errors from restoring a vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// The token list does not start with `<pad>`, `<unk>`.
    #[error("vocabulary must start with {PAD_TOKEN} and {UNK_TOKEN}")]
    MissingSpecialTokens,
    /// A token occurs twice, so ids would be ambiguous.
    #[error("vocabulary lists token {0:?} more than once")]
    DuplicateToken(String),
    /// More tokens than u32 ids can number.
    #[error("vocabulary of {0} tokens has more than u32 ids")]
    TooLarge(usize),
}

/// A fixed mapping from tokens to ids; id order is the order of [`Vocab::tokens`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Vocab {
    tokens: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Rebuilds a vocabulary from its token list (as saved in a checkpoint).
    pub fn from_tokens(tokens: Vec<String>) -> Result<Self, VocabError> {
        if tokens.len() < 2 || tokens[0] != PAD_TOKEN || tokens[1] != UNK_TOKEN {
            return Err(VocabError::MissingSpecialTokens);
        }
        let mut index = HashMap::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| VocabError::TooLarge(tokens.len()))?;
            if index.insert(token.clone(), id).is_some() {
                return Err(VocabError::DuplicateToken(token.clone()));
            }
        }
        Ok(Self { tokens, index })
    }

    /// Number of ids, including the two special tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: a vocabulary holds at least the special tokens.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The id of `token`, or [`UNK_ID`].
    pub fn id(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(UNK_ID)
    }

    /// The token of `id`, if the id exists.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// All tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}

impl TryFrom<Vec<String>> for Vocab {
    type Error = VocabError;
    fn try_from(tokens: Vec<String>) -> Result<Self, Self::Error> {
        Self::from_tokens(tokens)
    }
}

impl From<Vocab> for Vec<String> {
    fn from(vocab: Vocab) -> Self {
        vocab.tokens
    }
}

/// Counts tokens over a corpus, then keeps the frequent ones.
#[derive(Debug, Default, Clone)]
pub struct VocabBuilder {
    counts: HashMap<String, u64>,
}

impl VocabBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one occurrence of `token`.
    pub fn add(&mut self, token: &str) {
        if let Some(count) = self.counts.get_mut(token) {
            *count += 1;
        } else {
            self.counts.insert(token.to_owned(), 1);
        }
    }

    /// Counts every token of `tokens`.
    pub fn add_all<S: AsRef<str>>(&mut self, tokens: &[S]) {
        for token in tokens {
            self.add(token.as_ref());
        }
    }

    /// Keeps tokens seen at least `min_count` times, the most frequent first, at
    /// most `max_size` ids in all (special tokens included). Ties are broken by the
    /// token text so the result never depends on hash order.
    pub fn build(&self, min_count: u64, max_size: usize) -> Vocab {
        let mut kept: Vec<(&String, u64)> = self
            .counts
            .iter()
            .filter(|(token, &count)| {
                count >= min_count.max(1)
                    && token.as_str() != PAD_TOKEN
                    && token.as_str() != UNK_TOKEN
            })
            .map(|(token, &count)| (token, count))
            .collect();
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let room = max_size.max(2) - 2;
        let tokens = [PAD_TOKEN.to_owned(), UNK_TOKEN.to_owned()]
            .into_iter()
            .chain(kept.into_iter().take(room).map(|(t, _)| t.clone()))
            .collect();
        Vocab::from_tokens(tokens)
            .expect("builder output always has special tokens and unique tokens")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(words: &[&str]) -> VocabBuilder {
        let mut b = VocabBuilder::new();
        b.add_all(words);
        b
    }

    #[test]
    fn special_tokens_come_first() {
        let v = builder(&["好", "好", "差"]).build(1, 100);
        assert_eq!(
            v.tokens()[..2],
            [PAD_TOKEN.to_string(), UNK_TOKEN.to_string()]
        );
        assert_eq!(v.id("好"), 2);
        assert_eq!(v.id("没见过"), UNK_ID);
    }

    #[test]
    fn min_count_and_max_size_are_respected() {
        let b = builder(&["a", "a", "a", "b", "b", "c"]);
        assert_eq!(b.build(2, 100).len(), 4);
        assert_eq!(b.build(1, 3).tokens(), ["<pad>", "<unk>", "a"]);
    }

    #[test]
    fn ties_are_ordered_by_text() {
        let v = builder(&["z", "y", "x"]).build(1, 100);
        assert_eq!(v.tokens()[2..], ["x".to_string(), "y".into(), "z".into()]);
    }

    #[test]
    fn serde_round_trip_keeps_ids() {
        let v = builder(&["好", "差", "差"]).build(1, 10);
        let json = serde_json::to_string(&v).unwrap();
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.id("差"), v.id("差"));
    }

    #[test]
    fn restoring_a_bad_list_fails() {
        assert!(matches!(
            Vocab::from_tokens(vec!["a".into()]),
            Err(VocabError::MissingSpecialTokens)
        ));
        let dup = vec!["<pad>".into(), "<unk>".into(), "a".into(), "a".into()];
        assert!(matches!(
            Vocab::from_tokens(dup),
            Err(VocabError::DuplicateToken(_))
        ));
    }
}
