//! One module per subcommand.

pub mod admin;
pub mod aggregator;
pub mod blog;
pub mod eval;
pub mod fl;
pub mod infer;
pub mod models;
pub mod orchestrator;
pub mod predict;
pub mod train;
pub mod up;
pub mod worker;

use std::path::Path;

use anyhow::Result;
use bloginfer_model::data::{self, Example};
use bloginfer_model::metrics::Metrics;

/// Labelled data from `path`, or the bundled corpus's fixed validation split.
pub fn eval_data(path: Option<&Path>) -> Result<Vec<Example>> {
    match path {
        Some(p) => Ok(data::read_tsv(p)?),
        None => Ok(data::split(
            data::bundled_corpus(),
            data::VALIDATION_FRACTION,
            data::VALIDATION_SEED,
        )
        .1),
    }
}

/// The metrics as a readable table.
pub fn metrics_table(m: &Metrics) -> String {
    let mut s = format!(
        "accuracy  {:.4}   macro-F1  {:.4}   ({} examples)\n\n",
        m.accuracy, m.macro_f1, m.total
    );
    s += &format!(
        "{:<10} {:>9} {:>9} {:>9} {:>9}\n",
        "class", "precision", "recall", "f1", "support"
    );
    for c in &m.per_class {
        s += &format!(
            "{:<10} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
    s += "\nconfusion (rows: actual, columns: predicted)\n";
    s += &format!("{:<10}", "");
    for c in &m.per_class {
        s += &format!(" {:>9}", c.label);
    }
    s += "\n";
    for (c, row) in m.per_class.iter().zip(&m.confusion) {
        s += &format!("{:<10}", c.label);
        for v in row {
            s += &format!(" {v:>9}");
        }
        s += "\n";
    }
    s
}
