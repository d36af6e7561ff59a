//! The aggregator and the worker in one process over loopback HTTP: the
//! protocol's contract, equivalence with central training, and strategies.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

mod common;
mod equivalence;
mod hostile;
mod protocol;
mod secure;
mod strategies;
