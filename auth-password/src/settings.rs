//! The `[password]` section: argon2id parameters for new hashes and the policy new
//! passwords must satisfy.

use auth_core::settings::Invalid;

use crate::hash::{Argon2Settings, MAX_M_COST_KIB};
use crate::hasher::Hasher;
use crate::policy::{MAX_LEN, PasswordPolicy};

/// OWASP's minimum memory for argon2id with 2 iterations and 1 lane (19 MiB), in KiB.
const OWASP_MEMORY_KIB: u32 = 19_456;
/// OWASP's minimum number of argon2id iterations at 19 MiB.
const OWASP_ITERATIONS: u32 = 2;

/// How passwords are hashed and which new passwords are accepted: the `[password]`
/// section. Every key is optional; an absent section means the defaults (argon2id at
/// OWASP's parameters, 8 to 1024 characters, common passwords and the user's own name
/// refused).
///
/// ```
/// use auth_password::PasswordSettings;
///
/// let settings: PasswordSettings = toml::from_str(
///     r#"
///     argon2_memory_kib = 65536
///     argon2_iterations = 3
///     min_length = 12
///     "#,
/// )
/// .unwrap();
/// let (hasher, policy) = settings.build().unwrap();
/// assert_eq!(hasher.settings().m_cost_kib, 65_536);
/// assert_eq!(policy.min_len, 12);
///
/// // Below OWASP's minimums is refused, naming the key.
/// let weak: PasswordSettings = toml::from_str("argon2_iterations = 1").unwrap();
/// assert_eq!(weak.build().unwrap_err().key, "argon2_iterations");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSettings {
    /// Memory of one argon2id hash, in KiB (default 19456, i.e. 19 MiB: OWASP's minimum;
    /// at most 262144, i.e. 256 MiB). Each hashing thread keeps this much allocated.
    pub argon2_memory_kib: u32,
    /// argon2id iterations (passes over the memory; default 2, OWASP's minimum).
    pub argon2_iterations: u32,
    /// argon2id lanes (default 1; at least 1, at most one per 8 KiB of memory).
    pub argon2_parallelism: u32,
    /// The shortest new password accepted, in characters (default 8; at least 1).
    pub min_length: usize,
    /// The longest new password accepted, in characters (default 1024, also the most
    /// allowed).
    pub max_length: usize,
    /// Refuse the 10,000 most common passwords, compared case-insensitively (default
    /// true).
    pub block_common: bool,
    /// Refuse a password equal to the user name, compared case-insensitively (default
    /// true).
    pub block_user_name: bool,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        let argon2 = Argon2Settings::default();
        let policy = PasswordPolicy::default();
        Self {
            argon2_memory_kib: argon2.m_cost_kib,
            argon2_iterations: argon2.t_cost,
            argon2_parallelism: argon2.p_cost,
            min_length: policy.min_len,
            max_length: policy.max_len,
            block_common: policy.block_common,
            block_user_name: policy.block_user_name,
        }
    }
}

impl PasswordSettings {
    /// The argon2id parameters, checked: OWASP's minimums (19 MiB, 2 iterations, 1 lane),
    /// the most memory a stored hash may ask for, and argon2's own limits.
    pub fn argon2(&self) -> Result<Argon2Settings, Invalid> {
        let defaults = Argon2Settings::default();
        if self.argon2_memory_kib < OWASP_MEMORY_KIB {
            return Err(Invalid::new(
                "argon2_memory_kib",
                format!(
                    "{} KiB is below OWASP's minimum for argon2id ({OWASP_MEMORY_KIB} KiB, 19 MiB)",
                    self.argon2_memory_kib
                ),
            )
            .hint(format!(
                "the default is {}; raise it, or leave the key out",
                defaults.m_cost_kib
            )));
        }
        if self.argon2_memory_kib > MAX_M_COST_KIB {
            return Err(Invalid::new(
                "argon2_memory_kib",
                format!(
                    "{} KiB is more than the {MAX_M_COST_KIB} KiB (256 MiB) a stored hash may \
                     ask for: hashes made with it would be refused as corrupt",
                    self.argon2_memory_kib
                ),
            )
            .hint(format!("the default is {}", defaults.m_cost_kib)));
        }
        if self.argon2_iterations < OWASP_ITERATIONS {
            return Err(Invalid::new(
                "argon2_iterations",
                format!(
                    "{} is below OWASP's minimum for argon2id ({OWASP_ITERATIONS} iterations)",
                    self.argon2_iterations
                ),
            )
            .hint(format!(
                "the default is {}; raise it, or leave the key out",
                defaults.t_cost
            )));
        }
        if self.argon2_parallelism == 0 {
            return Err(
                Invalid::new("argon2_parallelism", "argon2id needs at least 1 lane")
                    .hint(format!("the default is {}", defaults.p_cost)),
            );
        }
        if u64::from(self.argon2_parallelism) * 8 > u64::from(self.argon2_memory_kib) {
            return Err(Invalid::new(
                "argon2_parallelism",
                format!(
                    "{} lanes need at least {} KiB of memory (8 KiB per lane), more than \
                     argon2_memory_kib = {}",
                    self.argon2_parallelism,
                    u64::from(self.argon2_parallelism) * 8,
                    self.argon2_memory_kib
                ),
            )
            .hint(format!("the default is {}", defaults.p_cost)));
        }
        Ok(Argon2Settings {
            m_cost_kib: self.argon2_memory_kib,
            t_cost: self.argon2_iterations,
            p_cost: self.argon2_parallelism,
        })
    }

    /// The password policy, checked: `1 <= min_length <= max_length <= 1024`.
    pub fn policy(&self) -> Result<PasswordPolicy, Invalid> {
        let defaults = PasswordPolicy::default();
        if self.min_length == 0 {
            return Err(
                Invalid::new("min_length", "a password needs at least 1 character")
                    .hint(format!("the default is {}", defaults.min_len)),
            );
        }
        if self.max_length > MAX_LEN {
            return Err(Invalid::new(
                "max_length",
                format!(
                    "{} is more than the {MAX_LEN} characters a password may have",
                    self.max_length
                ),
            )
            .hint(format!("the default is {}", defaults.max_len)));
        }
        if self.max_length < self.min_length {
            return Err(Invalid::new(
                "max_length",
                format!(
                    "{} is shorter than min_length = {}: no password would be accepted",
                    self.max_length, self.min_length
                ),
            )
            .hint(format!("the default is {}", defaults.max_len)));
        }
        Ok(PasswordPolicy {
            min_len: self.min_length,
            max_len: self.max_length,
            block_common: self.block_common,
            block_user_name: self.block_user_name,
            complexity: None,
        })
    }

    /// The hasher (one hashing thread per core) and the policy, after checking every
    /// value; the first value that cannot be used is refused, naming its key.
    pub fn build(&self) -> Result<(Hasher, PasswordPolicy), Invalid> {
        let argon2 = self.argon2()?;
        let policy = self.policy()?;
        let hasher = Hasher::new(argon2)
            .map_err(|e| Invalid::new("", format!("the password hasher could not start: {e}")))?;
        Ok((hasher, policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PasswordSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_round_trip_and_match_the_crate_defaults() {
        let defaults = PasswordSettings::default();
        let text = toml::to_string(&defaults).unwrap();
        assert_eq!(parse(&text), defaults);
        assert_eq!(parse(""), defaults);
        assert_eq!(defaults.argon2().unwrap(), Argon2Settings::default());
        assert_eq!(defaults.policy().unwrap(), PasswordPolicy::default());
    }

    #[test]
    fn builds_a_hasher_and_policy() {
        let (hasher, policy) = parse("min_length = 10\nblock_common = false\n")
            .build()
            .unwrap();
        assert_eq!(*hasher.settings(), Argon2Settings::default());
        assert_eq!(policy.min_len, 10);
        assert!(!policy.block_common);
        assert!(policy.block_user_name);
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, key) in [
            ("argon2_memory_kib = 4096", "argon2_memory_kib"),
            ("argon2_memory_kib = 1048576", "argon2_memory_kib"),
            ("argon2_iterations = 1", "argon2_iterations"),
            ("argon2_parallelism = 0", "argon2_parallelism"),
            ("argon2_parallelism = 4000", "argon2_parallelism"),
            ("min_length = 0", "min_length"),
            ("max_length = 2000", "max_length"),
            ("min_length = 20\nmax_length = 10", "max_length"),
        ] {
            let err = parse(text).build().unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
        }
    }

    #[test]
    fn owasp_refusals_hint_at_the_default() {
        let err = parse("argon2_memory_kib = 4096").build().unwrap_err();
        assert!(err.message.contains("OWASP"), "{err}");
        assert!(err.hint.unwrap().contains("19456"));
        let err = parse("argon2_iterations = 1").build().unwrap_err();
        assert!(err.hint.unwrap().contains('2'));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let err = toml::from_str::<PasswordSettings>("argon2_memory = 65536").unwrap_err();
        assert!(err.to_string().contains("argon2_memory"), "{err}");
        assert!(toml::from_str::<PasswordSettings>("min_length = \"8\"").is_err());
        assert!(toml::from_str::<PasswordSettings>("argon2_iterations = -1").is_err());
    }
}
