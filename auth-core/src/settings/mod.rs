//! Settings: each crate owns a `Deserialize` settings type with a `build()`, and a
//! program's file composes them (as sqlx's backends own their options).
//!
//! This module holds what every settings type shares: [`duration`] for `"60s"` values and
//! [`Invalid`] for a `build()` that refuses a value, naming its key.

pub mod duration;
mod invalid;

pub use invalid::Invalid;
