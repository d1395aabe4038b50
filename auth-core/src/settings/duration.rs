//! Durations written the way people say them (`"60s"`, `"750ms"`, `"1h 30m"`), for
//! `#[serde(with = "auth_core::settings::duration")]` on a `Duration` field.
//!
//! ```
//! use std::time::Duration;
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Section {
//!     #[serde(with = "auth_core::settings::duration")]
//!     timeout: Duration,
//! }
//! let s: Section = toml::from_str("timeout = \"1m 30s\"").unwrap();
//! assert_eq!(s.timeout, Duration::from_secs(90));
//! assert_eq!(toml::to_string(&s).unwrap().trim(), "timeout = \"1m 30s\"");
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Reads `"60s"`; anything else is refused with an example of the format.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Writes the duration as [`deserialize`] reads it.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// `text` as a duration, or a message that shows the format.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!("`{text}` is not a duration; write it like \"60s\", \"750ms\" or \"1h 30m\"")
    })
}

/// The same for `Option<Duration>`: `#[serde(default, with = "auth_core::settings::duration::option")]`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads an optional `"60s"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Writes it back (a `None` writes nothing when the field also has
    /// `skip_serializing_if = "Option::is_none"`).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
