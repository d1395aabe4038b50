//! # auth-oauth
//!
//! OAuth 2.0 bearer tokens for auth-core: [`JwtAuthenticator`] validates JWTs from one or
//! several trusted issuers, with keys from their JWKS (explicit URL or discovery), a
//! strict token parser, per-key algorithms verified by aws-lc-rs on pre-parsed keys, and
//! a cache of validated tokens; [`IntrospectionAuthenticator`] checks opaque tokens with
//! RFC 7662 introspection, cached within the token's `exp` and re-checked for revocation
//! as often as configured; [`ClientCredentials`] supplies cached, refreshed tokens for
//! outbound calls; [`PasswordGrantAuthenticator`] exchanges a password for tokens (the
//! bridge from database logins to an OAuth server), refreshes them and revokes them when
//! the session ends;
//! [`OAuthBearer`] runs OAUTHBEARER (RFC 7628), the SASL mechanism PostgreSQL 18 clients
//! log in with, on either validator.
//! File sections: [`IssuerSettings`], [`PasswordGrantSettings`], [`IntrospectionSettings`].
//!
//! Every call to a provider goes through one [`HttpClient`]: HTTPS on rustls (aws-lc-rs),
//! the platform's and the webpki roots plus the CAs you add, an optional client
//! certificate, no redirects, and answers capped while they are read. Plain `http://` is
//! refused for every issuer, JWKS, introspection, token and revocation URL except on
//! loopback, including a `jwks_uri` found by discovery.
//!
//! # Features
//!
//! - `fuzzing`: `auth_oauth::fuzzing`, the introspection-answer and OAUTHBEARER parsers
//!   without their network, for the fuzz targets in `tests/fuzz`; not a stable interface.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authenticator;
mod client_auth;
mod client_credentials;
mod endpoint;
pub mod http;
mod introspection;
pub mod key;
mod keyset;
mod oauthbearer;
mod password_grant;
mod settings;
pub mod token;

pub use authenticator::{IssuerConfig, JwtAuthenticator, ValidationSettings};
pub use client_auth::{
    AssertionKey, ClientAuth, ClientSecret, ConfigError, MIN_CLIENT_SECRET, SecretError,
    client_secret_from_env, client_secret_from_store,
};
pub use client_credentials::{ClientCredentials, ClientCredentialsConfig, TokenSourceError};
pub use http::{HttpClient, HttpError};
pub use introspection::{IntrospectionAuthenticator, IntrospectionConfig};
pub use key::{Alg, KeyError, VerifyingKey};

/// Parsers without their network around them, for the fuzz targets in `tests/fuzz`
/// (feature `fuzzing`; not a stable interface).
#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::introspection::read_answer_for_fuzzing as introspection_answer;

    /// Parses an OAUTHBEARER initial response and its bearer token; `Err` says why not.
    pub fn oauthbearer_initial(message: &[u8]) -> Result<Option<String>, &'static str> {
        match crate::oauthbearer::parse_initial(message)? {
            crate::oauthbearer::Request::Discovery => Ok(None),
            crate::oauthbearer::Request::Auth(auth) => {
                crate::oauthbearer::bearer_token(auth).map(|t| Some(t.to_owned()))
            }
        }
    }
}
pub use keyset::{FetchSettings, KeySource, LookupError};
pub use oauthbearer::{OAUTHBEARER, OAuthBearer};
pub use password_grant::{
    GrantError, OAuthSession, PasswordGrantAuthenticator, PasswordGrantConfig,
};
pub use settings::{
    ClientAuthMethod, IntrospectionSettings, IssuerSettings, PasswordGrantSettings,
};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// `auth_jwks_fetches_total{issuer, result}`: fetches of a configured issuer's keys
/// (`result` is `ok` or `failed`; `issuer` is one the configuration names, so the series
/// are bounded by it).
pub const JWKS_FETCHES_METRIC: &str = "auth_jwks_fetches_total";

/// `auth_jwks_age_seconds{issuer}`: how old the keys in use of a configured issuer are,
/// as of the last [`JwtAuthenticator::probe_issuer`].
pub const JWKS_AGE_METRIC: &str = "auth_jwks_age_seconds";

/// `auth_token_cache_total{cache, result}`: bearer tokens looked up in a cache of
/// validated tokens (`cache` is `jwt` or `introspection`; `result` is `hit` or `miss`).
pub const TOKEN_CACHE_METRIC: &str = "auth_token_cache_total";

/// `auth_oauthbearer_discovery_total`: OAUTHBEARER discovery rounds (a client asking
/// where to get a token, answered with the issuer's discovery document).
pub const OAUTHBEARER_DISCOVERY_METRIC: &str = "auth_oauthbearer_discovery_total";
