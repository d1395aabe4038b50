//! # auth-tower
//!
//! What the HTTP-based adapters ([auth-axum] and [auth-tonic]) share, so each keeps only
//! its protocol's mapping:
//!
//! - [`credential_from_headers`]: `Authorization: Bearer`, `Basic` and `Negotiate`, or an
//!   API-key header, read strictly (two `Authorization` headers, non-ASCII, broken
//!   encodings are [`CredentialError::Malformed`](auth_core::CredentialError::Malformed));
//! - [`parse_basic`]: strict HTTP Basic (RFC 7617);
//! - [`Gate`]: a request's headers and connection through an auth-core
//!   [`Engine`](auth_core::Engine), to a [`Verdict`]; a Negotiate request gets a
//!   one-round conversation whose final token comes back in the verdict, for the
//!   mutual-authentication header;
//! - [`public_message`]: the generic text a client sees for each failure kind;
//! - [`GateLayer`] and [`GateService`]: the tower plumbing, generic over a [`Mapping`]
//!   that says where the peer address is and what a grant or refusal looks like.
//!
//! [auth-axum]: https://docs.rs/auth-axum
//! [auth-tonic]: https://docs.rs/auth-tonic

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod basic;
mod credential;
mod forwarded;
mod gate;
mod message;
mod negotiate;
mod reuse;
mod service;

pub use basic::{BasicError, MAX_HEADER_LEN, MAX_USER_LEN, parse_basic};
pub use credential::{API_KEY_HEADER, MAX_NEGOTIATE_TOKEN, credential_from_headers};
pub use forwarded::behind_proxies;
pub use gate::{DangerousGate, Gate, Verdict};
pub use message::public_message;
pub use negotiate::negotiate_header;
pub use reuse::SESSION_REUSE_METRIC;
pub use service::{GateFuture, GateLayer, GateService, Mapping, connection_info};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
