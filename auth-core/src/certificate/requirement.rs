//! A certificate required next to another method: PostgreSQL's
//! `clientcert=verify-ca|verify-full` on a rule.

use std::sync::Arc;
use std::time::SystemTime;

use super::authenticator::{METHOD, certified};
use super::{ClientName, TrustedIssuers};
use crate::connection::ConnectionInfo;
use crate::error::{CredentialError, Failure};

/// How much a rule asks of the client certificate besides its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// A certificate of a trusted CA, valid and not revoked, whoever it names.
    VerifyCa,
    /// That, and the name it gives must be the user the method authenticated (or be
    /// mapped to it: identity map entries for method `cert`).
    VerifyFull,
}

impl Requirement {
    /// From its configuration spelling, `verify-ca` or `verify-full`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "verify-ca" => Some(Self::VerifyCa),
            "verify-full" => Some(Self::VerifyFull),
            _ => None,
        }
    }
}

/// A client certificate a policy rule requires before any of its chain's methods runs
/// ([`Rule::with_client_certificate`](crate::policy::Rule::with_client_certificate)):
/// without a verified certificate the attempt is refused before a method judges any
/// secret (on pgwire the client has answered the method's first request by then), and
/// with [`Requirement::VerifyFull`] a success whose user the certificate does not name is
/// refused too.
#[derive(Debug, Clone)]
pub struct CertificateCheck {
    trust: Arc<TrustedIssuers>,
    requirement: Requirement,
    name: ClientName,
}

impl CertificateCheck {
    /// Requires a certificate of the CAs in `trust`, as `requirement` says, naming
    /// clients by their common name.
    pub fn new(trust: Arc<TrustedIssuers>, requirement: Requirement) -> Self {
        Self {
            trust,
            requirement,
            name: ClientName::CommonName,
        }
    }

    /// Names clients by `name` instead.
    #[must_use]
    pub fn with_name(mut self, name: ClientName) -> Self {
        self.name = name;
        self
    }

    /// The requirement.
    pub fn requirement(&self) -> Requirement {
        self.requirement
    }

    /// The certificate's verdict before any method runs: the identity it names.
    pub(crate) fn verify(
        &self,
        connection: &ConnectionInfo,
        now: SystemTime,
    ) -> Result<String, Failure> {
        certified(&self.trust, self.name, connection, now)
            .map(|(identity, _)| identity)
            .map_err(|f| {
                let detail = format!("the rule requires a client certificate: {}", f.detail);
                Failure::new(f.error, detail)
            })
    }
}

/// The refusal of a success whose user the certificate does not name.
pub(crate) fn not_named(identity: &str, user: &str) -> Failure {
    Failure::new(
        CredentialError::Invalid,
        format!(
            "the client certificate names `{identity}`, which may not act as `{user}` \
             (clientcert=verify-full; map it with an identity map entry for method `{METHOD}`)"
        ),
    )
}
