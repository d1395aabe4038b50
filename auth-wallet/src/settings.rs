//! The `[wallet]` section: where the wallet lives (a file, or PostgreSQL) and where its
//! master key comes from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_core::CredentialStore;
use auth_core::settings::Invalid;

use crate::key::{KeyError, MasterKey};
use crate::postgres::PostgresStore;
use crate::wallet::Wallet;

/// The default wallet file, relative to the data directory.
const DEFAULT_FILE: &str = "wallet.db";
/// The default master key file, relative to the data directory.
const DEFAULT_MASTER_KEY_FILE: &str = "master.key";

/// Where the wallet and its master key are: the `[wallet]` section. Every key is
/// optional; an absent section means `wallet.db` sealed under `master.key`, both in the
/// data directory. Secrets are never written here: the master key and the PostgreSQL
/// URL (which may carry a password) are named by file or environment variable.
///
/// ```
/// use auth_wallet::{MasterKey, WalletSettings};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let data_dir = tempfile::tempdir().unwrap();
/// // The gateway makes the key file at its first start; `build` only reads it.
/// MasterKey::generate().unwrap().write_new_file(&data_dir.path().join("wallet.key")).unwrap();
///
/// let settings: WalletSettings = toml::from_str(
///     r#"
///     file = "secrets.db"
///     master_key_file = "wallet.key"
///     "#,
/// )
/// .unwrap();
/// assert!(settings.check().is_empty());
/// let wallet = settings.build(data_dir.path()).await.unwrap();
/// # let _ = wallet;
///
/// // A missing master key is refused, naming the key that points at it.
/// let missing: WalletSettings = toml::from_str(r#"master_key_file = "nowhere.key""#).unwrap();
/// assert_eq!(missing.build(data_dir.path()).await.unwrap_err().key, "master_key_file");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalletSettings {
    /// The wallet file, relative to the data directory (default `wallet.db`; created on
    /// first write). Not used when `postgres_url_env` is set.
    pub file: PathBuf,
    /// The file holding the master key (32 bytes in base64 or hex, mode 0600), relative
    /// to the data directory. When neither this nor `master_key_env` is set, the key is
    /// read from `master.key`. Set one of the two, not both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    /// The name of the environment variable holding the master key (32 bytes in base64
    /// or hex), instead of a file. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_env: Option<String>,
    /// The name of the environment variable holding a PostgreSQL URL
    /// (`postgres://user:password@host/db`): when set, the wallet lives in that database
    /// (several gateways may share it) instead of `file`. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url_env: Option<String>,
    /// The CA bundle (PEM) the PostgreSQL server's certificate must chain to, relative to
    /// the data directory: with it, the connection is TLS with `sslmode=verify-full`
    /// whatever the URL says; without it, the URL's `sslmode` decides (libpq's default,
    /// `prefer`, verifies nothing). Only with `postgres_url_env`. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_ca_file: Option<PathBuf>,
}

impl Default for WalletSettings {
    fn default() -> Self {
        Self {
            file: PathBuf::from(DEFAULT_FILE),
            master_key_file: None,
            master_key_env: None,
            postgres_url_env: None,
            postgres_ca_file: None,
        }
    }
}

impl WalletSettings {
    /// The values that cannot be used, without touching the disk, the environment or the
    /// network (empty when all can).
    pub fn check(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.file.as_os_str().is_empty() {
            problems.push(
                Invalid::new("file", "the wallet file has no name")
                    .hint(format!("the default is \"{DEFAULT_FILE}\"")),
            );
        }
        if self.master_key_file.is_some() && self.master_key_env.is_some() {
            problems.push(Invalid::new(
                "master_key_env",
                "the master key comes from either master_key_file or master_key_env, not both",
            ));
        }
        if self
            .master_key_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            problems.push(
                Invalid::new("master_key_file", "the master key file has no name")
                    .hint(format!("the default is \"{DEFAULT_MASTER_KEY_FILE}\"")),
            );
        }
        for (key, var) in [
            ("master_key_env", &self.master_key_env),
            ("postgres_url_env", &self.postgres_url_env),
        ] {
            if let Some(var) = var
                && !is_variable_name(var)
            {
                problems.push(
                    Invalid::new(
                        key,
                        format!("`{var}` is not an environment variable's name"),
                    )
                    .hint("name the variable (letters, digits, `_`), not its value"),
                );
            }
        }
        if self.postgres_ca_file.is_some() && self.postgres_url_env.is_none() {
            problems.push(Invalid::new(
                "postgres_ca_file",
                "verifies the PostgreSQL server of postgres_url_env, which is not set",
            ));
        }
        problems
    }

    /// The master key's file, relative to `base_dir`, unless it comes from the
    /// environment.
    pub fn master_key_path(&self, base_dir: &Path) -> Option<PathBuf> {
        match (&self.master_key_file, &self.master_key_env) {
            (None, Some(_)) => None,
            (file, _) => Some(
                base_dir.join(
                    file.as_deref()
                        .unwrap_or(Path::new(DEFAULT_MASTER_KEY_FILE)),
                ),
            ),
        }
    }

    /// The master key, from its file (relative to `base_dir`) or the environment. The
    /// file is never created here.
    pub fn master_key(&self, base_dir: &Path) -> Result<MasterKey, Invalid> {
        match (self.master_key_path(base_dir), &self.master_key_env) {
            (None, Some(var)) => {
                MasterKey::from_env(var).map_err(|e| Invalid::new("master_key_env", e.to_string()))
            }
            (path, _) => {
                let path = path.unwrap_or_else(|| base_dir.join(DEFAULT_MASTER_KEY_FILE));
                MasterKey::from_file(&path).map_err(|e| {
                    let missing = matches!(e, KeyError::Read { .. });
                    let invalid = Invalid::new("master_key_file", e.to_string());
                    if missing {
                        invalid.hint(
                            "`authctl key generate --out PATH` makes one (the gateway makes \
                             master.key at its first start)",
                        )
                    } else {
                        invalid
                    }
                })
            }
        }
    }

    /// The wallet: the master key read (never created), and the store opened: the file
    /// `base_dir.join(file)`, authenticated as a whole with a key derived from the master
    /// key ([`Wallet::open_file`]), or the PostgreSQL database of `postgres_url_env`
    /// (connected, migrations applied, verified with `postgres_ca_file` when set). Either
    /// is migrated ([`Wallet::migrate`]): a v1 file rewritten authenticated, and values
    /// sealed without their version resealed, once. A file that was tampered with is
    /// refused here, under the key `file`, naming the record.
    pub async fn build(&self, base_dir: &Path) -> Result<Wallet, Invalid> {
        if let Some(first) = self.check().into_iter().next() {
            return Err(first);
        }
        let key = self.master_key(base_dir)?;
        let Some(var) = &self.postgres_url_env else {
            return Wallet::open_file(base_dir.join(&self.file), key)
                .await
                .map_err(|e| Invalid::new("file", e.to_string()));
        };
        let url = std::env::var(var).map_err(|_| {
            Invalid::new("postgres_url_env", format!("`{var}` is not set"))
                .hint("set it to the wallet database's URL, postgres://user@host/db")
        })?;
        let store = match &self.postgres_ca_file {
            Some(ca) => {
                let ca = base_dir.join(ca);
                if let Err(e) = std::fs::metadata(&ca) {
                    return Err(Invalid::new(
                        "postgres_ca_file",
                        format!("{}: {e}", ca.display()),
                    ));
                }
                PostgresStore::connect_verified(&url, &ca).await
            }
            None => PostgresStore::connect(&url).await,
        };
        // The URL is not repeated: it may carry a password.
        let backend: Arc<dyn CredentialStore> = Arc::new(store.map_err(|e| {
            Invalid::new(
                "postgres_url_env",
                format!("the wallet database of `{var}`: {e}"),
            )
        })?);
        let wallet = Wallet::new(backend, key);
        wallet.migrate().await.map_err(|e| {
            Invalid::new(
                "postgres_url_env",
                format!("migrating the wallet's records: {e}"),
            )
        })?;
        Ok(wallet)
    }
}

/// Whether `name` looks like an environment variable's name rather than a value.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use auth_core::{Key, Precondition};

    use super::*;

    fn parse(text: &str) -> WalletSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_round_trip() {
        let defaults = WalletSettings::default();
        let text = toml::to_string(&defaults).unwrap();
        assert_eq!(text.trim(), "file = \"wallet.db\"");
        assert_eq!(parse(&text), defaults);
        assert_eq!(parse(""), defaults);
        assert!(defaults.check().is_empty());
        let dir = Path::new("/data");
        assert_eq!(
            defaults.master_key_path(dir),
            Some(PathBuf::from("/data/master.key"))
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<WalletSettings>("master_key = \"abc\"").unwrap_err();
        assert!(err.to_string().contains("master_key"), "{err}");
    }

    #[test]
    fn check_names_the_key() {
        for (text, key) in [
            ("file = \"\"", "file"),
            (
                "master_key_file = \"k\"\nmaster_key_env = \"K\"",
                "master_key_env",
            ),
            ("master_key_file = \"\"", "master_key_file"),
            ("master_key_env = \"c2VjcmV0IGJ5dGVz==\"", "master_key_env"),
            (
                "postgres_url_env = \"postgres://u:p@h/db\"",
                "postgres_url_env",
            ),
            ("postgres_ca_file = \"ca.pem\"", "postgres_ca_file"),
        ] {
            let problems = parse(text).check();
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].key, key, "{text}");
        }
    }

    #[tokio::test]
    async fn builds_a_file_wallet_with_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("master.key");
        MasterKey::generate()
            .unwrap()
            .write_new_file(&key_path)
            .unwrap();
        let wallet = WalletSettings::default().build(dir.path()).await.unwrap();
        let key = Key::new("k").unwrap();
        wallet
            .put(&key, b"v".to_vec().into(), Precondition::Absent)
            .await
            .unwrap();
        assert!(dir.path().join("wallet.db").exists());
        assert!(
            std::fs::read_to_string(dir.path().join("wallet.db"))
                .unwrap()
                .starts_with("auth-wallet-file v2 "),
            "authenticated"
        );
        // The same key file opens it again.
        let again = WalletSettings::default().build(dir.path()).await.unwrap();
        let record = again.get(&key).await.unwrap().unwrap();
        assert_eq!(record.value_str(), Some("v"));
    }

    #[tokio::test]
    async fn the_gateway_path_migrates_a_v1_file_and_refuses_a_tampered_one() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wallet-v1");
        let dir = tempfile::tempdir().unwrap();
        let wallet_db = dir.path().join("wallet.db");
        std::fs::copy(fixture.join("wallet.db"), &wallet_db).unwrap();
        let key = std::fs::read_to_string(fixture.join("master.key")).unwrap();
        MasterKey::parse(&key)
            .unwrap()
            .write_new_file(&dir.path().join("master.key"))
            .unwrap();

        let wallet = WalletSettings::default().build(dir.path()).await.unwrap();
        let text = std::fs::read_to_string(&wallet_db).unwrap();
        assert!(text.starts_with("auth-wallet-file v2 "), "{text}");
        let secret = Key::new(crate::OAUTH_CLIENT_SECRET_KEY).unwrap();
        let record = wallet.get(&secret).await.unwrap().unwrap();
        assert_eq!(record.value_str(), Some("client-secret-v1"));
        drop(wallet);

        // bob's record dropped from the file: refused at the next start, by name.
        let (header, json) = text.split_once('\n').unwrap();
        let mut json: serde_json::Value = serde_json::from_str(json).unwrap();
        json["records"].as_object_mut().unwrap().remove("user/bob");
        std::fs::write(&wallet_db, format!("{header}\n{json}")).unwrap();
        let err = WalletSettings::default()
            .build(dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.key, "file");
        assert!(
            err.message.contains("record `user/bob` was removed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn key_refusals_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        // Missing file: never created here.
        let err = WalletSettings::default()
            .build(dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.key, "master_key_file");
        assert!(err.hint.unwrap().contains("authctl key generate"));
        assert!(!dir.path().join("master.key").exists());
        // A file others can read.
        let path = dir.path().join("open.key");
        std::fs::write(&path, MasterKey::generate().unwrap().to_base64().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = parse("master_key_file = \"open.key\"")
            .build(dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.key, "master_key_file");
        assert!(err.message.contains("chmod 600"), "{err}");
        // An unset variable.
        let err = parse("master_key_env = \"AUTH_WALLET_TEST_SURELY_UNSET\"")
            .build(dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.key, "master_key_env");
    }

    #[tokio::test]
    async fn an_unset_postgres_variable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        MasterKey::generate()
            .unwrap()
            .write_new_file(&dir.path().join("master.key"))
            .unwrap();
        let err = parse("postgres_url_env = \"AUTH_WALLET_TEST_SURELY_UNSET_URL\"")
            .build(dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.key, "postgres_url_env");
    }
}
