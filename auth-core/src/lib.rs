//! # auth-core
//!
//! The core of a composable authentication library for Rust servers: the traits every
//! method implements ([`Authenticator`], [`CredentialStore`], [`Session`]), the
//! Linux-PAM-precise fallback [`Chain`], the pg_hba-like [`Policy`] that picks a chain per
//! connection, errors with their protocol mappings, audit events, rate limiting and
//! lockout, roles and scopes, configuration, and the contract suites implementers run
//! against their own code (feature `contract`).
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::{
//!     ApiKeyAuthenticator, ApiKeyGrant, Attempt, Authenticator, Chain, ConnectionInfo,
//!     Control, Credential, MemoryStore, Protocol, Session,
//! };
//! use secrecy::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = Arc::new(MemoryStore::new());
//! let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
//! let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
//! let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await.unwrap();
//!
//! let chain = Chain::builder()
//!     .link_with(Arc::new(ApiKeyAuthenticator::new(store)), Control::CONCLUSIVE)
//!     .build();
//! let peer = "10.0.0.5:40000".parse().unwrap();
//! let mut attempt = Attempt::new(
//!     ConnectionInfo::tcp(Protocol::Http, peer),
//!     Credential::ApiKey(key),
//! );
//! let outcome = chain.authenticate(&mut attempt).await;
//! assert_eq!(outcome.session().map(|s| s.principal()), Some("ci"));
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod account;
pub mod api_key;
mod attempt;
pub mod audit;
mod authenticator;
pub mod authz;
pub mod certificate;
pub mod chain;
pub mod clock;
pub mod config;
mod connection;
pub mod conversation;
mod credential;
mod error;
pub mod local;
mod open_session;
mod outcome;
pub mod policy;
pub mod rate_limit;
mod session;
pub mod store;

#[cfg(feature = "contract")]
pub mod contract;

pub use account::{Account, AccountStage, Accounts, Directory};
pub use api_key::{ApiKeyAuthenticator, ApiKeyGrant, ApiKeyInfo, RegisterError};
pub use attempt::Attempt;
pub use audit::{AuditEvent, AuditEventKind, AuditSink, MemoryAuditSink, TracingAuditSink};
pub use authenticator::{Authenticator, kinds_include};
pub use authz::{Forbidden, Role, ScopeRules};
pub use chain::{Action, Chain, Control, Link};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{Config, ConfigError};
pub use connection::{ConnectionInfo, Peer, PeerCredentials, Protocol, TlsInfo};
pub use conversation::{
    ChannelConversation, Conversation, ConversationError, ConversationPeer, ServerMessage,
};
pub use credential::{Credential, CredentialKind};
pub use error::{Error, Failure, GrpcCode, ProtocolMapping};
pub use open_session::{OpenSession, SessionOver};
pub use outcome::{AccountStatus, Outcome, OutcomeClass};
pub use policy::{Policy, PolicyError};
pub use rate_limit::{MemoryRateLimiter, RateLimiter};
pub use session::{
    Evidence, IllegalTransition, Session, SessionEnd, SessionState, StandardSession,
};
pub use store::{CredentialStore, Key, MemoryStore, Precondition, Record, RecordMeta, StoreError};

/// Re-exported so implementers name the same `secrecy` types.
pub use secrecy;
