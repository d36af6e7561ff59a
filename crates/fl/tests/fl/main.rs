//! The aggregator and the worker in one process over loopback HTTP: the
//! protocol's contract, equivalence with central training, and strategies.

mod common;
mod equivalence;
mod protocol;
mod strategies;
