//! What a connection is offered: the mechanisms of the rule's chain, in order.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::account::IdentityMap;
use crate::authenticator::Authenticator;
use crate::certificate::CertificateCheck;
use crate::chain::Chain;
use crate::connection::ConnectionInfo;
use crate::credential::{Credential, CredentialKind};
use crate::policy::{Policy, Rule};

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
    /// The rule's place in the policy, to check a user known only after the method ran.
    pub(super) index: usize,
    /// Whether the rule was matched with a user name (else it is checked again with the
    /// user the method proved).
    pub(super) user_known: bool,
    pub(super) chain: Arc<Chain>,
    pub(super) certificate: Option<Arc<CertificateCheck>>,
    pub(super) identity_map: Option<Arc<IdentityMap>>,
    /// The policy the offer was made under, which a user known only after the method ran
    /// is checked against: a reload in between does not change the rules of an attempt.
    pub(super) policy: Arc<Policy>,
    /// Inline: an offer is made for every request on HTTP, and few chains have more.
    mechanisms: SmallVec<[Mechanism; 4]>,
    needs_tls: bool,
    /// Links withheld for want of an encrypted or local connection, by index (at most
    /// 64 are tracked; a chain of more withholds the rest wholesale).
    withheld: u64,
}

/// The rule the policy picked, as the engine hands it to [`Offer::new`].
pub(super) struct Selected<'a> {
    pub(super) index: usize,
    pub(super) name: &'a Arc<str>,
    pub(super) rule: &'a Rule,
    pub(super) chain: &'a Arc<Chain>,
    pub(super) user_known: bool,
}

impl Offer {
    pub(super) fn new(
        selected: Selected<'_>,
        connection: &ConnectionInfo,
        allow_cleartext: bool,
        policy: Arc<Policy>,
    ) -> Self {
        let chain = selected.chain;
        let withheld = chain.withheld_on(
            || allow_cleartext || connection.is_encrypted(),
            || connection.is_localhost(),
        );
        // Only a connection that withholds something pays for recomputing the kinds.
        let permitted: SmallVec<[CredentialKind; 8]>;
        let kinds: &[CredentialKind] = if withheld == 0 {
            chain.accepts()
        } else {
            let mut kinds = SmallVec::new();
            for (i, link) in chain.links().iter().enumerate() {
                if withheld & (1u64 << i.min(63)) != 0 {
                    continue;
                }
                for kind in link.authenticator().accepts() {
                    if !kinds.contains(kind) {
                        kinds.push(*kind);
                    }
                }
            }
            permitted = kinds;
            &permitted
        };
        let has = |k: CredentialKind| kinds.contains(&k);
        let mut mechanisms = SmallVec::new();
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
            rule: selected.name.clone(),
            index: selected.index,
            user_known: selected.user_known,
            chain: chain.clone(),
            certificate: selected.rule.client_certificate.clone(),
            identity_map: selected.rule.identity_map.clone(),
            mechanisms,
            needs_tls,
            withheld,
            policy,
        }
    }

    /// Whether a method the connection may run can judge `credential`: a credential of a
    /// method withheld for want of encryption is refused before anything reads it.
    pub(super) fn permits(&self, credential: &Credential) -> bool {
        self.withheld == 0
            || self.chain.links().iter().enumerate().any(|(i, link)| {
                self.withheld & (1u64 << i.min(63)) == 0
                    && link.authenticator().supports(credential)
            })
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

    /// Whether the chain has a method this connection cannot be offered for want of TLS:
    /// channel-binding data (`SCRAM-SHA-256-PLUS` on a plain connection), or encryption
    /// for a method whose client sends a reusable secret (a password, a bearer token):
    /// worth saying when nothing else is offered.
    pub fn needs_tls(&self) -> bool {
        self.needs_tls || self.needs_encryption()
    }

    /// Whether the chain has a SASL mechanism this connection cannot be offered for want
    /// of TLS channel-binding data (`SCRAM-SHA-256-PLUS` on a plain connection).
    pub fn needs_channel_binding(&self) -> bool {
        self.needs_tls
    }

    /// Whether the chain has a method withheld from this connection because its client
    /// sends a reusable secret and the connection is not encrypted (see
    /// [`Authenticator::transport`](crate::Authenticator::transport)).
    pub fn needs_encryption(&self) -> bool {
        self.withheld != 0
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

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::attempt::Attempt;
    use crate::connection::{Peer, PeerCredentials, Protocol, TlsInfo};
    use crate::outcome::Outcome;

    /// A method that accepts `kinds` and judges nothing: offers depend on kinds only.
    #[derive(Debug)]
    struct Accepts(&'static [CredentialKind]);

    #[async_trait]
    impl Authenticator for Accepts {
        fn name(&self) -> &str {
            "accepts"
        }
        fn accepts(&self) -> &[CredentialKind] {
            self.0
        }
        async fn authenticate(&self, _: &mut Attempt) -> Outcome {
            Outcome::NotApplicable
        }
    }

    const PLUS: &str = "SCRAM-SHA-256-PLUS";
    const SCRAM: &str = "SCRAM-SHA-256";

    fn offer(kinds: &'static [CredentialKind], connection: &ConnectionInfo) -> Offer {
        let chain = Arc::new(Chain::builder().link(Arc::new(Accepts(kinds))).build());
        offer_of(&chain, connection, false)
    }

    fn offer_of(chain: &Arc<Chain>, connection: &ConnectionInfo, cleartext: bool) -> Offer {
        let rule = Rule::new("rule", crate::policy::Target::Chain(chain.clone()));
        // The policy is read only to check a user named after the method ran; these
        // offers know their user, so any policy will do.
        let policy =
            Arc::new(Policy::new(vec![Rule::new("rule", crate::policy::Target::Reject)]).unwrap());
        let selected = Selected {
            index: 0,
            name: &Arc::from("rule"),
            rule: &rule,
            chain,
            user_known: true,
        };
        Offer::new(selected, connection, cleartext, policy)
    }

    #[test]
    fn secrets_are_withheld_from_connections_without_encryption() {
        let chain = Arc::new(
            Chain::builder()
                .link(Arc::new(Accepts(&[CredentialKind::Gss])))
                .link(Arc::new(Accepts(&[CredentialKind::Password])))
                .link(Arc::new(Accepts(&[CredentialKind::Bearer])))
                .build(),
        );
        let plain = offer_of(&chain, &tcp(), false);
        assert_eq!(plain.mechanisms(), [Mechanism::Gss]);
        assert!(plain.needs_tls(), "the password was withheld");
        assert!(!plain.permits(&Credential::password("alice", "pw")));
        assert!(!plain.permits(&Credential::bearer("t")));
        assert!(plain.permits(&Credential::GssToken(vec![1])));
        let over_tls = offer_of(&chain, &tls(None, false), false);
        assert_eq!(
            over_tls.mechanisms(),
            [Mechanism::Gss, Mechanism::Password, Mechanism::Bearer]
        );
        assert!(over_tls.permits(&Credential::password("alice", "pw")));
        let unix = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None));
        assert!(offer_of(&chain, &unix, false).includes(Mechanism::Password));
        let opted_in = offer_of(&chain, &tcp(), true);
        assert!(opted_in.includes(Mechanism::Bearer));
        assert!(opted_in.permits(&Credential::bearer("t")));
    }

    fn tcp() -> ConnectionInfo {
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.5:40000".parse().unwrap())
    }

    fn tls(end_point: Option<Vec<u8>>, client: bool) -> ConnectionInfo {
        tcp().with_tls(TlsInfo {
            server_end_point: end_point,
            client_certificates: if client { vec![vec![0x30]] } else { vec![] },
            ..TlsInfo::default()
        })
    }

    fn sasl(name: &'static str) -> Mechanism {
        Mechanism::Sasl {
            name,
            channel_binding: name.ends_with("-PLUS"),
        }
    }

    #[test]
    fn scram_plus_only_where_the_connection_can_bind() {
        // Listed plain first by the method: -PLUS still comes first.
        let kinds = &[CredentialKind::Sasl(SCRAM), CredentialKind::Sasl(PLUS)];
        let bound = offer(kinds, &tls(Some(vec![1; 32]), false));
        assert_eq!(bound.mechanisms(), [sasl(PLUS), sasl(SCRAM)]);
        assert!(!bound.needs_tls());
        // TLS without channel-binding data (an Ed25519 certificate) is like no TLS.
        for connection in [tcp(), tls(None, false)] {
            let plain = offer(kinds, &connection);
            assert_eq!(plain.mechanisms(), [sasl(SCRAM)]);
            assert!(plain.needs_tls(), "PLUS was withheld");
        }
        let plus_only = offer(&[CredentialKind::Sasl(PLUS)], &tcp());
        assert!(plus_only.mechanisms().is_empty());
        assert!(plus_only.needs_tls());
    }

    #[test]
    fn peer_first_where_the_kernel_names_the_client() {
        let kinds = &[CredentialKind::Password, CredentialKind::Peer];
        let credentials = PeerCredentials {
            uid: 1000,
            gid: 1000,
            pid: None,
        };
        let unix = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, Some(credentials)));
        assert_eq!(
            offer(kinds, &unix).mechanisms(),
            [Mechanism::Peer, Mechanism::Password]
        );
        assert_eq!(
            offer(kinds, &tls(None, false)).mechanisms(),
            [Mechanism::Password]
        );
        // A peer-only chain is offered peer anyway, so its refusal is audited.
        assert_eq!(
            offer(&[CredentialKind::Peer], &tcp()).mechanisms(),
            [Mechanism::Peer]
        );
    }

    #[test]
    fn a_presented_certificate_first_then_what_the_request_may_carry() {
        let kinds = &[
            CredentialKind::ApiKey,
            CredentialKind::ClientCertificate,
            CredentialKind::Bearer,
        ];
        assert_eq!(
            offer(kinds, &tls(None, true)).mechanisms(),
            [
                Mechanism::ClientCertificate,
                Mechanism::Bearer,
                Mechanism::ApiKey
            ]
        );
        assert_eq!(
            offer(kinds, &tls(None, false)).mechanisms(),
            [Mechanism::Bearer, Mechanism::ApiKey]
        );
        assert_eq!(
            offer(&[CredentialKind::ClientCertificate], &tcp()).mechanisms(),
            [Mechanism::ClientCertificate]
        );
    }

    #[test]
    fn at_most_one_mechanism_that_asks_nothing_then_gss() {
        let kinds = &[
            CredentialKind::Gss,
            CredentialKind::Absent,
            CredentialKind::Peer,
        ];
        let offered = offer(kinds, &tcp());
        assert_eq!(offered.mechanisms(), [Mechanism::Trust, Mechanism::Gss]);
        assert!(matches!(
            offered.mechanisms()[0].immediate(),
            Some(Credential::Absent)
        ));
        assert!(Mechanism::Gss.immediate().is_none());
        assert_eq!(offered.rule(), "rule");
    }
}
