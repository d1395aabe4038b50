//! The master key: 32 random bytes from an environment variable or a key file whose
//! permissions are checked, identified by a fingerprint stored with every record; and the
//! key derived from it that authenticates a wallet file as a whole ([`FileMacKey`]).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The HKDF "info" of the file MAC key: a key of its own for each purpose, so the MAC
/// key and the encryption key are never the same bytes.
const FILE_MAC_INFO: &[u8] = b"auth-wallet file mac v2";

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

    /// The key that authenticates a wallet file as a whole (see
    /// [`FileStore::with_mac_key`](crate::FileStore::with_mac_key)): HKDF-SHA256 of this
    /// key with no salt and the info `auth-wallet file mac v2`. It changes with the master
    /// key, so a re-key re-authenticates the file
    /// ([`Wallet::rekey`](crate::Wallet::rekey) does it for a wallet over a file).
    pub fn file_mac_key(&self) -> FileMacKey {
        FileMacKey {
            bytes: hkdf_sha256(&[], self.bytes.as_slice(), FILE_MAC_INFO),
            id: self.id,
        }
    }
}

/// The HMAC-SHA256 key of a wallet file, derived from a master key with
/// [`MasterKey::file_mac_key`]. Never printed; `Debug` names only its master key.
#[derive(Clone)]
pub struct FileMacKey {
    bytes: Zeroizing<[u8; 32]>,
    /// The id of the master key it comes from, written in the file's header so that a
    /// file authenticated under another key is named as such, not as tampered.
    id: [u8; 8],
}

impl fmt::Debug for FileMacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMacKey(of master key {})", self.fingerprint())
    }
}

impl FileMacKey {
    /// The fingerprint of the master key it was derived from.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.id)
    }

    pub(crate) fn id(&self) -> [u8; 8] {
        self.id
    }

    /// A fresh HMAC-SHA256 keyed with it.
    pub(crate) fn hmac(&self) -> Hmac<Sha256> {
        hmac_sha256(self.bytes.as_slice())
    }
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    let Ok(mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac
}

/// HKDF-SHA256 (RFC 5869) of `ikm` with `salt` (none when empty) and `info`, 32 bytes.
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new((!salt.is_empty()).then_some(salt), ikm);
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF's limit (255 blocks), so expansion cannot fail.
    let _ = hkdf.expand(info, okm.as_mut_slice());
    okm
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
    fn hkdf_matches_rfc_5869() {
        let ikm = [0x0b; 22];
        // Test case 1 (the first 32 bytes of its 42).
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        assert_eq!(
            hex::encode(hkdf_sha256(&salt, &ikm, &info).as_slice()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
        // Test case 3: no salt, no info.
        assert_eq!(
            hex::encode(hkdf_sha256(&[], &ikm, &[]).as_slice()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }

    #[test]
    fn the_file_mac_key_is_its_own_key_and_never_printed() {
        let k = MasterKey::generate().unwrap();
        let mac = k.file_mac_key();
        assert_ne!(mac.bytes.as_slice(), k.bytes().as_slice());
        assert_eq!(
            mac.bytes,
            k.file_mac_key().bytes,
            "derived the same every time"
        );
        assert_ne!(
            mac.bytes,
            MasterKey::generate().unwrap().file_mac_key().bytes
        );
        assert_eq!(mac.fingerprint(), k.fingerprint());
        let shown = format!("{mac:?}");
        assert!(
            !shown.contains(&hex::encode(mac.bytes.as_slice())),
            "{shown}"
        );
        assert!(shown.contains(&k.fingerprint()), "{shown}");
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
