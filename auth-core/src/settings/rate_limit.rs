//! The rate limiter's settings as a file writes them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::rate_limit::LimitSettings;

/// The `[rate_limit]` section: [`LimitSettings`] with `enabled`, every field defaulting
/// to [`LimitSettings::default`]'s.
///
/// ```
/// use auth_core::settings::RateLimitSettings;
///
/// let s: RateLimitSettings = toml::from_str("user_failures = 10\nlockout = \"2m\"").unwrap();
/// let limits = s.build().unwrap().expect("enabled by default");
/// assert_eq!((limits.user_failures, limits.address_failures), (10, 20));
/// let off: RateLimitSettings = toml::from_str("enabled = false").unwrap();
/// assert!(off.build().unwrap().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Whether failures are counted at all (default true).
    pub enabled: bool,
    /// Failures per user within `window` that lock the user (default 5).
    pub user_failures: u32,
    /// Failures per client address within `window` that lock the address (default 20).
    pub address_failures: u32,
    /// The window failures are counted in (default `5m`).
    #[serde(with = "super::duration")]
    pub window: Duration,
    /// The first lockout (default `1m`); each further one doubles it.
    #[serde(with = "super::duration")]
    pub lockout: Duration,
    /// The longest lockout (default `1h`).
    #[serde(with = "super::duration")]
    pub max_lockout: Duration,
    /// Whether loopback clients are never limited (default true).
    pub exempt_localhost: bool,
    /// Attempts running at once from one address (default 64); more are refused as busy.
    pub max_running_per_address: u32,
    /// Attempts that may wait for one user's verification slot (default 256).
    pub max_waiting_per_user: u32,
    /// How long a success makes its network known for the user, so a lockout others cause
    /// does not lock it out (default `30days`).
    #[serde(with = "super::duration")]
    pub known_for: Duration,
    /// Networks remembered per user (default 8).
    pub max_known_per_user: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let d = LimitSettings::default();
        Self {
            enabled: true,
            user_failures: d.user_failures,
            address_failures: d.address_failures,
            window: d.window,
            lockout: d.lockout,
            max_lockout: d.max_lockout,
            exempt_localhost: d.exempt_localhost,
            max_running_per_address: d.max_running_per_address,
            max_waiting_per_user: d.max_waiting_per_user,
            known_for: d.known_for,
            max_known_per_user: d.max_known_per_user,
        }
    }
}

impl RateLimitSettings {
    /// The limits, `None` when `enabled = false`, or every value that cannot work.
    pub fn build(&self) -> Result<Option<LimitSettings>, Vec<Invalid>> {
        let mut problems = Vec::new();
        if self.user_failures == 0 {
            problems.push(
                Invalid::new("user_failures", "a limit of 0 would lock everyone out")
                    .hint("use a positive number (default 5)"),
            );
        }
        if self.address_failures == 0 {
            problems.push(
                Invalid::new("address_failures", "a limit of 0 would lock everyone out")
                    .hint("use a positive number (default 20)"),
            );
        }
        if self.max_running_per_address < self.user_failures {
            problems.push(
                Invalid::new(
                    "max_running_per_address",
                    "fewer running attempts per address than user_failures would refuse a \
                     pool's correct logins",
                )
                .hint("use at least user_failures (default 64)"),
            );
        }
        for (key, d) in [("window", self.window), ("lockout", self.lockout)] {
            if d.is_zero() {
                problems.push(
                    Invalid::new(key, "must be longer than 0")
                        .hint("for example window = \"5m\", lockout = \"1m\""),
                );
            }
        }
        if self.max_lockout < self.lockout {
            problems.push(
                Invalid::new("max_lockout", "shorter than lockout")
                    .hint("use at least lockout (default 1h)"),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(LimitSettings {
            user_failures: self.user_failures,
            address_failures: self.address_failures,
            window: self.window,
            lockout: self.lockout,
            max_lockout: self.max_lockout,
            exempt_localhost: self.exempt_localhost,
            max_running_per_address: self.max_running_per_address,
            max_waiting_per_user: self.max_waiting_per_user,
            known_for: self.known_for,
            max_known_per_user: self.max_known_per_user,
            ..LimitSettings::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_bad_values_name_their_key() {
        let d = RateLimitSettings::default();
        let text = toml::to_string(&d).unwrap();
        assert_eq!(toml::from_str::<RateLimitSettings>(&text).unwrap(), d);
        assert_eq!(d.build().unwrap(), Some(LimitSettings::default()));
        let bad: RateLimitSettings =
            toml::from_str("user_failures = 0\nmax_lockout = \"1s\"").unwrap();
        let keys: Vec<_> = bad
            .build()
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["user_failures", "max_lockout"]);
    }
}
