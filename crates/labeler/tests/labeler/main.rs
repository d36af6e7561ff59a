//! The feedback loop's labeler against real peers on loopback: the Chat
//! Completions client, and the labeler over SQLite and MariaDB.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

mod corrections;
mod feedback;
mod injection;
mod llm;
mod supervision;
