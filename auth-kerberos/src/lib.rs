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
//! - GSS failures become `Rejected`/`Unavailable` outcomes with the GSS status text in the
//!   audit detail only.
//! - [`spnego`]: HTTP `Negotiate` framing (RFC 4559).
//!
//! The only crate of the project with `unsafe`, in one documented FFI call
//! (`acceptor.rs`).

#![deny(unsafe_code)]

mod acceptor;
mod authenticator;
pub mod mapping;
pub mod principal;
pub mod spnego;

pub use authenticator::{GssAuthenticator, MAX_TOKEN_LEN, UserDirectory};
pub use mapping::{CaseFold, MapError, MapRule, PrincipalMapper};
pub use principal::{Principal, PrincipalError};
