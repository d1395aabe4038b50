//! # auth-core
//!
//! The core of a composable authentication library for Rust servers: the traits every
//! method implements ([`Authenticator`], [`CredentialStore`], [`Session`]), the
//! Linux-PAM-precise fallback [`Chain`], the pg_hba-like [`Policy`] that picks a chain per
//! connection, the [`Engine`] that runs a policy for every front door, errors with their
//! protocol mappings, audit events, rate limiting and lockout, accounts, roles and
//! scopes, configuration, and the contract suites implementers run against their own code
//! (feature `contract`).
//!
//! # The flow of one attempt
//!
//! An adapter (pgwire, HTTP, gRPC) holds one [`Engine`], built once with the policy, the
//! audit sink, the rate limiter, the account stage and the clock. For each connection:
//!
//! 1. **Offer.** [`Engine::offer`] takes the connection (peer, TLS, requested user and
//!    database) and returns the [`Offer`] of the first policy rule that matches: the
//!    [`Mechanism`]s to ask for, in order (SCRAM-SHA-256-PLUS only where the connection
//!    has channel-binding data). A rule that rejects, or no rule, is refused and audited
//!    (`policy_reject`).
//! 2. **Credential.** The adapter asks the client for the first mechanism (pgwire) or
//!    reads what the request carries (HTTP headers), and builds an [`Attempt`]: the
//!    connection, the [`Credential`], and a [`Conversation`] for multi-round mechanisms.
//! 3. **Decide.** [`Engine::decide`] admits the attempt past the rate limiter (or refuses:
//!    `lockout`, `busy`), checks the rule's client-certificate requirement, runs the
//!    rule's [`Chain`] link by link with PAM semantics (each link under its timeout, each
//!    step audited), runs the account stage on a success (disabled, locked and expired
//!    accounts are refused by every method), tells the limiter how the attempt ended, and
//!    audits it (`attempt_succeeded`, `attempt_failed`, `abandoned`). The [`Outcome`] is
//!    a session or a failure whose [`Error`] each adapter maps to its protocol.
//! 4. **Session.** After a success, [`Engine::open_session`] opens the session stage:
//!    touched on every use, closed (and audited) when the connection ends.
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::account::{AccountStage, Directory, UserStatus};
//! use auth_core::{
//!     ApiKeyAuthenticator, ApiKeyGrant, Attempt, Chain, ConnectionInfo, Credential, Engine,
//!     MemoryRateLimiter, MemoryStore, Outcome, Policy, Protocol, TlsInfo,
//! };
//! use secrecy::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A store holding one API key, for the service account `ci`.
//! let store = Arc::new(MemoryStore::new());
//! let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
//! let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
//! let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await.unwrap();
//! let accounts = Directory::new(store.clone());
//! accounts.update("ci", |_| {}).await.unwrap(); // an active account
//!
//! // Built once: one rule, one method, limiter and account stage on the engine.
//! let chain = Chain::builder().link(Arc::new(ApiKeyAuthenticator::new(store))).build();
//! let engine = Engine::builder(Policy::single(chain).unwrap())
//!     .rate_limiter(Arc::new(MemoryRateLimiter::default()))
//!     .accounts(Arc::new(AccountStage::new(Arc::new(accounts.clone()))))
//!     .build();
//!
//! // Per connection: offer, credential, decision. Over TLS: an API key, like a password
//! // or a bearer token, is never offered on a plaintext connection.
//! let connection = ConnectionInfo::tcp(Protocol::Http, "10.0.0.5:40000".parse().unwrap())
//!     .with_tls(TlsInfo::default());
//! let offer = engine.offer(&connection, None).unwrap();
//! let mut attempt = Attempt::new(connection.clone(), Credential::ApiKey(key.clone()));
//! let outcome = engine.decide(&offer, &mut attempt).await;
//! assert_eq!(outcome.session().map(|s| s.principal()), Some("ci"));
//!
//! // The same key once the account is disabled: refused, whichever method proved it.
//! accounts.update("ci", |r| r.status = UserStatus::Disabled).await.unwrap();
//! let mut attempt = Attempt::new(connection, Credential::ApiKey(key));
//! let outcome = engine.decide(&offer, &mut attempt).await;
//! assert!(matches!(outcome, Outcome::AccountRefused { .. }));
//! # }
//! ```
//!
//! # Features
//!
//! - `contract`: `auth_core::contract`, the suites an implementation of
//!   [`Authenticator`], [`CredentialStore`] or [`Accounts`] runs against itself.
//! - `rustls`: `auth_core::certificate::tls`, a rustls server configuration that asks
//!   clients for a certificate and leaves judging it to the policy, and the [`TlsInfo`]
//!   of a rustls connection.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
pub mod api_key;
mod attempt;
pub mod audit;
mod authenticator;
pub mod authz;
pub mod certificate;
pub mod chain;
pub mod clock;
mod connection;
pub mod conversation;
mod credential;
pub mod engine;
mod error;
pub mod local;
pub mod metrics;
mod open_session;
mod outcome;
pub mod policy;
pub mod rate_limit;
pub mod revocation;
mod session;
pub mod settings;
pub mod store;

#[cfg(feature = "contract")]
#[cfg_attr(docsrs, doc(cfg(feature = "contract")))]
pub mod contract;

pub use account::{Account, AccountStage, Accounts, Directory};
pub use api_key::{ApiKeyAuthenticator, ApiKeyGrant, ApiKeyInfo, RegisterError};
pub use attempt::Attempt;
pub use audit::{AuditEvent, AuditEventKind, AuditSink, MemoryAuditSink, TracingAuditSink};
pub use authenticator::{Authenticator, EqualCost, Transport, kinds_include};
pub use authz::{Role, ScopeRules};
pub use chain::{Action, Chain, Control, DangerousControl, Link};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use connection::{ConnectionInfo, Peer, PeerCredentials, Protocol, Proxied, TlsInfo};
pub use conversation::{
    ChannelConversation, Conversation, ConversationError, ConversationPeer, ServerMessage,
};
pub use credential::{Credential, CredentialKind};
pub use engine::{Engine, Mechanism, Offer};
pub use error::{
    AccountError, AuthorizationError, ConfigurationError, CredentialError, Error, Failure,
    InfrastructureError,
};
pub use open_session::{OpenSession, SessionOver};
pub use outcome::{Outcome, OutcomeClass};
pub use policy::{Policy, PolicyError};
pub use rate_limit::{MemoryRateLimiter, RateLimiter};
pub use revocation::{MemoryRevocations, Revocations};
pub use session::{
    Evidence, IllegalTransition, Session, SessionEnd, SessionRenewal, SessionState, StandardSession,
};
pub use settings::ConfigError;
pub use store::{CredentialStore, Key, MemoryStore, Precondition, Record, RecordMeta, StoreError};

/// Re-exported so implementers name the same `secrecy` types.
pub use secrecy;

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
