//! The feedback loop's labeler against real peers on loopback: the Chat
//! Completions client, and the labeler over SQLite and MariaDB.

mod feedback;
mod llm;
