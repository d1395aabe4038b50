//! # auth-listen
//!
//! One listener for every front door (pgwire, HTTP, gRPC), protocol-neutral:
//!
//! - **Admission** ([`Admission`]): places for connections that have not authenticated
//!   yet, in total and per address (IPv4, IPv6 by /64; loopback, `::1` and Unix-socket
//!   peers kept apart and never counted against the total). A connection beyond its
//!   address's places **waits** for one (5 s by default) instead of being refused, so a
//!   pool opening hundreds of connections at once is served in turn; only when the wait
//!   runs out is it refused, and the refusal is audited (`connection_refused`).
//!   Connections that have sent nothing hold no place at all.
//! - **Accepting** ([`Listener::accept`], [`accept`]): backoff when accepting fails (out
//!   of file descriptors), never a busy loop.
//! - **TLS** ([`TlsSetup`]): the handshake under a deadline, yielding the stream and the
//!   connection's facts ([`auth_core::TlsInfo`]: version, SNI, the client's chain, and
//!   the `tls-server-end-point` channel-binding data computed once from the certificate).
//! - **Connections** ([`Listener::incoming`], [`Connection`], [`ConnectionFacts`]): what
//!   hyper and tonic serve, carrying the facts the auth layers read; a request that
//!   authenticates gives the connection's place back.
//!
//! The front doors build on it: `auth_pgwire::PgServer` and `auth_pgwire::serve`,
//! `auth_axum::serve`, `auth_tonic::incoming`. Share one [`Admission`] between all of a
//! process's listeners.
//!
//! # Features
//!
//! - `self-signed`: [`TlsSetup`]`::self_signed`, a fresh self-signed certificate for
//!   examples and tests.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admission;
mod connection;
mod listener;
pub mod metrics;
pub mod proxy;
mod settings;
pub mod tls;

pub use admission::{
    Admission, AdmissionSettings, Admitted, Place, RefusalReason, Refused, Silent,
};
pub use connection::{Connection, ConnectionFacts, REFUSAL_LIFETIME};
pub use listener::{DEFAULT_UNAUTHENTICATED_TIMEOUT, Incoming, Listener, accept};
pub use proxy::{
    HeaderSource, Peekable, ProxyError, ProxyHeader, SharedTrustedProxies, TrustedProxies,
    read_proxy_header,
};
pub use settings::{ListenSettings, ListenSetup};
pub use tls::{TlsCurrent, TlsError, TlsSetup};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
