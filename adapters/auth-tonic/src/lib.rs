//! # auth-tonic
//!
//! gRPC authentication for tonic servers through an auth-core
//! [`Engine`](auth_core::Engine). tonic's interceptors are synchronous, so this is a tower
//! layer: [`AuthLayer`] reads the `authorization` metadata (`Bearer`, `Basic`,
//! `Negotiate`) or an API-key entry, has the engine decide it for the client's address, and
//! either passes the call on with an [`Authenticated`] identity in its extensions or ends
//! it with the status of this crate's column of the error mapping ([`grpc_code`]):
//! `UNAUTHENTICATED` for missing, unreadable or bad credentials (and a policy that refuses
//! the connection), `PERMISSION_DENIED` for a missing role or scope, `INVALID_ARGUMENT` for
//! a password the policy calls weak, `RESOURCE_EXHAUSTED` when rate limited, `UNAVAILABLE`
//! when a backend is down, `INTERNAL` for a server configuration that cannot work, each
//! with a generic message (the reason goes to the audit log). A Negotiate success returns the mutual-authentication
//! token in `www-authenticate` response metadata.
//!
//! The layer can wrap the whole server (`Server::builder().layer(..)`) or single services
//! ([`AuthService`] keeps the service's name), leaving others such as reflection open.
//! Served through an auth-listen [`Listener`](auth_listen::Listener) with [`incoming`],
//! connections are admitted (places for unauthenticated ones, in all and per address;
//! a burst waits instead of being refused), TLS is done by the listener, and each call
//! carries its connection's [`auth_listen::ConnectionFacts`], from which the layer
//! takes the peer and TLS (client certificates, channel binding).
//! Served otherwise, the peer address comes from tonic's `TcpConnectInfo`. Behind tonic's own TLS
//! (`Server::tls_config`), the `tls` feature reads its `TlsConnectInfo`, so `hostssl`
//! rules match and client certificates reach the policy; behind another TLS terminator,
//! insert an [`auth_core::TlsInfo`] into the request extensions (a tower layer before
//! this one).
//! Handlers read the identity with [`RequestExt::authenticated`] and check scopes and
//! roles, which answer `PERMISSION_DENIED`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn engine() -> Arc<auth_core::Engine> {
//! #     Arc::new(auth_core::Engine::builder(auth_core::Policy::new(vec![]).unwrap()).build())
//! # }
//! # async fn run(routes: tonic::service::Routes) -> Result<(), tonic::transport::Error> {
//! use auth_tonic::AuthLayer;
//!
//! tonic::transport::Server::builder()
//!     .layer(AuthLayer::new(engine()))
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse().unwrap())
//!     .await
//! # }
//! ```
//!
//! In a handler:
//!
//! ```
//! use auth_tonic::RequestExt;
//!
//! fn who(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
//!     let auth = request.authenticated()?;
//!     auth.require_scope("demo:read")?;
//!     Ok(auth.user().to_owned())
//! }
//! ```
//!
//! The request plumbing is auth-tower's, shared with auth-axum; this crate holds only the
//! gRPC mapping.
//!
//! # Features
//!
//! - `tls`: behind tonic's own TLS (`Server::tls_config`), reads its `TlsConnectInfo`, so
//!   `hostssl` rules match and client certificates reach the policy. Not needed behind an
//!   auth-listen [`Listener`](auth_listen::Listener), which does TLS itself.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod identity;
mod incoming;
mod layer;
mod status;

pub use identity::{Authenticated, RequestExt};
pub use incoming::{GrpcConnection, incoming};
pub use layer::{AuthLayer, AuthService, DangerousAuthLayer, GrpcMapping};
pub use status::{grpc_code, status_for};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
