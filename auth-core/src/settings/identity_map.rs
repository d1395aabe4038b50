//! Identity maps as a file writes them (pg_ident.conf's lines).

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::account::{IdentityMap, MapEntry};

/// One `[[identity_map]]` entry: `identity`, proved by `method`, may act as `user` under
/// the rules that name `map`.
///
/// ```
/// use auth_core::settings::IdentityMapSpec;
///
/// let entries: Vec<IdentityMapSpec> = vec![toml::from_str(
///     "map = \"admins\"\nmethod = \"kerberos\"\nidentity = \"/^(.*)/admin@TEST\\\\.REALM$\"\nuser = \"\\\\1\"",
/// ).unwrap()];
/// let map = IdentityMapSpec::map(&entries, "admins").unwrap();
/// assert!(map.allows("kerberos", "alice/admin@TEST.REALM", "alice"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityMapSpec {
    /// The map this entry belongs to, as rules name it (`map = "..."`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// The method that proves the identity (`peer`, `cert`, `kerberos`, `oauth`); any
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The identity, or with a leading `/` a regular expression over the whole identity.
    pub identity: String,
    /// The user it may act as (`\1` for the first group).
    pub user: String,
}

impl IdentityMapSpec {
    /// The entry, checked (a regular expression that does not compile is refused).
    pub fn entry(&self) -> Result<MapEntry, Invalid> {
        MapEntry::new(self.method.as_deref(), &self.identity, self.user.clone())
            .map_err(|e| Invalid::new("identity", format!("identity `{}`: {e}", self.identity)))
    }

    /// The map `name`: the entries with `map = "name"`, or the first bad one's problem
    /// (its key is `[i].identity`, `i` its index in `entries`).
    pub fn map(entries: &[Self], name: &str) -> Result<IdentityMap, Invalid> {
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.map.as_deref() == Some(name))
            .map(|(i, e)| e.entry().map_err(|p| p.within(&format!("[{i}]"))))
            .collect::<Result<Vec<_>, _>>()
            .map(IdentityMap::new)
    }
}
