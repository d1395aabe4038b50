//! Which CAs issue client certificates, which certificates they revoked, and the verdict on
//! a presented chain at a given time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::error::{CredentialError, Error, Failure, InfrastructureError};

/// The longest chain (leaf and intermediates) looked at; real ones have two or three.
const MAX_CHAIN: usize = 8;

/// A CA bundle or CRL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The CA bundle is not PEM certificates, or holds none, or one is not a CA.
    #[error("client CA bundle: {0}")]
    Bundle(String),
    /// The CRL file is not PEM CRLs, or one cannot be parsed.
    #[error("client certificate CRL: {0}")]
    Crl(String),
}

/// Why a presented certificate chain was refused. The client is told only that
/// authentication failed; this goes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateRefusal {
    /// The client presented no certificate.
    #[error("no client certificate was presented")]
    Missing,
    /// The certificate is not a parsable X.509 certificate.
    #[error("the client certificate cannot be parsed: {0}")]
    Malformed(String),
    /// No trusted CA issued it (another CA, a self-signed certificate, a missing
    /// intermediate).
    #[error("the client certificate was not issued by a trusted CA")]
    UnknownIssuer,
    /// Its validity ended.
    #[error("the client certificate expired at {0}")]
    Expired(String),
    /// Its validity has not begun.
    #[error("the client certificate is not valid before {0}")]
    NotYetValid(String),
    /// A CRL of its issuer lists it.
    #[error("the client certificate is revoked")]
    Revoked,
    /// A CRL that would say whether it is revoked is past its next update.
    #[error("the certificate revocation list expired at {0}; publish a fresh one")]
    CrlExpired(String),
    /// A trusted CA has its issuer's name but did not sign it: an impostor CA of the
    /// same name, or a tampered certificate.
    #[error(
        "the client certificate's signature does not verify against the trusted CA of its \
         issuer's name (another CA of the same name?)"
    )]
    BadSignature,
    /// Its extended key usage excludes client authentication.
    #[error("the client certificate is not for client authentication")]
    WrongUsage,
    /// Anything else webpki found wrong (a bad signature, a name constraint).
    #[error("the client certificate does not verify: {0}")]
    Invalid(String),
}

impl CertificateRefusal {
    /// The failure an authenticator reports for this refusal.
    pub fn failure(&self) -> Failure {
        let error = match self {
            Self::Missing => Error::Credential(CredentialError::Missing),
            Self::Malformed(_) => Error::Credential(CredentialError::Malformed),
            Self::UnknownIssuer => Error::Credential(CredentialError::UntrustedIssuer),
            Self::Expired(_) | Self::NotYetValid(_) => Error::Credential(CredentialError::Expired),
            Self::Revoked | Self::WrongUsage => Error::Credential(CredentialError::Invalid),
            // The operator's list went stale, not the client's certificate: not a failed
            // login that counts toward a lockout.
            Self::CrlExpired(_) => Error::Infrastructure(InfrastructureError::Unavailable),
            Self::BadSignature | Self::Invalid(_) => {
                Error::Credential(CredentialError::BadSignature)
            }
        };
        Failure::new(error, self.to_string())
    }
}

fn rfc3339(time: UnixTime) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(time.as_secs())).to_string()
}

fn refusal_of(e: webpki::Error) -> CertificateRefusal {
    match e {
        webpki::Error::UnknownIssuer => CertificateRefusal::UnknownIssuer,
        webpki::Error::CertExpired { not_after, .. } => {
            CertificateRefusal::Expired(rfc3339(not_after))
        }
        webpki::Error::CertNotValidYet { not_before, .. } => {
            CertificateRefusal::NotYetValid(rfc3339(not_before))
        }
        webpki::Error::CertRevoked => CertificateRefusal::Revoked,
        webpki::Error::InvalidSignatureForPublicKey => CertificateRefusal::BadSignature,
        webpki::Error::CrlExpired { next_update, .. } => {
            CertificateRefusal::CrlExpired(rfc3339(next_update))
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => CertificateRefusal::WrongUsage,
        #[allow(deprecated)]
        webpki::Error::RequiredEkuNotFound => CertificateRefusal::WrongUsage,
        other => CertificateRefusal::Invalid(format!("{other:?}")),
    }
}

/// The CAs whose client certificates are accepted, and their revocation lists: what a
/// `cert` method and a `clientcert=verify-ca|verify-full` rule check a chain against
/// (PostgreSQL's `ssl_ca_file` and `ssl_crl_file`).
///
/// ```
/// use auth_core::certificate::{CertificateRefusal, TrustedIssuers};
///
/// let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
/// ca.distinguished_name.push(rcgen::DnType::CommonName, "Example CA");
/// ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
/// let key = rcgen::KeyPair::generate().unwrap();
/// let alice = rcgen::CertificateParams::new(vec!["alice".into()]).unwrap()
///     .signed_by(&key, &ca).unwrap();
///
/// let trusted = TrustedIssuers::from_pem(ca.pem().as_bytes()).unwrap();
/// let now = std::time::SystemTime::now();
/// assert_eq!(trusted.verify(&[alice.der().to_vec()], now), Ok(()));
/// let stranger = rcgen::generate_simple_self_signed(vec!["alice".into()]).unwrap();
/// assert_eq!(
///     trusted.verify(&[stranger.cert.der().to_vec()], now),
///     Err(CertificateRefusal::UnknownIssuer)
/// );
/// ```
pub struct TrustedIssuers {
    anchors: Vec<TrustAnchor<'static>>,
    /// The CAs' subjects (the DER contents of each Name, without its SEQUENCE header, as
    /// webpki keeps them), which a TLS server may send as hints.
    subjects: Vec<Vec<u8>>,
    crls: Vec<CertRevocationList<'static>>,
}

impl fmt::Debug for TrustedIssuers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuers")
            .field("cas", &self.anchors.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}

impl TrustedIssuers {
    /// The CAs of a PEM bundle (one or more `CERTIFICATE` blocks), without CRLs.
    pub fn from_pem(bundle: &[u8]) -> Result<Self, TrustError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bundle)
            .collect::<Result<_, _>>()
            .map_err(|e| TrustError::Bundle(e.to_string()))?;
        if certs.is_empty() {
            return Err(TrustError::Bundle("no CERTIFICATE block in the PEM".into()));
        }
        let mut anchors = Vec::with_capacity(certs.len());
        let mut subjects = Vec::with_capacity(certs.len());
        for (i, cert) in certs.iter().enumerate() {
            // A leaf in the bundle would let its holder issue certificates for any name.
            let is_ca = x509_parser::parse_x509_certificate(cert.as_ref())
                .ok()
                .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|b| b.value.ca));
            if is_ca != Some(true) {
                return Err(TrustError::Bundle(format!(
                    "certificate {} is not a CA certificate (basicConstraints cA=true)",
                    i + 1
                )));
            }
            let anchor = webpki::anchor_from_trusted_cert(cert)
                .map_err(|e| TrustError::Bundle(format!("certificate {}: {e:?}", i + 1)))?
                .to_owned();
            subjects.push(anchor.subject.as_ref().to_vec());
            anchors.push(anchor);
        }
        Ok(Self {
            anchors,
            subjects,
            crls: Vec::new(),
        })
    }

    /// Adds the revocation lists of a PEM file (`X509 CRL` blocks). A certificate a list
    /// names is refused; so is any certificate of that list's issuer once the list is past
    /// its next update, as OpenSSL does, so publish fresh ones.
    pub fn with_crls_pem(mut self, pem: &[u8]) -> Result<Self, TrustError> {
        let ders: Vec<CertificateRevocationListDer<'static>> =
            CertificateRevocationListDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| TrustError::Crl(e.to_string()))?;
        if ders.is_empty() {
            return Err(TrustError::Crl("no X509 CRL block in the PEM".into()));
        }
        for (i, der) in ders.iter().enumerate() {
            let crl = OwnedCertRevocationList::from_der(der.as_ref())
                .map_err(|e| TrustError::Crl(format!("CRL {}: {e:?}", i + 1)))?;
            self.crls.push(crl.into());
        }
        Ok(self)
    }

    /// The CAs' subject names (DER contents without the outer SEQUENCE header; rustls's
    /// `DistinguishedName::in_sequence` adds it), for a TLS server's certificate request.
    pub fn subjects(&self) -> &[Vec<u8>] {
        &self.subjects
    }

    /// Whether `chain` (DER, leaf first, as the client sent it) leads to one of the CAs,
    /// is valid at `now` for client authentication, and is not revoked. Key possession is
    /// the TLS handshake's business: only give it chains from a handshake.
    pub fn verify(&self, chain: &[Vec<u8>], now: SystemTime) -> Result<(), CertificateRefusal> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(CertificateRefusal::Missing);
        };
        let leaf = CertificateDer::from(leaf.as_slice());
        let end_entity = EndEntityCert::try_from(&leaf)
            .map_err(|e| CertificateRefusal::Malformed(format!("{e:?}")))?;
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .take(MAX_CHAIN - 1)
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let crls: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crls).ok().map(|options| {
            options
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Allow)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build()
        });
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &intermediates,
                UnixTime::since_unix_epoch(since_epoch),
                KeyUsage::client_auth(),
                revocation,
                None,
            )
            .map(|_| ())
            .map_err(refusal_of)
    }
}
