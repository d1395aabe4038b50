//! Settings: each crate owns a `Deserialize` settings type with a `build()`, and a
//! program's file composes them (as sqlx's backends own their options).
//!
//! - [`SettingsSource`] reads a TOML file with the environment laid over it
//!   (`AUTH_RATE_LIMIT__USER_FAILURES=10`), and [`Settings`] hands each section to the
//!   type that owns it, so a problem names its line or its variable, and every section's
//!   problems are found at once ([`ConfigError`]).
//! - auth-core's own sections: [`RuleSpec`] (pg_hba's vocabulary), [`RateLimitSettings`],
//!   [`IdentityMapSpec`], [`ClientCertificateSettings`], [`AuditSettings`].
//! - [`duration`] for `"60s"` values, and [`Invalid`] for a `build()` that refuses a value,
//!   naming its key.

pub mod duration;
mod fields;
mod invalid;
mod problem;
mod source;

pub use fields::fields_of;
pub use invalid::Invalid;
pub use problem::{ConfigError, ConfigProblem, Origin};
pub use source::{Element, Settings, SettingsSource};
mod audit;
mod certificates;
mod identity_map;
mod rate_limit;
mod rule;

pub use audit::AuditSettings;
pub use certificates::ClientCertificateSettings;
pub use identity_map::IdentityMapSpec;
pub use rate_limit::RateLimitSettings;
pub use rule::RuleSpec;
