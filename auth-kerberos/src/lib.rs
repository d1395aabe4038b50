//! # auth-kerberos
//!
//! Kerberos for auth-core through GSSAPI (MIT krb5 via the `libgssapi` crate):
//!
//! - [`GssAuthenticator`]: a GSSAPI acceptor with credentials from a configured keytab
//!   (read afresh on every handshake, so a rotated service key needs no restart) or
//!   `KRB5_KTNAME`; a multi-round token loop through auth-core's `Conversation`; every
//!   blocking GSS call off the async runtime; mutual authentication.
//! - [`Principal`] parsing and [`PrincipalMapper`], like pg_ident.conf: accepted realms,
//!   realm and instance stripping, case folding, regex maps with `\1`; the mapped user
//!   must exist in the host's user store. The session keeps the authenticated identity
//!   (`alice@TEST.REALM`) apart from the mapped user (`alice`).
//! - [`KerberosSettings`]: the `[kerberos]` section of a configuration file, built into
//!   a [`PrincipalMapper`] and a [`GssAuthenticator`].
//! - GSS failures become `Rejected`/`Unavailable` outcomes with the GSS status text in the
//!   audit detail only.
//! - Over HTTP, auth-axum reads `Authorization: Negotiate` (RFC 4559) and sends the
//!   mutual-authentication token back; this crate only sees the GSS token.
//!
//! The only crate of the project with `unsafe`, in one documented FFI call
//! (`acceptor.rs`).

#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acceptor;
mod authenticator;
pub mod mapping;
pub mod principal;
mod settings;

pub use authenticator::{GssAuthenticator, MAX_TOKEN_LEN, UserDirectory};
pub use mapping::{CaseFold, MapError, MapRule, PrincipalMapper};
pub use principal::{Principal, PrincipalError};
pub use settings::{CaseSetting, KerberosSettings, MapSettings};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// `auth_kerberos_handshakes_total{outcome}`: GSS-API handshakes, by how they ended
/// (`success`, `rejected`, `unavailable`, ...).
pub const HANDSHAKES_METRIC: &str = "auth_kerberos_handshakes_total";
