//! What a connection is offered: the mechanisms of the rule's chain, in order.

use std::sync::Arc;

use crate::authenticator::Authenticator;
use crate::certificate::CertificateCheck;
use crate::chain::Chain;
use crate::connection::ConnectionInfo;
use crate::credential::{Credential, CredentialKind};

/// One way a client may authenticate, as an adapter asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// The operating system's word on a Unix-socket peer (`peer`): nothing to ask, the
    /// adapter decides at once with [`Credential::Peer`].
    Peer,
    /// The certificate the TLS handshake received: nothing to ask, the adapter decides at
    /// once with [`Credential::ClientCertificate`].
    ClientCertificate,
    /// No credential at all (`trust`): the adapter decides at once with
    /// [`Credential::Absent`].
    Trust,
    /// A GSS-API (Kerberos) exchange.
    Gss,
    /// A SASL mechanism; `channel_binding` when it binds the exchange to the TLS channel
    /// (`SCRAM-SHA-256-PLUS`), offered only on a connection with channel-binding data.
    Sasl {
        /// The mechanism's name.
        name: &'static str,
        /// Whether it uses channel binding.
        channel_binding: bool,
    },
    /// A password in cleartext (over TLS or a Unix socket: the adapter's transport rule).
    Password,
    /// A bearer token.
    Bearer,
    /// An API key.
    ApiKey,
}

impl Mechanism {
    /// The credential to decide with at once, for a mechanism that asks the client for
    /// nothing ([`Peer`](Self::Peer), [`ClientCertificate`](Self::ClientCertificate),
    /// [`Trust`](Self::Trust)).
    pub fn immediate(self) -> Option<Credential> {
        match self {
            Self::Peer => Some(Credential::Peer),
            Self::ClientCertificate => Some(Credential::ClientCertificate),
            Self::Trust => Some(Credential::Absent),
            _ => None,
        }
    }
}

/// What the engine offers one connection: the rule that matched and the mechanisms of its
/// chain in the order to ask for them. Carried from [`Engine::offer`](super::Engine::offer)
/// to [`Engine::decide`](super::Engine::decide), so the chain that runs is the one whose
/// mechanisms were offered.
///
/// The order: at most one mechanism that asks nothing, first (a peer with credentials
/// from the kernel, a certificate the handshake received, trust), then GSS-API, SASL
/// (`-PLUS` before plain), cleartext password, bearer token and API key. A wire protocol
/// that allows one method per connection (pgwire) takes the first, and every SASL
/// mechanism together.
#[derive(Debug, Clone)]
pub struct Offer {
    rule: Arc<str>,
    pub(super) chain: Arc<Chain>,
    pub(super) certificate: Option<Arc<CertificateCheck>>,
    mechanisms: Vec<Mechanism>,
    needs_tls: bool,
}

impl Offer {
    pub(super) fn new(
        rule: &Arc<str>,
        chain: &Arc<Chain>,
        certificate: Option<&Arc<CertificateCheck>>,
        connection: &ConnectionInfo,
    ) -> Self {
        let kinds = chain.accepts();
        let has = |k: CredentialKind| kinds.contains(&k);
        let mut mechanisms = Vec::with_capacity(kinds.len());
        // A peer-only chain on a connection without peer credentials (loopback TCP) is
        // offered peer anyway, so the method's refusal is audited; so is a
        // certificate-only chain without a certificate.
        let presented = connection
            .tls
            .as_ref()
            .is_some_and(|t| !t.client_certificates.is_empty());
        let only = |k: CredentialKind| kinds == [k];
        if has(CredentialKind::Peer)
            && (connection.peer.credentials().is_some() || only(CredentialKind::Peer))
        {
            mechanisms.push(Mechanism::Peer);
        } else if has(CredentialKind::ClientCertificate)
            && (presented || only(CredentialKind::ClientCertificate))
        {
            mechanisms.push(Mechanism::ClientCertificate);
        } else if has(CredentialKind::Absent) {
            mechanisms.push(Mechanism::Trust);
        }
        if has(CredentialKind::Gss) {
            mechanisms.push(Mechanism::Gss);
        }
        let binding = connection.channel_binding().is_some();
        let mut needs_tls = false;
        // -PLUS first: a client that can bind should.
        for plus in [true, false] {
            for kind in kinds {
                let CredentialKind::Sasl(name) = *kind else {
                    continue;
                };
                if name.ends_with("-PLUS") != plus {
                    continue;
                }
                if plus && !binding {
                    needs_tls = true;
                    continue;
                }
                mechanisms.push(Mechanism::Sasl {
                    name,
                    channel_binding: plus,
                });
            }
        }
        for (kind, mechanism) in [
            (CredentialKind::Password, Mechanism::Password),
            (CredentialKind::Bearer, Mechanism::Bearer),
            (CredentialKind::ApiKey, Mechanism::ApiKey),
        ] {
            if has(kind) {
                mechanisms.push(mechanism);
            }
        }
        Self {
            rule: rule.clone(),
            chain: chain.clone(),
            certificate: certificate.cloned(),
            mechanisms,
            needs_tls,
        }
    }

    /// The name of the policy rule that matched.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The mechanisms to ask for, in order.
    pub fn mechanisms(&self) -> &[Mechanism] {
        &self.mechanisms
    }

    /// Whether `mechanism` is offered.
    pub fn includes(&self, mechanism: Mechanism) -> bool {
        self.mechanisms.contains(&mechanism)
    }

    /// Whether the chain has a method this connection cannot be offered for want of TLS
    /// channel-binding data (`SCRAM-SHA-256-PLUS` on a plain connection): worth saying
    /// when nothing else is offered.
    pub fn needs_tls(&self) -> bool {
        self.needs_tls
    }

    /// Whether the chain can judge `credential` (of a kind it accepts, even one not
    /// offered first).
    pub fn supports(&self, credential: &Credential) -> bool {
        self.chain.supports(credential)
    }

    /// The chain that runs.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }
}
