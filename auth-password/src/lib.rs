//! # auth-password
//!
//! Passwords for auth-core, done carefully:
//!
//! - [`PasswordAuthenticator`]: argon2id (OWASP parameters) by default, bcrypt verified
//!   for legacy hashes, rehash on login with compare-and-set, a dummy verification for
//!   unknown users, hashing on a bounded thread pool with reusable memory ([`Hasher`]).
//! - [`PasswordPolicy`]: length 8..=1024 checked before anything else, the 10,000 most
//!   common passwords refused, optional complexity, messages that say what to change.
//! - [`scram::ScramAuthenticator`]: SCRAM-SHA-256 and -PLUS (tls-server-end-point) from
//!   stored keys in PostgreSQL's verifier format, constant-time proof checks, a mock
//!   exchange for unknown users, the `y`-flag downgrade refused.
//! - [`PasswordSettings`]: the `[password]` section of a configuration file (argon2id
//!   parameters, policy lengths), checked and built into a [`Hasher`] and a policy.
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, MemoryStore, Protocol};
//! use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, PasswordPolicy, Users};
//! use secrecy::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let users = Users::new(Arc::new(MemoryStore::new()));
//! let hasher = Hasher::new(Argon2Settings::default()).unwrap();
//! let password = SecretString::from("correct horse battery staple".to_owned());
//! users.set_password(&hasher, &PasswordPolicy::default(), "alice", &password).await.unwrap();
//!
//! let auth = PasswordAuthenticator::new(users, hasher);
//! let peer = "10.0.0.1:5000".parse().unwrap();
//! let mut attempt = Attempt::new(
//!     ConnectionInfo::tcp(Protocol::Http, peer),
//!     Credential::password("alice", "correct horse battery staple"),
//! );
//! assert!(auth.authenticate(&mut attempt).await.is_authenticated());
//! # }
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authenticator;
pub mod hash;
mod hasher;
pub mod policy;
pub mod pool;
pub mod scram;
mod settings;
mod user;

pub use authenticator::PasswordAuthenticator;
pub use hash::{Argon2Settings, HashError, Verification};
pub use hasher::{DEFAULT_SCRAM_ITERATIONS, HashFailure, Hasher};
pub use policy::{Complexity, PasswordPolicy, Violation, WeakPassword};
pub use pool::{HashingPool, PoolClosed};
pub use scram::{ScramAuthenticator, ScramVerifier};
pub use settings::PasswordSettings;
pub use user::{UserError, UserRecord, UserStatus, Users};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
