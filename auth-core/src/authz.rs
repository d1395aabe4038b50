//! Authorization after authentication: hierarchical roles and scopes that imply finer ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A role. Roles are ordered: `User < Service < Dba < System`, and holding a role grants
/// every lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// An ordinary user.
    User,
    /// A service acting on its own behalf.
    Service,
    /// A database administrator.
    Dba,
    /// The system itself (local maintenance users).
    System,
}

impl Role {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::Dba => "dba",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `user`, `service`, `dba`, `system`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected one of user, service, dba, system")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Self::User),
            "service" => Ok(Self::Service),
            "dba" => Ok(Self::Dba),
            "system" => Ok(Self::System),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Stored roles are read case-insensitively, as the command line takes them; an unknown
/// name is an error, never silently dropped.
impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether any of `held` grants `required` (a role grants itself and every lower role).
pub fn role_grants(held: &[Role], required: Role) -> bool {
    held.iter().any(|r| *r >= required)
}

/// Rules for which granted scope implies which required scope.
///
/// Built in, for a scope `P:x` with namespace `P`:
/// - a scope grants itself;
/// - `P:admin` and `P:*` grant every `P:...` scope (coarse implies fine: `kms:admin` grants
///   `kms:encrypt`);
/// - a bare namespace `P` grants every `P:...` scope.
///
/// Extra implications (`kms:operator` implies `kms:encrypt` and `kms:decrypt`) are added
/// with [`ScopeRules::imply`] and followed transitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRules {
    implications: BTreeMap<String, BTreeSet<String>>,
}

impl ScopeRules {
    /// The built-in rules only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds: holding `coarse` grants each of `fine`.
    #[must_use]
    pub fn imply<I, S>(mut self, coarse: impl Into<String>, fine: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.implications
            .entry(coarse.into())
            .or_default()
            .extend(fine.into_iter().map(Into::into));
        self
    }

    /// Whether the set of `granted` scopes grants `required`.
    pub fn grants<'a>(&self, granted: impl IntoIterator<Item = &'a str>, required: &str) -> bool {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = granted.into_iter().collect();
        while let Some(scope) = todo.pop() {
            if !seen.insert(scope) {
                continue;
            }
            if builtin_grants(scope, required) {
                return true;
            }
            if let Some(more) = self.implications.get(scope) {
                todo.extend(more.iter().map(String::as_str));
            }
        }
        false
    }
}

fn builtin_grants(granted: &str, required: &str) -> bool {
    if granted == required {
        return true;
    }
    let Some((namespace, _)) = required.split_once(':') else {
        return false;
    };
    if granted == namespace {
        return true;
    }
    match granted.split_once(':') {
        Some((ns, "admin" | "*")) => ns == namespace,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_hierarchical() {
        assert!(
            Role::User < Role::Service && Role::Service < Role::Dba && Role::Dba < Role::System
        );
        assert!(role_grants(&[Role::Dba], Role::Service));
        assert!(role_grants(&[Role::Dba], Role::Dba));
        assert!(!role_grants(&[Role::Dba], Role::System));
        assert!(!role_grants(&[], Role::User));
        assert_eq!("DBA".parse::<Role>(), Ok(Role::Dba));
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("root")
        );
    }

    #[test]
    fn coarse_scopes_imply_fine_ones() {
        let rules = ScopeRules::new();
        assert!(rules.grants(["kms:admin"], "kms:encrypt"));
        assert!(rules.grants(["kms:*"], "kms:decrypt"));
        assert!(rules.grants(["kms"], "kms:decrypt"));
        assert!(rules.grants(["kms:encrypt"], "kms:encrypt"));
        assert!(!rules.grants(["kms:encrypt"], "kms:decrypt"));
        assert!(!rules.grants(["kms:admin"], "vault:read"));
        assert!(!rules.grants(["kms:encrypt"], "kms:admin"));
        assert!(!rules.grants(["km"], "kms:read"));
        assert!(!rules.grants([], "kms:read"));
    }

    #[test]
    fn explicit_implications_are_transitive_and_cycle_safe() {
        let rules = ScopeRules::new()
            .imply("ops", ["kms:operator"])
            .imply("kms:operator", ["kms:encrypt", "ops"]);
        assert!(rules.grants(["ops"], "kms:encrypt"));
        assert!(!rules.grants(["ops"], "kms:decrypt"));
    }
}
