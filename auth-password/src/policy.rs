//! The password policy, applied when a password is set (never when one is checked).

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};

/// The shortest password accepted, in characters.
pub const MIN_LEN: usize = 8;
/// The longest password accepted, in characters.
pub const MAX_LEN: usize = 1024;
/// The longest password in bytes (4 bytes per character at most): checked first, so a
/// 10 MB input is refused without looking at its characters.
pub const MAX_BYTES: usize = MAX_LEN * 4;

/// The 10,000 most common passwords (from the zxcvbn project's frequency list, MIT, see
/// `data/LICENSE-zxcvbn`), one per line, most common first.
const COMMON: &str = include_str!("../data/common-passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty()).collect())
}

/// Optional character-class rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Complexity {
    /// At least one lower-case letter.
    pub lower: bool,
    /// At least one upper-case letter.
    pub upper: bool,
    /// At least one digit.
    pub digit: bool,
    /// At least one character that is neither a letter nor a digit.
    pub symbol: bool,
}

/// What a new password must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (at least 1).
    pub min_len: usize,
    /// Maximum length in characters (at most [`MAX_LEN`]).
    pub max_len: usize,
    /// Refuse the 10,000 most common passwords (case-insensitive).
    pub block_common: bool,
    /// Refuse a password equal to the user name (case-insensitive).
    pub block_user_name: bool,
    /// Character-class rules, if any.
    pub complexity: Option<Complexity>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: MIN_LEN,
            max_len: MAX_LEN,
            block_common: true,
            block_user_name: true,
            complexity: None,
        }
    }
}

/// One rule a password broke, with what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// Too short.
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Too long.
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// On the common-passwords list.
    Common,
    /// Equal to the user name.
    SameAsUserName,
    /// Lacks a lower-case letter.
    NoLower,
    /// Lacks an upper-case letter.
    NoUpper,
    /// Lacks a digit.
    NoDigit,
    /// Lacks a symbol.
    NoSymbol,
    /// Contains a control character.
    ControlCharacter,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min } => write!(f, "use at least {min} characters"),
            Self::TooLong { max } => write!(f, "use at most {max} characters"),
            Self::Common => {
                f.write_str("choose a password that is not among the 10,000 most common ones")
            }
            Self::SameAsUserName => f.write_str("choose a password different from the user name"),
            Self::NoLower => f.write_str("add a lower-case letter"),
            Self::NoUpper => f.write_str("add an upper-case letter"),
            Self::NoDigit => f.write_str("add a digit"),
            Self::NoSymbol => f.write_str("add a character that is not a letter or digit"),
            Self::ControlCharacter => {
                f.write_str("remove control characters (tabs, newlines, ...)")
            }
        }
    }
}

/// A refused password, listing every rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WeakPassword {
    /// The rules broken.
    pub violations: Vec<Violation>,
}

impl fmt::Display for WeakPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("password refused: ")?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl WeakPassword {
    /// The client-visible error kind.
    pub fn error(&self) -> auth_core::Error {
        auth_core::Error::Credential(auth_core::CredentialError::WeakPassword)
    }
}

impl PasswordPolicy {
    /// No blocklist, no user-name rule, no complexity: only the length limits.
    pub fn length_only() -> Self {
        Self {
            block_common: false,
            block_user_name: false,
            ..Self::default()
        }
    }

    /// Checks a new `password` for `user`.
    pub fn check(&self, user: &str, password: &SecretString) -> Result<(), WeakPassword> {
        let pw = password.expose_secret();
        let max = self.max_len.clamp(1, MAX_LEN);
        // Byte length first: cheap, and bounds everything below.
        if pw.len() > max.saturating_mul(4).min(MAX_BYTES) {
            return Err(WeakPassword {
                violations: vec![Violation::TooLong { max }],
            });
        }
        let mut violations = Vec::new();
        let chars = pw.chars().count();
        if chars < self.min_len.max(1) {
            violations.push(Violation::TooShort {
                min: self.min_len.max(1),
            });
        }
        if chars > max {
            violations.push(Violation::TooLong { max });
        }
        if pw.chars().any(char::is_control) {
            violations.push(Violation::ControlCharacter);
        }
        if self.block_common && common().contains(pw.to_lowercase().as_str()) {
            violations.push(Violation::Common);
        }
        if self.block_user_name && !user.is_empty() && pw.to_lowercase() == user.to_lowercase() {
            violations.push(Violation::SameAsUserName);
        }
        if let Some(c) = self.complexity {
            for (wanted, present, v) in [
                (
                    c.lower,
                    pw.chars().any(char::is_lowercase),
                    Violation::NoLower,
                ),
                (
                    c.upper,
                    pw.chars().any(char::is_uppercase),
                    Violation::NoUpper,
                ),
                (
                    c.digit,
                    pw.chars().any(|ch| ch.is_ascii_digit()),
                    Violation::NoDigit,
                ),
                (
                    c.symbol,
                    pw.chars().any(|ch| !ch.is_alphanumeric()),
                    Violation::NoSymbol,
                ),
            ] {
                if wanted && !present {
                    violations.push(v);
                }
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(WeakPassword { violations })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn the_shipped_list_has_ten_thousand_entries() {
        assert_eq!(common().len(), 10_000);
        assert!(common().contains("password") && common().contains("123456"));
    }

    #[test]
    fn length_limits_in_characters() {
        let p = PasswordPolicy::length_only();
        assert_eq!(
            p.check("u", &s("short")).unwrap_err().violations,
            vec![Violation::TooShort { min: 8 }]
        );
        assert!(p.check("u", &s("eightchr")).is_ok());
        assert!(
            p.check("u", &s(&"ä".repeat(1024))).is_ok(),
            "1024 two-byte chars fit"
        );
        assert!(p.check("u", &s(&"a".repeat(1025))).is_err());
    }

    #[test]
    fn ten_megabytes_are_refused_at_once() {
        let huge = s(&"x".repeat(10 * 1024 * 1024));
        let started = Instant::now();
        let err = PasswordPolicy::default().check("u", &huge).unwrap_err();
        assert_eq!(err.violations, vec![Violation::TooLong { max: 1024 }]);
        // Refused on its byte length alone; generous bound for slow CI machines.
        assert!(started.elapsed().as_millis() < 50);
        assert_eq!(
            err.to_string(),
            "password refused: use at most 1024 characters"
        );
    }

    #[test]
    fn common_passwords_and_the_user_name_are_refused() {
        let p = PasswordPolicy::default();
        let err = p.check("alice", &s("Password1")).unwrap_err();
        assert!(
            err.violations.contains(&Violation::Common),
            "case-insensitive: {err}"
        );
        assert!(p.check("alice", &s("iloveyou")).is_err());
        let err = p.check("Sebastian", &s("sebastian")).unwrap_err();
        assert!(err.violations.contains(&Violation::SameAsUserName));
        assert!(p.check("alice", &s("correct horse battery")).is_ok());
        let off = PasswordPolicy {
            block_common: false,
            ..PasswordPolicy::default()
        };
        assert!(
            off.check("alice", &s("iloveyou")).is_ok(),
            "the check can be disabled"
        );
    }

    #[test]
    fn complexity_reports_every_missing_class() {
        let p = PasswordPolicy {
            complexity: Some(Complexity {
                lower: true,
                upper: true,
                digit: true,
                symbol: true,
            }),
            ..PasswordPolicy::length_only()
        };
        let err = p.check("u", &s("alllowercase")).unwrap_err();
        assert_eq!(
            err.violations,
            vec![Violation::NoUpper, Violation::NoDigit, Violation::NoSymbol]
        );
        assert!(
            err.to_string()
                .contains("add an upper-case letter; add a digit")
        );
        assert!(p.check("u", &s("Aa1!aaaa")).is_ok());
        assert_eq!(
            err.error(),
            auth_core::Error::Credential(auth_core::CredentialError::WeakPassword)
        );
    }

    #[test]
    fn control_characters_are_refused() {
        let err = PasswordPolicy::length_only()
            .check("u", &s("tab\there-ok"))
            .unwrap_err();
        assert_eq!(err.violations, vec![Violation::ControlCharacter]);
    }
}
