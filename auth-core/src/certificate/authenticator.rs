//! `cert`: the client is who its verified certificate names.

use std::sync::Arc;

use async_trait::async_trait;

use super::{CertificateNames, CertificateRefusal, ClientName, TrustedIssuers};
use crate::attempt::Attempt;
use crate::authenticator::Authenticator;
use crate::connection::ConnectionInfo;
use crate::credential::CredentialKind;
use crate::error::{CredentialError, Error, Failure, InfrastructureError};
use crate::outcome::Outcome;
use crate::session::{Evidence, StandardSession};

/// The method name sessions and identity maps use (PostgreSQL's `cert`).
pub const METHOD: &str = "cert";

/// The outcome for a certificate's failure: unavailable for a stale CRL (the operator's
/// to fix, and not counted toward a lockout), else rejected.
pub(crate) fn refused(failure: Failure) -> Outcome {
    if failure.error == Error::Infrastructure(InfrastructureError::Unavailable) {
        Outcome::Unavailable(failure)
    } else {
        Outcome::Rejected(failure)
    }
}

/// The chain the connection's TLS handshake received, verified against `trust` at `now`,
/// and the names it gives its holder.
pub(crate) fn certified(
    trust: &TrustedIssuers,
    which: ClientName,
    connection: &ConnectionInfo,
    now: std::time::SystemTime,
) -> Result<(String, String), Failure> {
    let chain = connection
        .tls
        .as_ref()
        .map(|tls| tls.client_certificates.as_slice())
        .unwrap_or_default();
    trust
        .verify(chain, now)
        .map_err(|refusal| refusal.failure())?;
    let leaf = chain.first().map(Vec::as_slice).unwrap_or_default();
    let names = CertificateNames::of(leaf, which)
        .map_err(|e| CertificateRefusal::Malformed(e).failure())?;
    let identity = names.identity.ok_or_else(|| {
        Failure::new(
            CredentialError::Invalid,
            format!(
                "the client certificate `{}` has no {} name",
                names.subject,
                which.as_str()
            ),
        )
    })?;
    Ok((identity, names.subject))
}

/// Authenticates [`Credential::ClientCertificate`](crate::Credential::ClientCertificate): the certificate chain the client
/// presented in the TLS handshake (which proved the client holds its key) must lead to
/// one of the trusted CAs, be valid now and not be revoked; the session is then the
/// name [`ClientName`] picks (the common name by default). Which users that name may
/// act as is the identity map's business (method `cert`), as with PostgreSQL's `cert`
/// method and `pg_ident.conf`; the account stage applies as to every method.
///
/// Refusals say why in the audit log: another CA, expired (with the date), revoked, no
/// certificate, no such name.
///
/// ```
/// use std::sync::Arc;
/// use auth_core::certificate::{CertificateAuthenticator, TrustedIssuers};
/// use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol, TlsInfo};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
/// ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
/// let mut alice = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
/// alice.distinguished_name.push(rcgen::DnType::CommonName, "alice");
/// let alice = alice.signed_by(&rcgen::KeyPair::generate().unwrap(), &ca).unwrap();
///
/// let method = CertificateAuthenticator::new(Arc::new(
///     TrustedIssuers::from_pem(ca.pem().as_bytes()).unwrap(),
/// ));
/// // What the TLS layer saw in the handshake.
/// let tls = TlsInfo { client_certificates: vec![alice.der().to_vec()], ..TlsInfo::default() };
/// let connection = ConnectionInfo::tcp(Protocol::Http, "10.0.0.5:40000".parse().unwrap())
///     .with_tls(tls);
/// let mut attempt = Attempt::new(connection, Credential::ClientCertificate);
/// let outcome = method.authenticate(&mut attempt).await;
/// assert_eq!(outcome.session().map(|s| s.principal()), Some("alice"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CertificateAuthenticator {
    trust: Arc<TrustedIssuers>,
    name: ClientName,
}

impl CertificateAuthenticator {
    /// Accepts certificates of the CAs in `trust`, naming clients by their common name.
    pub fn new(trust: Arc<TrustedIssuers>) -> Self {
        Self {
            trust,
            name: ClientName::CommonName,
        }
    }

    /// Names clients by `name` instead (PostgreSQL's `clientname=DN`, or a SAN).
    #[must_use]
    pub fn with_name(mut self, name: ClientName) -> Self {
        self.name = name;
        self
    }
}

#[async_trait]
impl Authenticator for CertificateAuthenticator {
    fn name(&self) -> &str {
        METHOD
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::ClientCertificate]
    }

    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        if !self.supports(&attempt.credential) {
            return Outcome::NotApplicable;
        }
        let now = attempt.now();
        match certified(&self.trust, self.name, &attempt.connection, now) {
            Ok((identity, subject)) => Outcome::Authenticated(
                StandardSession::new(identity, METHOD, now)
                    .with_evidence(Evidence::Certificate { subject })
                    .boxed(),
            ),
            Err(failure) => refused(failure),
        }
    }
}
