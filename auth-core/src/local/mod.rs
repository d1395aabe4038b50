//! Methods for clients on this machine only: `peer` (the kernel says which OS user runs
//! the connecting process on a Unix-domain socket) and `trust` (no proof at all).
//!
//! Both are [`local_only`](crate::Authenticator::local_only): a
//! [`Policy`](crate::Policy) refuses to be built with either behind a rule that can match
//! a connection from another machine, and each refuses such a connection at run time too.
//! They prove an OS user, not a database user: the chain (or its
//! [account stage](crate::account)) still decides whether that OS user may act as the
//! requested user, through the identity map as PostgreSQL's `pg_ident.conf` does.
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::local::PeerAuthenticator;
//! use auth_core::policy::{ConnectionType, Rule, Target};
//! use auth_core::{Chain, Policy};
//!
//! let chain = Arc::new(Chain::builder().link(Arc::new(PeerAuthenticator::new())).build());
//! // `peer` behind a rule for every connection: refused when the policy is built.
//! let everywhere = Rule::new("admin", Target::Chain(chain.clone()));
//! let err = Policy::new(vec![everywhere]).unwrap_err();
//! assert!(err.to_string().contains("rule `admin`"), "{err}");
//! // Behind a Unix-socket rule: fine.
//! let local = Rule::new("admin", Target::Chain(chain)).with_connection(ConnectionType::Local);
//! assert!(Policy::new(vec![local]).is_ok());
//! ```

mod peer;
mod trust;

pub use peer::{OsUsers, PeerAuthenticator, SystemUsers};
pub use trust::TrustAuthenticator;
