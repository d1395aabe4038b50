//! # auth-pgwire
//!
//! PostgreSQL wire protocol authentication for auth-core, on the `pgwire` crate. The
//! adapter only translates: the startup packet becomes an auth-core `Attempt`, the host's
//! `Policy` picks the chain (first matching rule, like pg_hba.conf), and the chain's
//! methods decide. Requests follow what the chain accepts:
//!
//! - SCRAM-SHA-256 (and SCRAM-SHA-256-PLUS first under TLS with channel binding), run by
//!   auth-password's SCRAM through a channel-backed `Conversation`;
//! - a cleartext password, only over TLS unless allowed;
//! - Kerberos (GSSAPI);
//! - on a Unix socket, the connecting process's OS user (`peer`), and on local
//!   connections no credential at all (`trust`), both run without asking the client.
//!
//! [`serve`] owns each connection's loop: TLS on SSLRequest (plaintext bytes sent after
//! the SSLRequest abort the connection with 08P01, the CVE-2021-23214 class), GSSENCRequest
//! answered `N`, an authentication timeout, and FATAL ErrorResponses with PostgreSQL's
//! SQLSTATEs (28P01, 28000, 08P01). Before authentication every frame length is checked
//! ([`frames`]), and every connection first takes a place among the unauthenticated
//! connections from auth-listen's [`Admission`] (in all and per address; a burst waits
//! for places, and only a connection that found none within the wait hears FATAL
//! 53300). Query handlers reach the session with [`session()`].
//!
//! [`PgServer`] puts it together: an engine, TLS, a query handler and a listener make a
//! server in a few lines.
//!
//! [`serve_unix`] serves a [`unix::UnixSocket`] (`.s.PGSQL.<port>`, so `psql -h DIR`
//! connects): its connections are `local` to the policy and carry the kernel's peer
//! credentials, for `peer` authentication. A chain that accepts no credential (`trust`)
//! or the peer credential is run at once, with no request to the client.
//!
//! # Features
//!
//! - `self-signed`: [`TlsSetup`]`::self_signed` (from auth-listen), a fresh self-signed
//!   certificate for examples and tests.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod errors;
pub mod frames;
pub mod messages;
mod serve;
mod server;
mod session;
mod startup;
pub mod unix;

/// The `pgwire` crate this adapter is built on: implement its query handlers against
/// this re-export, so the versions always match.
pub use pgwire;

pub use auth_listen::{Admission, AdmissionSettings, TlsSetup, accept};
pub use errors::sqlstate;
pub use serve::{ServeConfig, serve, serve_unix};
pub use server::{PgServer, SimpleQueries};
pub use session::{AuthenticatedSession, session};
pub use startup::{MAX_NAME_LEN, PgAuthConfig, PgAuthenticator};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
