//! # auth-axum
//!
//! HTTP authentication for axum (and any tower HTTP service) through an auth-core
//! [`Engine`](auth_core::Engine): [`AuthLayer`] reads the request's credential
//! (`Authorization: Bearer`, `Basic` or `Negotiate`, or an API-key header), has the
//! engine decide it for the client's address, and either passes the request on with an
//! [`Authenticated`] session in its extensions or answers with the mapped failure: 401
//! with a `WWW-Authenticate` challenge per configured method (RFC 6750, RFC 7617, RFC
//! 4559), 400 for a malformed header, 403 with Bearer's `insufficient_scope`, 429, 503,
//! always with an RFC 9457 problem+json body whose details are generic. A Negotiate
//! (Kerberos) success carries the server's mutual-authentication token back in
//! `WWW-Authenticate`. Handlers take [`Authenticated`] (or `Option<Authenticated>`) and
//! check roles and scopes with [`Authenticated::require_scope`] and
//! [`Authenticated::require_role`].
//!
//! For busy APIs, [`AuthLayer::dangerous`]`().reuse_sessions(..)` lets a repeated bearer token skip the
//! chain for a bounded time (see its documentation for what that gives up).
//!
//! [`serve`] runs a router on an auth-listen [`Listener`](auth_listen::Listener), which
//! admits connections (places for unauthenticated ones, in all and per address, waiting
//! instead of refusing a burst), does TLS, and gives each request its connection's
//! facts: the peer, the handshake's [`auth_core::TlsInfo`] with the client's
//! certificates, for `hostssl` rules and certificate methods. Served otherwise (plain
//! `axum::serve` with `into_make_service_with_connect_info`), the peer comes from
//! `ConnectInfo<SocketAddr>`, and a TLS acceptor in front marks a request as encrypted by
//! inserting a `TlsInfo` into its extensions.
//!
//! The adapter holds no policy of its own: what a credential means is the engine's
//! business (its rules, chains, limiter, account stage and audit). The HTTP column of the
//! error mapping is this crate's: [`http_status`] and [`bearer_error`].

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod extract;
mod layer;
mod response;
mod serve;

pub use auth_tower::{API_KEY_HEADER, credential_from_headers};
pub use extract::{AuthRejection, Authenticated};
pub use layer::{AuthLayer, AuthService, Challenge, DangerousAuthLayer, HttpMapping};
pub use response::{bearer_error, failure_response, http_status};
pub use serve::{serve, serve_until};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
