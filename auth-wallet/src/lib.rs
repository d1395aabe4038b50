//! # auth-wallet
//!
//! An encrypted secret wallet for auth-core:
//!
//! - [`Wallet`]: every value sealed with XChaCha20-Poly1305 under a master key (from an
//!   environment variable or a permission-checked key file), the record's name and
//!   version bound as associated data, a fresh nonce per write; audit events for every
//!   access (key names only); [`Wallet::rekey`] without downtime; [`Wallet::migrate`] of
//!   older formats; [`Wallet::export`] and [`Wallet::import`] of authenticated bundles.
//!   It is a [`CredentialStore`] over any backend, and passes the auth-core store
//!   contract.
//! - Backends: [`FileStore`] (embedded default; crash-safe, locked, authenticated as a
//!   whole with a key derived from the master key, so a record put back, swapped,
//!   removed or added is refused by name) and [`PostgresStore`] (several instances;
//!   migrations, compare-and-set on a version).
//! - [`WalletAuthenticator`]: passwords checked against `pgwire-user-<name>` secrets.
//! - [`WalletSettings`]: the `[wallet]` section of a configuration file (file or
//!   PostgreSQL, master key file or variable), built into a [`Wallet`].
//! - The administrators' command line is the `authctl` crate (`adapters/authctl`).
//!
//! ```
//! use auth_core::{CredentialStore, Key, Precondition};
//! use auth_wallet::{MasterKey, Wallet};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let master_key = MasterKey::generate().unwrap();
//! let wallet = Wallet::open_file(dir.path().join("wallet"), master_key).await.unwrap();
//! let key = Key::new("pgwire-oauth-client").unwrap();
//! wallet.put(&key, b"client-secret".to_vec().into(), Precondition::None).await.unwrap();
//! let record = wallet.get(&key).await.unwrap().unwrap();
//! assert_eq!(record.value_str(), Some("client-secret"));
//! # }
//! ```
//!
//! [`CredentialStore`]: auth_core::CredentialStore

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authenticator;
pub mod envelope;
mod file;
mod key;
mod postgres;
mod settings;
mod wallet;

pub use authenticator::WalletAuthenticator;
pub use file::FileStore;
pub use key::{FileMacKey, KeyError, MasterKey};
pub use postgres::PostgresStore;
pub use settings::WalletSettings;
pub use wallet::{Counts, DEFAULT_USER_PREFIX, OAUTH_CLIENT_SECRET_KEY, Wallet};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// `auth_wallet_operations_total{operation, result}`: the wallet's reads, writes and
/// deletes (`operation` is `read`, `write` or `delete`; `result` is `success`,
/// `not_found`, `corrupted` or `failed`).
pub const OPERATIONS_METRIC: &str = "auth_wallet_operations_total";
