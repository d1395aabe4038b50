//! pg_ident-style maps: which proved identities may act as which users.

use regex::Regex;

/// What an entry matches: an exact identity, or (written with a leading `/`, as in
/// pg_ident.conf) a regular expression that must match the whole identity.
#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Regex(Regex),
}

/// One line of an identity map: `identity` proved by `method` (any method when `None`)
/// may act as `user`. With a regular expression, `\1` in `user` stands for its first
/// capture group.
#[derive(Debug, Clone)]
pub struct MapEntry {
    method: Option<String>,
    identity: Pattern,
    user: String,
}

impl MapEntry {
    /// An entry; `identity` starting with `/` is a regular expression.
    pub fn new(
        method: Option<&str>,
        identity: &str,
        user: impl Into<String>,
    ) -> Result<Self, regex::Error> {
        let identity = match identity.strip_prefix('/') {
            Some(re) => Pattern::Regex(Regex::new(&format!("^(?:{re})$"))?),
            None => Pattern::Exact(identity.to_owned()),
        };
        Ok(Self {
            method: method.map(str::to_owned),
            identity,
            user: user.into(),
        })
    }

    fn allows(&self, method: &str, identity: &str, requested: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        match &self.identity {
            Pattern::Exact(exact) => exact == identity && self.user == requested,
            Pattern::Regex(re) => re.captures(identity).is_some_and(|caps| {
                let mut user = String::new();
                caps.expand(&self.user.replace("\\1", "${1}"), &mut user);
                user == requested
            }),
        }
    }
}

/// The identity map of the account stage. Empty, an identity acts only as the user its
/// method mapped it to; each entry lets one more identity act as one more user.
///
/// ```
/// use auth_core::account::{IdentityMap, MapEntry};
///
/// let map = IdentityMap::new(vec![
///     MapEntry::new(Some("kerberos"), r"/([^/@]+)/admin@EXAMPLE\.COM", r"\1_admin").unwrap(),
/// ]);
/// assert!(map.allows("kerberos", "alice/admin@EXAMPLE.COM", "alice_admin"));
/// assert!(!map.allows("kerberos", "alice/admin@EXAMPLE.COM", "bob_admin"));
/// assert!(!map.allows("scram", "alice/admin@EXAMPLE.COM", "alice_admin"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct IdentityMap {
    entries: Vec<MapEntry>,
}

impl IdentityMap {
    /// A map of `entries`.
    pub fn new(entries: Vec<MapEntry>) -> Self {
        Self { entries }
    }

    /// Whether some entry lets `identity`, proved by `method`, act as `requested`.
    pub fn allows(&self, method: &str, identity: &str, requested: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.allows(method, identity, requested))
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
