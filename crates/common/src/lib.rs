//! The few helpers that every layer of bloginfer needs and that have no
//! better home: the wall clock as stored timestamps, files written atomically
//! or privately, random tokens compared in constant time, and locks that
//! survive a panicking holder. It sits below every other crate (the model
//! crate writes checkpoints with it), so it depends on nothing of ours and on
//! no async runtime.

#![warn(missing_docs)]

pub mod clock;
pub mod files;
pub mod sync;
pub mod token;

pub use clock::{compact_utc_stamp, iso_millis, now_millis};
pub use files::{write_atomic, write_private};
pub use sync::{lock, read, write};
pub use token::{constant_time_eq, hex, random_hex};
