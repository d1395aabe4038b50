//! Password hashes: argon2id (PHC strings) for new passwords, bcrypt verified for legacy
//! ones, and whether a stored hash is outdated.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use subtle::ConstantTimeEq;

/// Argon2id parameters for new hashes. The default is OWASP's: m = 19456 KiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// The most memory a stored hash may ask for (256 MiB). A hash asking for more is treated
/// as corrupted rather than letting a tampered store exhaust memory.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

impl Argon2Settings {
    fn params(&self) -> Result<Params, HashError> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(OUTPUT_LEN))
            .map_err(|e| HashError::Corrupt(format!("argon2 parameters: {e}")))
    }

    /// Memory blocks (1 KiB each) one hash with these settings needs.
    pub fn block_count(&self) -> usize {
        self.params().map_or(0, |p| p.block_count())
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// Whether the password is right.
    pub matches: bool,
    /// Whether the stored hash uses an outdated algorithm or parameters and should be
    /// replaced (only meaningful when `matches`).
    pub needs_rehash: bool,
}

/// A stored hash that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Neither an argon2 PHC string nor a bcrypt hash.
    #[error("unrecognized password hash format")]
    Unrecognized,
    /// Recognized but malformed or with unusable parameters.
    #[error("corrupt password hash: {0}")]
    Corrupt(String),
}

/// Reusable argon2 working memory: one per hashing worker, so hashing does not allocate
/// (and glibc does not keep) 19 MiB per call.
#[derive(Default)]
pub struct Scratch {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({} KiB)", self.blocks.len())
    }
}

impl Scratch {
    /// Working memory sized for `settings`, allocated up front.
    pub fn for_settings(settings: &Argon2Settings) -> Self {
        Self {
            blocks: vec![Block::default(); settings.block_count()],
        }
    }

    /// Runs `f` with `count` blocks: the reusable ones when they suffice, else a temporary
    /// allocation (an old hash with more memory than today's settings) that is freed after.
    fn with_blocks<R>(&mut self, count: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        if count <= self.blocks.len() {
            f(&mut self.blocks[..count])
        } else {
            let mut temporary = vec![Block::default(); count];
            f(&mut temporary)
        }
    }
}

/// Hashes `password` with argon2id under `settings` into a PHC string.
pub fn hash_argon2id(
    password: &[u8],
    settings: &Argon2Settings,
    scratch: &mut Scratch,
) -> Result<String, HashError> {
    let params = settings.params()?;
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| HashError::Corrupt(format!("no randomness: {e}")))?;
    let mut out = [0u8; OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    scratch
        .with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password, &salt, &mut out, blocks)
        })
        .map_err(|e| HashError::Corrupt(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| HashError::Corrupt(e.to_string()))?,
        salt: Some(Salt::new(&salt).map_err(|e| HashError::Corrupt(e.to_string()))?),
        hash: Some(Output::new(&out).map_err(|e| HashError::Corrupt(e.to_string()))?),
    };
    Ok(phc.to_string())
}

/// Which family a stored hash belongs to, by its prefix.
fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Checks `password` against `stored` (argon2 PHC or bcrypt) in constant time, and says
/// whether the hash should be replaced by one made with `current`.
pub fn verify(
    password: &[u8],
    stored: &str,
    current: &Argon2Settings,
    scratch: &mut Scratch,
) -> Result<Verification, HashError> {
    if stored.starts_with("$argon2") {
        verify_argon2(password, stored, current, scratch)
    } else if is_bcrypt(stored) {
        let matches = bcrypt::verify(password, stored)
            .map_err(|e| HashError::Corrupt(format!("bcrypt: {e}")))?;
        Ok(Verification {
            matches,
            needs_rehash: true,
        })
    } else {
        Err(HashError::Unrecognized)
    }
}

fn verify_argon2(
    password: &[u8],
    stored: &str,
    current: &Argon2Settings,
    scratch: &mut Scratch,
) -> Result<Verification, HashError> {
    let corrupt = |e: &dyn std::fmt::Display| HashError::Corrupt(e.to_string());
    let phc = PasswordHash::new(stored).map_err(|e| corrupt(&e))?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|e| corrupt(&e))?;
    let version = Version::try_from(phc.version.unwrap_or(0x13)).map_err(|e| corrupt(&e))?;
    let params = Params::try_from(&phc).map_err(|e| corrupt(&e))?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err(HashError::Corrupt(format!(
            "argon2 memory {} KiB exceeds the {MAX_M_COST_KIB} KiB limit",
            params.m_cost()
        )));
    }
    let salt = phc
        .salt
        .ok_or_else(|| HashError::Corrupt("argon2 hash without a salt".into()))?;
    let expected = phc
        .hash
        .ok_or_else(|| HashError::Corrupt("argon2 hash without output".into()))?;
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    scratch
        .with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password, salt.as_ref(), &mut out, blocks)
        })
        .map_err(|e| corrupt(&e))?;
    let matches = bool::from(out.as_slice().ct_eq(expected));
    let needs_rehash = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || params.m_cost() != current.m_cost_kib
        || params.t_cost() != current.t_cost
        || params.p_cost() != current.p_cost
        || expected.len() != OUTPUT_LEN;
    Ok(Verification {
        matches,
        needs_rehash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn argon2id_round_trip_and_phc_format() {
        let mut scratch = Scratch::for_settings(&cheap());
        let phc = hash_argon2id(b"correct horse", &cheap(), &mut scratch).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        let ok = verify(b"correct horse", &phc, &cheap(), &mut scratch).unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = verify(b"wrong horse", &phc, &cheap(), &mut scratch).unwrap();
        assert!(!bad.matches);
        let other = hash_argon2id(b"correct horse", &cheap(), &mut scratch).unwrap();
        assert_ne!(phc, other, "salts differ");
    }

    #[test]
    fn outdated_parameters_ask_for_a_rehash() {
        let mut scratch = Scratch::default();
        let old = hash_argon2id(b"pw-pw-pw-pw", &cheap(), &mut scratch).unwrap();
        let stronger = Argon2Settings {
            m_cost_kib: 128,
            ..cheap()
        };
        let v = verify(b"pw-pw-pw-pw", &old, &stronger, &mut scratch).unwrap();
        assert!(v.matches && v.needs_rehash);
    }

    #[test]
    fn argon2i_and_bcrypt_verify_and_ask_for_argon2id() {
        // From the argon2 reference test vectors' PHC encoding (argon2i, v=19).
        let mut scratch = Scratch::default();
        let argon2i = {
            let params = Params::new(64, 1, 1, Some(32)).unwrap();
            let a = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone());
            let mut out = [0u8; 32];
            a.hash_password_into(b"legacy", b"saltsaltsalt", &mut out)
                .unwrap();
            PasswordHash {
                algorithm: argon2::ARGON2I_IDENT,
                version: Some(19),
                params: ParamsString::try_from(&params).unwrap(),
                salt: Some(Salt::new(b"saltsaltsalt").unwrap()),
                hash: Some(Output::new(&out).unwrap()),
            }
            .to_string()
        };
        let v = verify(b"legacy", &argon2i, &cheap(), &mut scratch).unwrap();
        assert!(v.matches && v.needs_rehash);

        let bcrypt_hash = bcrypt::hash("legacy-pass", 4).unwrap();
        let v = verify(b"legacy-pass", &bcrypt_hash, &cheap(), &mut scratch).unwrap();
        assert!(v.matches && v.needs_rehash);
        assert!(
            !verify(b"nope", &bcrypt_hash, &cheap(), &mut scratch)
                .unwrap()
                .matches
        );
    }

    #[test]
    fn garbage_and_hostile_hashes_are_errors_not_panics() {
        let mut scratch = Scratch::default();
        for stored in [
            "",
            "plaintext",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$short",
            "$2b$99$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
        ] {
            assert!(
                verify(b"pw", stored, &cheap(), &mut scratch).is_err(),
                "{stored:?}"
            );
        }
    }
}
