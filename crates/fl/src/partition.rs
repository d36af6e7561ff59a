//! Splitting a dataset into worker shards: IID or label-skewed (Dirichlet),
//! each example in exactly one shard, chosen through its stable key so the
//! same data always gives the same shards.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use bloginfer_model::data::{stable_key, Example};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};

use crate::error::{FlError, Result};

/// How examples are spread over shards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Partition {
    /// Uniformly at random: every shard sees the same label mix.
    Iid,
    /// Per label, shard shares drawn from Dirichlet(alpha): small alpha gives
    /// each shard a skewed label mix, as real users' data would be.
    Dirichlet {
        /// Concentration (> 0): the smaller, the more skewed each shard's label mix.
        alpha: f64,
    },
}

impl FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "iid" => Ok(Self::Iid),
            Some(("dirichlet", a)) => match a.parse::<f64>() {
                Ok(alpha) if alpha > 0.0 && alpha.is_finite() => Ok(Self::Dirichlet { alpha }),
                _ => Err(format!("dirichlet needs a positive alpha, got {a:?}")),
            },
            _ => Err(format!(
                "unknown partition {s:?} (expected iid or dirichlet:ALPHA)"
            )),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Iid => f.write_str("iid"),
            Self::Dirichlet { alpha } => write!(f, "dirichlet:{alpha}"),
        }
    }
}

/// Splits `examples` into `n` non-empty shards.
pub fn partition(
    examples: &[Example],
    n: usize,
    how: Partition,
    seed: u64,
) -> Result<Vec<Vec<Example>>> {
    if n == 0 {
        return Err(FlError::Config("need at least one shard".into()));
    }
    if examples.len() < n {
        return Err(FlError::Config(format!(
            "{} examples cannot fill {n} shards",
            examples.len()
        )));
    }
    let mut keyed: Vec<(u64, &Example)> = examples
        .iter()
        .map(|e| (stable_key(seed, &e.text), e))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    let mut shards = vec![Vec::new(); n];
    match how {
        Partition::Iid => {
            for (i, (_, e)) in keyed.into_iter().enumerate() {
                shards[i % n].push(e.clone());
            }
        }
        Partition::Dirichlet { alpha } => {
            let gamma = Gamma::new(alpha, 1.0).map_err(|e| FlError::Config(e.to_string()))?;
            let mut rng = StdRng::seed_from_u64(seed);
            let labels: std::collections::BTreeSet<u32> =
                examples.iter().map(|e| e.label).collect();
            // Redraw (a bounded number of times) until no shard is empty.
            for _attempt in 0..100 {
                shards.iter_mut().for_each(Vec::clear);
                for &label in &labels {
                    let members: Vec<&Example> = keyed
                        .iter()
                        .filter(|(_, e)| e.label == label)
                        .map(|(_, e)| *e)
                        .collect();
                    let draws: Vec<f64> =
                        (0..n).map(|_| gamma.sample(&mut rng).max(1e-12)).collect();
                    let total: f64 = draws.iter().sum();
                    let mut start = 0usize;
                    let mut cumulative = 0f64;
                    for (s, d) in draws.iter().enumerate() {
                        cumulative += d / total;
                        // The cumulative share is in [0, 1] (up to rounding), so
                        // its rounded product with the class size is a valid
                        // non-negative count.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let end = if s + 1 == n {
                            members.len()
                        } else {
                            ((cumulative * members.len() as f64).round() as usize)
                                .min(members.len())
                        };
                        shards[s]
                            .extend(members[start..end.max(start)].iter().map(|e| (*e).clone()));
                        start = end.max(start);
                    }
                }
                if shards.iter().all(|s| !s.is_empty()) {
                    return Ok(shards);
                }
            }
            return Err(FlError::Config(format!(
                "dirichlet:{alpha} keeps leaving a shard empty; use a larger alpha or fewer workers"
            )));
        }
    }
    Ok(shards)
}

/// Writes examples as `label<TAB>text` TSV (line breaks inside texts become spaces).
pub fn write_tsv(path: &Path, examples: &[Example]) -> Result<()> {
    let mut out = String::from("label\ttext\n");
    for e in examples {
        let text: String = e
            .text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        out.push_str(&format!("{}\t{}\n", e.label, text));
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| FlError::io(format!("cannot create {}", path.display()), e))?;
    file.write_all(out.as_bytes())
        .map_err(|e| FlError::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                label: u32::try_from(i % 2).unwrap(),
                text: format!("text number {i}"),
            })
            .collect()
    }

    #[test]
    fn every_example_lands_in_exactly_one_shard() {
        let data = examples(1000);
        for how in [Partition::Iid, Partition::Dirichlet { alpha: 0.5 }] {
            let shards = partition(&data, 3, how, 7).unwrap();
            let mut all: Vec<String> = shards.iter().flatten().map(|e| e.text.clone()).collect();
            all.sort();
            let mut expected: Vec<String> = data.iter().map(|e| e.text.clone()).collect();
            expected.sort();
            assert_eq!(all, expected, "{how}");
            assert!(shards.iter().all(|s| !s.is_empty()));
        }
    }

    #[test]
    fn iid_shards_are_balanced_and_dirichlet_ones_skewed() {
        let data = examples(2000);
        let share =
            |s: &Vec<Example>| s.iter().filter(|e| e.label == 1).count() as f64 / s.len() as f64;
        let iid = partition(&data, 2, Partition::Iid, 1).unwrap();
        assert!(iid
            .iter()
            .all(|s| (share(s) - 0.5).abs() < 0.05 && s.len() == 1000));
        let skewed = partition(&data, 2, Partition::Dirichlet { alpha: 0.1 }, 1).unwrap();
        assert!(skewed.iter().any(|s| (share(s) - 0.5).abs() > 0.1));
        assert_eq!(partition(&data, 2, Partition::Iid, 1).unwrap(), iid);
    }

    #[test]
    fn parses_partitions() {
        assert_eq!("iid".parse::<Partition>().unwrap(), Partition::Iid);
        assert_eq!(
            "dirichlet:0.5".parse::<Partition>().unwrap(),
            Partition::Dirichlet { alpha: 0.5 }
        );
        assert!("dirichlet:-1".parse::<Partition>().is_err());
        assert!("random".parse::<Partition>().is_err());
        assert!(partition(&examples(1), 2, Partition::Iid, 0).is_err());
    }
}
