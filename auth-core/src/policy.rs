//! Which chain runs for a connection: ordered rules like `pg_hba.conf`.
//!
//! Each rule matches on protocol, connection type, database, user and client address; the
//! first rule that matches decides, either a [`Chain`] or a rejection. No match rejects.
//! An [`Engine`](crate::Engine) runs a policy for every front door: a rule that names no
//! protocol guards pgwire, HTTP and gRPC alike.

use std::sync::Arc;

use ipnet::IpNet;

use crate::account::IdentityMap;
use crate::authenticator::{Authenticator, Transport};
use crate::certificate::CertificateCheck;
use crate::chain::Chain;
use crate::connection::{ConnectionInfo, Peer, Protocol};
use crate::credential::CredentialKind;

/// The connection types of `pg_hba.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// Any connection.
    Any,
    /// A Unix-domain socket (`local`).
    Local,
    /// TCP, with or without TLS (`host`).
    Host,
    /// TCP with TLS (`hostssl`).
    HostSsl,
    /// TCP without TLS (`hostnossl`).
    HostNoSsl,
    /// TCP encrypted with GSSAPI by the server (`hostgss`), as
    /// [`ConnectionInfo::gss_encrypted`] says. No adapter here encrypts with GSSAPI, so
    /// such a rule matches nothing on them; Kerberos authentication over TLS or plain TCP
    /// is a `host`/`hostssl` rule with a GSS chain.
    HostGss,
}

impl ConnectionType {
    fn matches(self, c: &ConnectionInfo) -> bool {
        let tcp = matches!(c.peer, Peer::Tcp(_));
        match self {
            Self::Any => true,
            Self::Local => matches!(c.peer, Peer::Unix { .. }),
            Self::Host => tcp,
            Self::HostSsl => tcp && c.client_spoke_tls(),
            Self::HostNoSsl => tcp && !c.client_spoke_tls(),
            Self::HostGss => tcp && c.gss_encrypted,
        }
    }
}

/// Which protocols (front doors) a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolMatch {
    /// Every protocol (the default): one rule guards every front door.
    All,
    /// Only these.
    Only(Vec<Protocol>),
}

impl ProtocolMatch {
    fn matches(&self, protocol: Protocol) -> bool {
        match self {
            Self::All => true,
            Self::Only(protocols) => protocols.contains(&protocol),
        }
    }

    /// Whether the rule can match `protocol`.
    pub fn includes(&self, protocol: Protocol) -> bool {
        self.matches(protocol)
    }
}

/// Which user or database names a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Every name (`all`).
    All,
    /// Exactly these names.
    Names(Vec<String>),
    /// For databases: the database named like the requesting user (`sameuser`).
    SameUser,
}

impl NameMatch {
    fn matches(&self, name: Option<&str>, user: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Names(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
            Self::SameUser => name.is_some() && name == user,
        }
    }
}

/// Which client addresses a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressMatch {
    /// Every address.
    All,
    /// Clients on this machine, as [`ConnectionInfo::is_localhost`] says.
    Localhost,
    /// TCP clients in any of these networks (IPv4-mapped addresses match IPv4 networks).
    Networks(Vec<IpNet>),
}

impl AddressMatch {
    fn matches(&self, c: &ConnectionInfo) -> bool {
        match self {
            Self::All => true,
            Self::Localhost => c.is_localhost(),
            Self::Networks(nets) => c
                .peer
                .ip()
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone)]
pub enum Target {
    /// Authenticate with this chain.
    Chain(Arc<Chain>),
    /// Refuse the connection (`reject`).
    Reject,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// A name for audit events ("line 3", "remote-admins").
    pub name: String,
    /// The connection type.
    pub connection: ConnectionType,
    /// The databases.
    pub databases: NameMatch,
    /// The users.
    pub users: NameMatch,
    /// The client addresses.
    pub addresses: AddressMatch,
    /// The protocols (front doors).
    pub protocols: ProtocolMatch,
    /// Which identities a method proves (an OS user, a certificate name, a Kerberos
    /// principal) may act as which users under this rule, as PostgreSQL's `map=`: with a
    /// map, only its entries admit such an identity (not even the same name implicitly);
    /// without one, only the same name, or the directory's own mapping. Passwords, SCRAM
    /// and tokens name their user themselves and are not mapped.
    pub identity_map: Option<Arc<IdentityMap>>,
    /// What to do.
    pub target: Target,
    /// A client certificate every attempt under the rule must present, before any method
    /// judges a secret (PostgreSQL's `clientcert=verify-ca|verify-full`).
    pub client_certificate: Option<Arc<CertificateCheck>>,
}

impl Rule {
    /// A rule matching everything, running `target`; narrow it with the `with_` methods.
    pub fn new(name: impl Into<String>, target: Target) -> Self {
        Self {
            name: name.into(),
            connection: ConnectionType::Any,
            databases: NameMatch::All,
            users: NameMatch::All,
            addresses: AddressMatch::All,
            protocols: ProtocolMatch::All,
            identity_map: None,
            target,
            client_certificate: None,
        }
    }

    /// Restricts the protocols (front doors).
    #[must_use]
    pub fn with_protocols(mut self, protocols: ProtocolMatch) -> Self {
        self.protocols = protocols;
        self
    }

    /// Maps identities to users under this rule (PostgreSQL's `map=`; see
    /// [`Rule::identity_map`]).
    #[must_use]
    pub fn with_identity_map(mut self, map: IdentityMap) -> Self {
        self.identity_map = Some(Arc::new(map));
        self
    }

    /// Requires a verified client certificate of every attempt, before any method runs
    /// (PostgreSQL's `clientcert=verify-ca|verify-full` on a rule of another method);
    /// with [`Requirement::VerifyFull`](crate::certificate::Requirement::VerifyFull) the
    /// certificate must also name the user a method authenticated (or be mapped to it).
    #[must_use]
    pub fn with_client_certificate(mut self, check: CertificateCheck) -> Self {
        self.client_certificate = Some(Arc::new(check));
        self
    }

    /// Restricts the connection type.
    #[must_use]
    pub fn with_connection(mut self, connection: ConnectionType) -> Self {
        self.connection = connection;
        self
    }

    /// Restricts the databases.
    #[must_use]
    pub fn with_databases(mut self, databases: NameMatch) -> Self {
        self.databases = databases;
        self
    }

    /// Restricts the users.
    #[must_use]
    pub fn with_users(mut self, users: NameMatch) -> Self {
        self.users = users;
        self
    }

    /// Restricts the addresses.
    #[must_use]
    pub fn with_addresses(mut self, addresses: AddressMatch) -> Self {
        self.addresses = addresses;
        self
    }

    /// Whether every connection the rule can match is from this machine: a Unix-domain
    /// socket (`local`), or addresses limited to loopback. Only such rules may run a
    /// [local-only](crate::Authenticator::local_only) method.
    pub fn local_only(&self) -> bool {
        if self.connection == ConnectionType::Local {
            return true;
        }
        match &self.addresses {
            AddressMatch::All => false,
            AddressMatch::Localhost => true,
            AddressMatch::Networks(nets) => nets.iter().all(|n| {
                n.network().to_canonical().is_loopback()
                    && n.broadcast().to_canonical().is_loopback()
            }),
        }
    }

    /// Whether the rule covers a connection for `user`.
    pub fn matches(&self, connection: &ConnectionInfo, user: Option<&str>) -> bool {
        self.protocols.matches(connection.protocol)
            && self.connection.matches(connection)
            && self.databases.matches(connection.database.as_deref(), user)
            && self.users.matches(user, user)
            && self.addresses.matches(connection)
    }
}

/// What the policy chose for a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selection<'a> {
    /// The rule at this index matched and runs a chain.
    Chain(usize, &'a Arc<str>, &'a Rule, &'a Arc<Chain>),
    /// Rejected by the rule at this index.
    Rejected(usize),
    /// No rule matched.
    NoMatch,
}

/// Ordered rules, first match wins.
///
/// ```
/// use std::sync::Arc;
/// use auth_core::policy::{AddressMatch, Rule, Target};
/// use auth_core::{Chain, Policy};
/// use auth_core::local::TrustAuthenticator;
///
/// let trust = Arc::new(Chain::builder().link(Arc::new(TrustAuthenticator::new())).build());
/// // `trust` proves nothing about a remote client: only a loopback rule may run it.
/// let everywhere = Rule::new("all", Target::Chain(trust.clone()));
/// assert!(Policy::new(vec![everywhere]).is_err());
/// let local = Rule::new("local", Target::Chain(trust)).with_addresses(AddressMatch::Localhost);
/// assert_eq!(Policy::new(vec![local]).unwrap().rules().len(), 1);
/// ```
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    /// The rules' names, shared with every offer.
    names: Vec<Arc<str>>,
    /// How many leading rules match the same way whatever the user: the choice among
    /// them made without a user name stands once the user is known.
    user_blind: usize,
}

/// Why a [`Policy`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A rule that can match a connection from another machine runs a method that is
    /// safe only for local clients (`trust`, `peer`).
    #[error(
        "policy rule `{rule}` runs `{method}`, which proves nothing about a client on another \
         machine, but the rule can match connections from other machines; restrict it to \
         Unix-domain sockets (ConnectionType::Local) or loopback (AddressMatch::Localhost)"
    )]
    LocalOnlyMethod {
        /// The rule's name.
        rule: String,
        /// The local-only method (its authenticator name).
        method: String,
    },
    /// A rule that matches only unencrypted TCP connections (`hostnossl`) runs a method
    /// whose client sends a reusable secret (a password, a bearer token), which could only
    /// ever cross the network in clear there.
    #[error(
        "policy rule `{rule}` runs `{method}`, whose clients send a secret anyone on the \
         network could read and replay, but the rule matches only unencrypted connections; \
         use ConnectionType::Host or HostSsl (the method is then offered over TLS), or, to \
         send secrets in clear on purpose, Host with \
         EngineBuilder::dangerous().allow_cleartext_without_tls()"
    )]
    CleartextSecret {
        /// The rule's name.
        rule: String,
        /// The method (its authenticator name).
        method: String,
    },
    /// A rule that uses client certificates (a chain of certificate methods only, or a
    /// [client-certificate requirement](Rule::with_client_certificate)) can match
    /// connections without TLS, where no certificate is ever presented.
    #[error(
        "policy rule `{rule}` uses client certificates, which come only with TLS, but can \
         match connections without it; restrict it to ConnectionType::HostSsl"
    )]
    CertificateWithoutTls {
        /// The rule's name.
        rule: String,
    },
}

impl From<PolicyError> for crate::Failure {
    /// A local-only method reachable from another machine is an insecure configuration.
    fn from(e: PolicyError) -> Self {
        crate::Failure::new(crate::ConfigurationError::Insecure, e.to_string())
    }
}

/// The transport checks [`Policy::new`] makes of one rule running `chain`.
fn check_transport(rule: &Rule, chain: &Chain) -> Result<(), PolicyError> {
    let links = chain.links().iter().map(|l| l.authenticator());
    for method in links {
        let refused = match method.transport() {
            Transport::Local if !rule.local_only() => PolicyError::LocalOnlyMethod {
                rule: rule.name.clone(),
                method: method.name().to_owned(),
            },
            Transport::Encrypted if rule.connection == ConnectionType::HostNoSsl => {
                PolicyError::CleartextSecret {
                    rule: rule.name.clone(),
                    method: method.name().to_owned(),
                }
            }
            _ => continue,
        };
        return Err(refused);
    }
    // A chain with other methods beside a certificate still serves a client without TLS.
    let certificate_only = !chain.links().is_empty()
        && chain
            .links()
            .iter()
            .all(|l| l.authenticator().accepts() == [CredentialKind::ClientCertificate]);
    if (certificate_only || rule.client_certificate.is_some())
        && rule.connection != ConnectionType::HostSsl
    {
        return Err(PolicyError::CertificateWithoutTls {
            rule: rule.name.clone(),
        });
    }
    Ok(())
}

impl Policy {
    /// A policy of `rules`. Refused when a rule that can match a connection from another
    /// machine runs a [local-only](crate::Authenticator::local_only) method, when a
    /// `hostnossl` rule runs a method whose clients send a reusable secret
    /// ([`Transport::Encrypted`]), and when a rule that uses client certificates can match
    /// a connection without TLS.
    pub fn new(rules: Vec<Rule>) -> Result<Self, PolicyError> {
        for rule in &rules {
            let Target::Chain(chain) = &rule.target else {
                continue;
            };
            check_transport(rule, chain)?;
        }
        let names = rules.iter().map(|r| Arc::from(r.name.as_str())).collect();
        let user_blind = rules
            .iter()
            .take_while(|r| r.users == NameMatch::All && r.databases != NameMatch::SameUser)
            .count();
        Ok(Self {
            rules,
            names,
            user_blind,
        })
    }

    /// A policy of one rule that runs `chain` for every connection, named after the
    /// chain. Refused as [`Policy::new`] refuses.
    pub fn single(chain: Chain) -> Result<Self, PolicyError> {
        let name = crate::Authenticator::name(&chain).to_owned();
        Self::new(vec![Rule::new(name, Target::Chain(Arc::new(chain)))])
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the rule at `index`, picked without a user name, is the one the policy picks
    /// for any user: neither it nor a rule before it looks at the user.
    pub(crate) fn picks_regardless_of_user(&self, index: usize) -> bool {
        index < self.user_blind
    }

    /// The first rule covering `connection` for `user`.
    pub(crate) fn select(&self, connection: &ConnectionInfo, user: Option<&str>) -> Selection<'_> {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(connection, user) {
                return match &rule.target {
                    Target::Chain(chain) => Selection::Chain(i, &self.names[i], rule, chain),
                    Target::Reject => Selection::Rejected(i),
                };
            }
        }
        Selection::NoMatch
    }
}
