//! Keeping the evaluation split out of training: a feedback text that is an
//! evaluation text in disguise (a space or punctuation added, full-width
//! letters, a zero-width character, one character changed, a tail appended)
//! must not be trained on, or the promotion gate would judge a model on
//! answers it was shown. The split is public and fixed, so this is the one
//! defence against training on it.
//!
//! Texts are compared after [`fold`] (NFKC, lower case, letters and digits
//! only) as sets of character bigrams: a feedback text is held out when its
//! folded form equals an evaluation text's, when the two bigram sets have a
//! Jaccard similarity of at least [`JACCARD`], or when one of them holds at
//! least [`CONTAINMENT`] of the other's bigrams (and that other has at least
//! [`MIN_CONTAINED`] of them: short phrases are common to many comments). An
//! inverted index from bigram to evaluation texts keeps a lookup to the texts
//! that share a bigram at all.

use std::collections::{HashMap, HashSet};

use unicode_normalization::UnicodeNormalization;

/// Bigram-set Jaccard similarity from which two texts are the same text.
/// One changed character in a ten-character text still scores 7/11.
pub const JACCARD: f64 = 0.6;

/// Share of the smaller text's bigrams found in the other from which the
/// smaller one counts as contained in it (an evaluation text with a tail).
pub const CONTAINMENT: f64 = 0.8;

/// Bigrams the smaller text needs before containment counts: a shorter one
/// is a stock phrase ("有宾至如归的感觉") that many different comments share.
pub const MIN_CONTAINED: usize = 12;

/// `text` as compared: NFKC (full-width letters, compatibility ideographs,
/// ligatures), lower case, and only letters and digits, so spacing,
/// punctuation, symbols and invisible characters make no difference.
pub fn fold(text: &str) -> String {
    text.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The distinct character bigrams of folded text, sorted; a one-character
/// text is its own shingle. A bigram is its two code points side by side,
/// so there are no collisions.
fn shingles(folded: &str) -> Vec<u64> {
    let chars: Vec<u64> = folded.chars().map(u64::from).collect();
    let mut out: Vec<u64> = match chars.as_slice() {
        [] => Vec::new(),
        // No code point reaches 2^21, so this cannot be any bigram.
        [only] => vec![(only << 32) | 0xFFFF_FFFF],
        _ => chars.windows(2).map(|w| (w[0] << 32) | w[1]).collect(),
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// The evaluation texts, indexed for near-duplicate lookups.
pub struct HeldOut {
    exact: HashSet<String>,
    shingles: Vec<Vec<u64>>,
    index: HashMap<u64, Vec<u32>>,
}

impl HeldOut {
    /// Indexes `texts` (the evaluation split).
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut exact = HashSet::new();
        let mut sets = Vec::new();
        let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
        for text in texts {
            let folded = fold(text);
            let set = shingles(&folded);
            // Beyond u32::MAX texts the index stops growing; no split is that big.
            let Ok(id) = u32::try_from(sets.len()) else {
                break;
            };
            for s in &set {
                index.entry(*s).or_default().push(id);
            }
            sets.push(set);
            exact.insert(folded);
        }
        Self {
            exact,
            shingles: sets,
            index,
        }
    }

    /// Whether `text` is, or nearly is, one of the evaluation texts.
    pub fn contains(&self, text: &str) -> bool {
        let folded = fold(text);
        if self.exact.contains(&folded) {
            return true;
        }
        let mine = shingles(&folded);
        if mine.is_empty() {
            return false;
        }
        // Counts per evaluation text in a flat array: cheaper than a map for
        // the few thousand texts of a split.
        let mut shared = vec![0usize; self.shingles.len()];
        for s in &mine {
            for id in self.index.get(s).into_iter().flatten() {
                if let Some(n) = shared.get_mut(*id as usize) {
                    *n += 1;
                }
            }
        }
        shared
            .iter()
            .zip(&self.shingles)
            .any(|(&common, theirs)| common > 0 && similar(mine.len(), theirs.len(), common))
    }
}

/// Whether two bigram sets of sizes `a` and `b` with `common` bigrams in
/// common are the same text, by [`JACCARD`] or [`CONTAINMENT`].
fn similar(a: usize, b: usize, common: usize) -> bool {
    let ratio = |n: usize, d: usize| n as f64 / d.max(1) as f64;
    let union = (a + b).saturating_sub(common);
    let smaller = a.min(b);
    ratio(common, union) >= JACCARD
        || (smaller >= MIN_CONTAINED && ratio(common, smaller) >= CONTAINMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_width_case_spacing_punctuation_and_invisibles() {
        assert_eq!(fold("ＡＢＣ！ a\u{200b}b，c。"), "abcabc");
        // A CJK compatibility ideograph is its unified twin.
        assert_eq!(fold("\u{F900}"), "\u{8C48}");
        assert_eq!(fold(" \t！？"), "");
    }

    #[test]
    fn near_duplicates_are_found_and_other_texts_are_not() {
        let held = HeldOut::new(["这家店的服务态度非常好，下次还会再来", "好"]);
        assert!(held.contains("这家店的服务态度非常好下次还会再来!"));
        assert!(held.contains("这家店的服务态度非常棒，下次还会再来"));
        assert!(held.contains("这家店的服务态度非常好，下次还会再来。五星好评，推荐给大家"));
        assert!(held.contains("好！"));
        assert!(!held.contains("好吃"));
        assert!(!held.contains("服务态度非常好"));
        assert!(!held.contains("物流很快，包装完好，下次还会再来"));
        assert!(!held.contains("！！！"));
    }
}
