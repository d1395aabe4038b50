//! What the directory stores for one user under `user/<name>`.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::authz::Role;
use crate::error::AccountError;

/// An account's administrative state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Usable.
    #[default]
    Active,
    /// Disabled by an administrator (`authctl user disable`).
    Disabled,
    /// Locked.
    Locked,
    /// Soft-deleted: treated exactly like an unknown user.
    Deleted,
}

/// What is stored for one user: the account (status, validity, roles, scopes, where it
/// may log in from) and the password verifiers of auth-password. Wallet secrets, API
/// keys and mapped identities live under their own keys (see [`super::Directory`]).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2 PHC string or legacy bcrypt hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// PostgreSQL-format SCRAM-SHA-256 verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram: Option<String>,
    /// Account status.
    #[serde(default)]
    pub status: UserStatus,
    /// When the password stops being accepted (seconds since the Unix epoch); other
    /// methods are unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_expires: Option<u64>,
    /// When the account stops being usable by any method (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<u64>,
    /// Roles. An unknown role name makes the record unreadable rather than dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// A system account (local maintenance): refused from other machines unless
    /// `remote_login` is set, and then only with a password.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
    /// Whether a system account may log in from another machine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote_login: bool,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[REDACTED]"),
            )
            .field("scram", &self.scram.as_ref().map(|_| "[REDACTED]"))
            .field("status", &self.status)
            .field("password_expires", &self.password_expires)
            .field("valid_until", &self.valid_until)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .field("system", &self.system)
            .field("remote_login", &self.remote_login)
            .finish()
    }
}

/// Seconds since the Unix epoch as a time.
pub(crate) fn epoch_seconds(at: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(at)
}

/// Why an account in `status` valid until `valid_until` may not log in at `now`: the
/// wording every refusal of the account stage and of the password methods shares.
pub(crate) fn state_refusal(
    name: &str,
    status: UserStatus,
    valid_until: Option<SystemTime>,
    now: SystemTime,
) -> Option<(AccountError, String)> {
    match status {
        UserStatus::Active => {}
        UserStatus::Disabled | UserStatus::Deleted => {
            return Some((
                AccountError::Disabled,
                format!("account `{name}` is disabled"),
            ));
        }
        UserStatus::Locked => {
            return Some((AccountError::Locked, format!("account `{name}` is locked")));
        }
    }
    let until = valid_until.filter(|until| now >= *until)?;
    let at = humantime::format_rfc3339_seconds(until);
    Some((
        AccountError::Expired,
        format!("account `{name}` expired at {at}"),
    ))
}

impl UserRecord {
    /// Why `name` may not log in with a password at `now`, with the audit detail: the
    /// account's state and validity, then the password's expiry.
    pub fn refusal(&self, name: &str, now: SystemTime) -> Option<(AccountError, String)> {
        state_refusal(name, self.status, self.valid_until.map(epoch_seconds), now).or_else(|| {
            let at = self
                .password_expires
                .map(epoch_seconds)
                .filter(|at| now >= *at)?;
            let at = humantime::format_rfc3339_seconds(at);
            Some((
                AccountError::Expired,
                format!("the password of `{name}` expired at {at}"),
            ))
        })
    }

    /// Whether the account's validity has ended at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.valid_until.is_some_and(|at| now >= epoch_seconds(at))
    }

    /// Whether the password has expired at `now`.
    pub fn password_expired(&self, now: SystemTime) -> bool {
        self.password_expires
            .is_some_and(|at| now >= epoch_seconds(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_the_previous_layout_read_and_unknown_roles_do_not() {
        let old: UserRecord = serde_json::from_str(
            r#"{"password_hash":"$argon2id$x","status":"active","roles":["DBA","user"]}"#,
        )
        .unwrap();
        assert_eq!(old.roles, vec![Role::Dba, Role::User]);
        assert!(!old.system && old.valid_until.is_none());
        let bad = serde_json::from_str::<UserRecord>(r#"{"roles":["root"]}"#).unwrap_err();
        assert!(bad.to_string().contains("unknown role `root`"), "{bad}");
    }

    #[test]
    fn validity_and_password_expiry_are_separate() {
        let r = UserRecord {
            valid_until: Some(100),
            ..UserRecord::default()
        };
        assert!(!r.expired(epoch_seconds(99)));
        assert!(r.expired(epoch_seconds(100)));
        assert_eq!(
            r.refusal("ann", epoch_seconds(100)),
            Some((
                AccountError::Expired,
                "account `ann` expired at 1970-01-01T00:01:40Z".to_owned()
            ))
        );
        let password = UserRecord {
            password_expires: Some(50),
            ..UserRecord::default()
        };
        assert_eq!(
            password.refusal("ann", epoch_seconds(60)).map(|(s, _)| s),
            Some(AccountError::Expired)
        );
        assert_eq!(password.refusal("ann", epoch_seconds(40)), None);
        let debug = format!(
            "{:?}",
            UserRecord {
                password_hash: Some("$argon2id$secret".into()),
                ..r
            }
        );
        assert!(!debug.contains("secret"), "{debug}");
    }
}
