//! # auth-oauth
//!
//! OAuth 2.0 bearer tokens for auth-core: [`JwtAuthenticator`] validates JWTs from one or
//! several trusted issuers, with keys from their JWKS (explicit URL or discovery), a
//! strict token parser, per-key algorithms verified by aws-lc-rs on pre-parsed keys, and
//! a cache of validated tokens.

#![forbid(unsafe_code)]

mod authenticator;
pub mod key;
mod keyset;
pub mod token;

pub use authenticator::{IssuerConfig, JwtAuthenticator, ValidationSettings};
pub use key::{Alg, KeyError, VerifyingKey};
pub use keyset::{FetchSettings, KeySource, LookupError};
