//! The master key: 32 random bytes from an environment variable or a key file whose
//! permissions are checked, identified by a fingerprint stored with every record.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Why a master key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The environment variable is not set.
    #[error(
        "the master key variable `{0}` is not set; set it to 32 random bytes in base64 or hex (authctl key generate prints one)"
    )]
    MissingEnv(String),
    /// The file cannot be read.
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is readable or writable by others.
    #[error(
        "the master key file {path} has mode {mode:o}, readable or writable by other users; run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// Not 32 bytes of base64 or hex.
    #[error("the master key is not 32 bytes encoded in base64 or hex")]
    Format,
    /// The file cannot be written.
    #[error("cannot write the master key file {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No randomness.
    #[error("the operating system gave no randomness: {0}")]
    Random(String),
}

/// A 256-bit master key. Never printed; `Debug` shows only its fingerprint.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    id: [u8; 8],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

impl MasterKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest([b"auth-wallet key id".as_slice(), &bytes].concat());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            bytes: Zeroizing::new(bytes),
            id,
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Parses 32 bytes given as base64 or hex (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let decoded = Zeroizing::new(
            hex::decode(text)
                .ok()
                .filter(|b| b.len() == 32)
                .or_else(|| B64.decode(text).ok())
                .ok_or(KeyError::Format)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Format)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Reads the key from environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let value =
            Zeroizing::new(std::env::var(var).map_err(|_| KeyError::MissingEnv(var.to_owned()))?);
        Self::parse(&value)
    }

    /// Reads the key from `path`, refusing a file other users can read or write.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: shown, mode });
        }
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: shown,
                    source,
                })?,
            );
        Self::parse(&text)
    }

    /// Writes the key (base64) to a new file with mode 0600; refuses to overwrite.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let err = |source| KeyError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        let text = Zeroizing::new(format!("{}\n", B64.encode(self.bytes.as_slice())));
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)
    }

    /// The key in base64, for `authctl key generate` output only.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.bytes.as_slice()))
    }

    /// The 8-byte identifier stored with each record it encrypts.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// The identifier in hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.id)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_base64_and_refuses_others() {
        let k = MasterKey::generate().unwrap();
        let b64 = k.to_base64();
        assert_eq!(MasterKey::parse(&b64).unwrap().id(), k.id());
        assert_eq!(
            MasterKey::parse(&hex::encode(k.bytes())).unwrap().id(),
            k.id()
        );
        assert!(MasterKey::parse("too short").is_err());
        assert!(MasterKey::parse(&B64.encode([0u8; 31])).is_err());
        assert!(!format!("{k:?}").contains(b64.as_str()));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k = MasterKey::generate().unwrap();
        k.write_new_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(MasterKey::from_file(&path).unwrap().id(), k.id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(k.write_new_file(&path).is_err(), "never overwrites a key");
    }
}
