//! Client certificates (mutual TLS) as a credential, on every front door.
//!
//! The TLS layer asks every client for a certificate and lets the handshake prove the
//! client holds its key ([`tls`], feature `rustls`); it does not judge the chain. That
//! is done here, in the authentication stage, so a refusal is audited with its reason
//! and reads the injected clock:
//! - [`CertificateAuthenticator`] is the `cert` method: the certificate alone
//!   authenticates, and the name it gives ([`ClientName`]) goes through the identity
//!   map and the account stage like any other identity.
//! - [`CertificateCheck`] makes a chain of another method require a certificate
//!   (PostgreSQL's `clientcert=verify-ca|verify-full`).
//!
//! Both check the chain against [`TrustedIssuers`]: a CA bundle and CRLs.

mod authenticator;
mod name;
mod requirement;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub mod tls;
mod trust;

pub(crate) use authenticator::refused;
pub use authenticator::{CertificateAuthenticator, METHOD};
pub use name::{CertificateNames, ClientName};
pub(crate) use requirement::not_named;
pub use requirement::{CertificateCheck, Requirement};
pub use trust::{CertificateRefusal, TrustError, TrustedIssuers};
