//! The gateway's TOML file: where to listen and the pg_hba-like rules.

use std::net::SocketAddr;
use std::time::Duration;

use auth_core::Protocol;
use auth_core::certificate::{ClientName, Requirement};
use auth_core::policy::{AddressMatch, ConnectionType, NameMatch, ProtocolMatch, Rule, Target};
use serde::Deserialize;

/// How a rule authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// SCRAM-SHA-256, and -PLUS under TLS.
    Scram,
    /// A cleartext password (TLS only unless allowed): wallet secret, then password hash.
    Password,
    /// Kerberos (GSSAPI), with the `[kerberos]` settings.
    Gss,
    /// The OS user running the client, from the Unix socket (`type = "local"` rules
    /// only), mapped to the requested user by `[[identity_map]] method = "peer"`.
    Peer,
    /// No credential at all: only in rules that match nothing but this machine.
    Trust,
    /// A TLS client certificate of the `[client_certificates]` CAs (`type = "hostssl"`
    /// rules only); the name it gives is mapped to the requested user by
    /// `[[identity_map]] method = "cert"`.
    Cert,
    /// A bearer token from a PostgreSQL 18 client (SASL OAUTHBEARER, RFC 7628), validated
    /// against the rule's `issuer` (one of `[[oauth_issuer]]`); clients without a token
    /// are told the issuer and `scope` to get one for. TLS or the Unix socket only.
    #[serde(rename = "oauthbearer")]
    OAuthBearer,
    /// A user name and password (cleartext, so TLS only unless allowed), exchanged for
    /// tokens at the `[oauth_password]` server; `fallback = "scram"` checks the password
    /// against the gateway's own users while the server is down.
    #[serde(rename = "oauth-password")]
    OAuthPassword,
    /// A bearer token (`Authorization: Bearer`) from the gateway's own issuer, the one it
    /// prints: HTTP and gRPC only (set `protocols`).
    Bearer,
    /// An API key (`X-API-Key`) registered in the wallet: HTTP and gRPC only.
    #[serde(rename = "api-key")]
    ApiKey,
    /// Refuse.
    Reject,
}

impl Method {
    /// The name the file spells.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scram => "scram",
            Self::Password => "password",
            Self::Gss => "gss",
            Self::Peer => "peer",
            Self::Trust => "trust",
            Self::Cert => "cert",
            Self::OAuthBearer => "oauthbearer",
            Self::OAuthPassword => "oauth-password",
            Self::Bearer => "bearer",
            Self::ApiKey => "api-key",
            Self::Reject => "reject",
        }
    }

    /// Whether the method proves an identity that a rule's `map` maps to users.
    fn proves_identity(self) -> bool {
        matches!(self, Self::Peer | Self::Cert | Self::Gss)
    }
}

/// `method = "scram"` or `method = ["bearer", "password"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Method>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Method),
        Many(Vec<Method>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(m)) => Ok(vec![m]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "method: one of scram, password, gss, peer, trust, cert, oauthbearer, \
             oauth-password, bearer, api-key, reject, or a list of them",
        )),
    }
}

/// The `[kerberos]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerberosConfig {
    /// The service keytab (default: `KRB5_KTNAME`).
    pub keytab: Option<std::path::PathBuf>,
    /// The service name tickets must be for (default `postgres`).
    #[serde(default)]
    pub service: Option<String>,
    /// The service the HTTP API accepts SPNEGO (`Negotiate`) tickets for, when a keytab
    /// is configured (default `HTTP`, matching `HTTP/<host>`).
    #[serde(default)]
    pub http_service: Option<String>,
    /// Keep the realm in the mapped user name.
    #[serde(default)]
    pub include_realm: bool,
    /// Drop the principal's instance (`alice/admin` -> `alice`).
    #[serde(default)]
    pub strip_instance: bool,
    /// `keep` (default), `lower` or `upper`.
    #[serde(default)]
    pub case: Option<String>,
    /// Accepted realms; empty accepts only the service's own realm (the keytab's).
    #[serde(default)]
    pub realms: Vec<String>,
    /// With no `realms`, accept principals of every realm the KDC trusts.
    #[serde(default)]
    pub any_realm: bool,
    /// pg_ident-style maps: `[[kerberos.map]] pattern = "^(.*)@TEST\\.REALM$", user = "\\1"`.
    #[serde(default, rename = "map")]
    pub maps: Vec<MapConfig>,
}

/// One regex map.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// The regex the principal must match.
    pub pattern: String,
    /// The user, with `\1`.. for the groups.
    pub user: String,
}

impl KerberosConfig {
    /// The principal mapper.
    #[cfg(feature = "kerberos")]
    pub fn mapper(&self) -> Result<auth_kerberos::PrincipalMapper, String> {
        let case = match self.case.as_deref() {
            None | Some("keep") => auth_kerberos::CaseFold::Keep,
            Some("lower") => auth_kerberos::CaseFold::Lower,
            Some("upper") => auth_kerberos::CaseFold::Upper,
            Some(other) => {
                return Err(format!(
                    "[kerberos] case = `{other}`: use keep, lower or upper"
                ));
            }
        };
        let rules = self
            .maps
            .iter()
            .map(|m| {
                auth_kerberos::MapRule::new(&m.pattern, m.user.clone())
                    .map_err(|e| format!("[[kerberos.map]] pattern `{}`: {e}", m.pattern))
            })
            .collect::<Result<_, _>>()?;
        Ok(auth_kerberos::PrincipalMapper {
            include_realm: self.include_realm,
            strip_instance: self.strip_instance,
            case,
            realms: self.realms.clone(),
            any_realm: self.any_realm,
            rules,
        })
    }
}

/// One rule, like a pg_hba.conf line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for the audit log.
    pub name: String,
    /// `host` (default), `hostssl`, `hostnossl`, `local` or `all` (`hostgss` is refused:
    /// the gateway does not encrypt with GSSAPI).
    #[serde(default = "default_type", rename = "type")]
    pub kind: String,
    /// User names; empty means all.
    #[serde(default)]
    pub users: Vec<String>,
    /// Database names; empty means all; `sameuser` matches the user's own.
    #[serde(default)]
    pub databases: Vec<String>,
    /// `all` (default), `localhost`, or CIDR networks.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// How to authenticate: one method or a list, tried in order, each judging the
    /// credentials it understands (`["bearer", "api-key", "password"]`).
    #[serde(deserialize_with = "one_or_many")]
    pub method: Vec<Method>,
    /// The front doors the rule guards: `pgwire`, `http`, `grpc`; empty (the default)
    /// means all three, so one rule holds on every door.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// The identity map (`[[identity_map]] map = "..."`) whose entries say which OS users,
    /// certificate names or Kerberos principals may act as which users under this rule
    /// (PostgreSQL's `map=`); without one, such an identity acts only as the same name.
    #[serde(default)]
    pub map: Option<String>,
    /// Also require a client certificate of the `[client_certificates]` CAs (PostgreSQL's
    /// `clientcert`): `verify-ca` (any valid one) or `verify-full` (one naming the user).
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// `oauthbearer` rules: the issuer advertised to clients and trusted for the rule's
    /// tokens (an `[[oauth_issuer]]`'s `issuer`, or its discovery document's URL).
    #[serde(default)]
    pub issuer: Option<String>,
    /// `oauthbearer` rules: the scope clients ask for (space-separated); a token must carry
    /// every one.
    #[serde(default)]
    pub scope: Option<String>,
    /// `oauth-password` rules: `scram` checks the password against the gateway's own users
    /// while the OAuth server is unavailable (never when it refused the password).
    #[serde(default)]
    pub fallback: Option<String>,
}

fn default_type() -> String {
    "host".into()
}

/// `text` inside a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

impl RuleConfig {
    /// Whether the rule runs `method`.
    pub fn has(&self, method: Method) -> bool {
        self.method.contains(&method)
    }

    /// The protocols the rule names (all three when it names none).
    pub fn protocol_match(&self) -> Result<ProtocolMatch, String> {
        if self.protocols.is_empty() {
            return Ok(ProtocolMatch::All);
        }
        self.protocols
            .iter()
            .map(|p| {
                Protocol::parse(p).ok_or_else(|| {
                    format!(
                        "rule `{}`: unknown protocol `{p}`; use pgwire, http or grpc",
                        self.name
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map(ProtocolMatch::Only)
    }

    /// The method list makes sense, and methods of one door are not asked of another.
    fn check_methods(&self) -> Result<(), String> {
        let name = &self.name;
        if self.method.is_empty() {
            return Err(format!(
                "rule `{name}`: method = [] runs nothing; name a method"
            ));
        }
        if self.has(Method::Reject) && self.method.len() > 1 {
            return Err(format!(
                "rule `{name}`: reject refuses; it cannot be listed with other methods"
            ));
        }
        let pgwire = self.protocol_match()?.includes(Protocol::Postgres);
        if let Some(m) = self
            .method
            .iter()
            .find(|m| matches!(m, Method::Bearer | Method::ApiKey))
            .filter(|_| pgwire)
        {
            return Err(format!(
                "rule `{name}`: method \"{}\" is for the HTTP and gRPC APIs; add \
                 protocols = [\"http\", \"grpc\"] (PostgreSQL clients send tokens with \
                 method = \"oauthbearer\")",
                m.as_str()
            ));
        }
        if self.map.is_some() && !self.method.iter().any(|m| m.proves_identity()) {
            let uses_certificates = self.requirement()? == Some(Requirement::VerifyFull);
            if !uses_certificates {
                return Err(format!(
                    "rule `{name}`: map = \"...\" maps identities (peer, cert, gss, or a \
                     verify-full certificate) to users; this rule's methods prove none"
                ));
            }
        }
        Ok(())
    }

    /// Methods that prove nothing about a remote client need a rule that matches only
    /// this machine (auth-core's policy refuses them otherwise too; this says it in the
    /// file's terms).
    fn check_local_only(&self, rule: &Rule) -> Result<(), String> {
        for method in &self.method {
            self.check_local_method(*method, rule)?;
        }
        Ok(())
    }

    fn check_local_method(&self, method: Method, rule: &Rule) -> Result<(), String> {
        match method {
            Method::Peer if rule.connection != ConnectionType::Local => Err(format!(
                "rule `{}`: method = \"peer\" asks the kernel which OS user runs the client, \
                 which only a Unix-socket connection can tell; set type = \"local\"",
                self.name
            )),
            Method::Trust if !rule.local_only() => Err(format!(
                "rule `{}`: method = \"trust\" lets clients in without any credential, so \
                 the rule must match only this machine; set type = \"local\" (the Unix \
                 socket) or addresses = [\"localhost\"]",
                self.name
            )),
            _ => Ok(()),
        }
    }

    /// `client_certificate`, checked.
    pub fn requirement(&self) -> Result<Option<Requirement>, String> {
        let Some(text) = &self.client_certificate else {
            return Ok(None);
        };
        Requirement::parse(text).map(Some).ok_or_else(|| {
            format!(
                "rule `{}`: client_certificate = \"{text}\"; use \"verify-ca\" or \"verify-full\"",
                self.name
            )
        })
    }

    /// Rules that use certificates need the CAs (that they match only TLS connections is
    /// the policy's check, the same for every host).
    fn check_certificates(&self, cas: bool) -> Result<(), String> {
        let uses = self.has(Method::Cert) || self.requirement()?.is_some();
        if !uses {
            return Ok(());
        }
        if !cas {
            return Err(format!(
                "rule `{}` uses client certificates: name their CAs in [client_certificates] \
                 ca_file = \"client-ca.crt\" (PEM, relative to the data directory)",
                self.name
            ));
        }
        Ok(())
    }

    /// The OAuth settings fit the method, and name what the file configures.
    fn check_oauth(&self, config: &GatewayConfig) -> Result<(), String> {
        let name = &self.name;
        let bearer = self.has(Method::OAuthBearer);
        if !bearer && (self.issuer.is_some() || self.scope.is_some()) {
            return Err(format!(
                "rule `{name}`: issuer and scope belong to method = \"oauthbearer\" rules"
            ));
        }
        if !self.has(Method::OAuthPassword) && self.fallback.is_some() {
            return Err(format!(
                "rule `{name}`: fallback belongs to method = \"oauth-password\" rules"
            ));
        }
        if bearer {
            let Some(issuer) = &self.issuer else {
                return Err(format!(
                    "rule `{name}`: method = \"oauthbearer\" needs issuer = \"https://...\", \
                     one of the [[oauth_issuer]] sections"
                ));
            };
            if !config
                .oauth_issuers
                .iter()
                .any(|i| super::oauth::advertises(issuer, &i.issuer))
            {
                return Err(format!(
                    "rule `{name}`: issuer `{issuer}` is not configured; add [[oauth_issuer]] \
                     issuer = \"{issuer}\" with the audience its tokens name for this gateway"
                ));
            }
        }
        if self.has(Method::OAuthPassword) {
            if config.oauth_password.is_none() {
                return Err(format!(
                    "rule `{name}`: method = \"oauth-password\" needs an [oauth_password] \
                     section (token_endpoint, client_id, client secret)"
                ));
            }
            if let Some(other) = self.fallback.as_deref().filter(|f| *f != "scram") {
                return Err(format!(
                    "rule `{name}`: fallback = \"{other}\"; the only fallback is \"scram\""
                ));
            }
        }
        Ok(())
    }

    /// The auth-core rule with `target`.
    pub fn to_rule(&self, target: Target) -> Result<Rule, String> {
        let connection = match self.kind.as_str() {
            "host" => ConnectionType::Host,
            "hostssl" => ConnectionType::HostSsl,
            "hostnossl" => ConnectionType::HostNoSsl,
            "hostgss" => {
                return Err(format!(
                    "rule `{}`: type `hostgss` matches GSS-encrypted connections, which this \
                     server does not offer (it answers GSSENCRequest with N); for Kerberos use \
                     type = \"host\" or \"hostssl\" with method = \"gss\"",
                    self.name
                ));
            }
            "local" => ConnectionType::Local,
            "all" => ConnectionType::Any,
            other => {
                return Err(format!(
                    "rule `{}`: unknown type `{other}`; use host, hostssl, hostnossl, local or all",
                    self.name
                ));
            }
        };
        let names = |v: &Vec<String>| {
            if v.is_empty() {
                NameMatch::All
            } else {
                NameMatch::Names(v.clone())
            }
        };
        let databases = if self.databases == ["sameuser"] {
            NameMatch::SameUser
        } else {
            names(&self.databases)
        };
        let addresses = match self.addresses.as_slice() {
            [] => AddressMatch::All,
            [one] if one == "all" => AddressMatch::All,
            [one] if one == "localhost" => AddressMatch::Localhost,
            nets => AddressMatch::Networks(
                nets.iter()
                    .map(|n| {
                        n.parse().map_err(|_| {
                            format!(
                                "rule `{}`: `{n}` is not a CIDR network like 10.0.0.0/8",
                                self.name
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Rule::new(self.name.clone(), target)
            .with_protocols(self.protocol_match()?)
            .with_connection(connection)
            .with_users(names(&self.users))
            .with_databases(databases)
            .with_addresses(addresses))
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The authentication timeout (`60s`).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub auth_timeout: Duration,
    /// Offer methods whose clients send a reusable secret (passwords, HTTP Basic, bearer
    /// tokens, API keys) on connections without TLS too, on every front door: only behind
    /// a TLS-terminating proxy on this machine. Files from before this name spell it
    /// `allow_cleartext_without_tls`; the first start renames it.
    #[serde(default)]
    pub danger_allow_cleartext_without_tls: bool,
    /// The audit log, relative to the data directory.
    #[serde(default = "default_audit")]
    pub audit_log: String,
    /// The directory of the Unix socket `.s.PGSQL.<port>` (`psql -h DIR`), relative to
    /// the data directory; `""` (the default when absent, so a file from before sockets
    /// keeps starting where a socket cannot be made) serves none. A first start writes
    /// `"."`, the data directory. Keep the directory unwritable by other users: they
    /// could otherwise replace the socket between its creation and its `chmod`.
    #[serde(default)]
    pub unix_socket_directory: String,
    /// The socket file's permissions (`0o777`: every local user may try; authentication
    /// then decides).
    #[serde(default = "default_socket_permissions")]
    pub unix_socket_permissions: u32,
    /// The rules, first match wins.
    #[serde(rename = "rule", default)]
    pub rules: Vec<RuleConfig>,
    /// Kerberos settings for `method = "gss"` rules.
    #[serde(default)]
    pub kerberos: KerberosConfig,
    /// Unauthenticated connections that have spoken, at once, in all, on every front door
    /// together (loopback and Unix-socket clients not counted).
    #[serde(default = "default_max_unauthenticated")]
    pub max_unauthenticated_connections: usize,
    /// Unauthenticated connections that have spoken, at once, from one client address
    /// (IPv6 by /64); more wait for a place.
    #[serde(default = "default_max_unauthenticated_per_address")]
    pub max_unauthenticated_per_address: usize,
    /// How long a connection beyond the places waits for one before it is refused (FATAL
    /// 53300 on pgwire, 503 on HTTP, `UNAVAILABLE` on gRPC).
    #[serde(
        default = "default_unauthenticated_wait",
        deserialize_with = "duration"
    )]
    pub unauthenticated_wait: Duration,
    /// Connections that have sent nothing yet, from one client address (they hold no
    /// place; beyond this one must speak within `unauthenticated_wait` or is closed).
    #[serde(default = "default_max_silent_per_address")]
    pub max_silent_per_address: usize,
    /// How long a connection may stay silent before it is closed.
    #[serde(default = "default_silent_timeout", deserialize_with = "duration")]
    pub silent_timeout: Duration,
    /// Rate limiting and lockout, shared by every front door (`auth_core::rate_limit`).
    #[serde(default)]
    pub rate_limit: auth_core::config::RateLimitSection,
    /// The CAs whose client certificates `cert` rules and `client_certificate`
    /// requirements accept.
    #[serde(default)]
    pub client_certificates: ClientCertificatesConfig,
    /// The proxies in front of the gateway (HAProxy, a load balancer, a TLS-terminating
    /// proxy on this machine): IP addresses, networks like `10.0.0.0/8`, and `"unix"` for
    /// Unix-socket peers. Their PROXY protocol headers (v1, v2) on every front door, and
    /// their `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` headers on HTTP and
    /// gRPC, name the client, whom rules, places, limits and the audit then judge; a
    /// proxied client is never localhost. From anyone else a PROXY header is refused
    /// and forwarding headers are ignored. Empty by default.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Serve the HTTP and gRPC APIs over TLS with the data directory's certificate (the
    /// default); `false` for plain HTTP/2 behind a TLS-terminating proxy on this machine.
    #[serde(default = "yes")]
    pub api_tls: bool,
    /// Identities that may act as other users (pg_ident), by map name: `[[identity_map]]
    /// map = "admins", method = "kerberos", identity = "/^(.*)/admin@TEST\\.REALM$",
    /// user = "\\1_admin"`, used by the rules that say `map = "admins"`.
    #[serde(rename = "identity_map", default)]
    pub identity_map: Vec<IdentityMapConfig>,
    /// Issuers whose bearer tokens `oauthbearer` rules accept.
    #[serde(rename = "oauth_issuer", default)]
    pub oauth_issuers: Vec<super::oauth::OAuthIssuerConfig>,
    /// The OAuth server of `oauth-password` rules.
    #[serde(default)]
    pub oauth_password: Option<super::oauth::OAuthPasswordConfig>,
}

/// The `[client_certificates]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificatesConfig {
    /// The CA bundle (PEM), relative to the data directory (PostgreSQL's `ssl_ca_file`).
    pub ca_file: Option<String>,
    /// Revocation lists of those CAs (PEM), relative to the data directory
    /// (`ssl_crl_file`). Re-read at start; an expired list refuses its CA's certificates.
    pub crl_file: Option<String>,
    /// Which name is the client: `cn` (default), `dn`, or the first SAN of kind `dns`,
    /// `email` or `uri` (PostgreSQL's `clientname`).
    pub name: Option<String>,
    /// Whether a certificate alone logs in to the HTTP and gRPC APIs (a request without
    /// `Authorization`). Off by default: CAs named for `verify-ca` second factors or for
    /// pgwire `cert` rules do not thereby open the APIs.
    #[serde(default)]
    pub api_login: bool,
}

impl ClientCertificatesConfig {
    /// `name`, checked.
    pub fn client_name(&self) -> Result<ClientName, String> {
        match &self.name {
            None => Ok(ClientName::CommonName),
            Some(text) => ClientName::parse(text).ok_or_else(|| {
                format!("[client_certificates] name = \"{text}\"; use cn, dn, dns, email or uri")
            }),
        }
    }
}

fn yes() -> bool {
    true
}

/// One identity map entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityMapConfig {
    /// The map this entry belongs to, as rules name it (`map = "..."`).
    #[serde(default)]
    pub map: Option<String>,
    /// The method that proves the identity (`kerberos`, `oauth`, ...); any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// The identity, or with a leading `/` a regular expression over the whole identity.
    pub identity: String,
    /// The user it may act as (`\1` for the first group).
    pub user: String,
}

impl GatewayConfig {
    /// The identity map `name`: the `[[identity_map]]` entries with `map = "name"`.
    pub fn identity_map(&self, name: &str) -> Result<auth_core::account::IdentityMap, String> {
        self.identity_map
            .iter()
            .filter(|e| e.map.as_deref() == Some(name))
            .map(|e| {
                auth_core::account::MapEntry::new(e.method.as_deref(), &e.identity, e.user.clone())
                    .map_err(|err| format!("[[identity_map]] identity `{}`: {err}", e.identity))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(auth_core::account::IdentityMap::new)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6432))
}
fn default_max_unauthenticated() -> usize {
    auth_listen::admission::DEFAULT_MAX_UNAUTHENTICATED
}
fn default_max_unauthenticated_per_address() -> usize {
    auth_listen::admission::DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS
}
fn default_unauthenticated_wait() -> Duration {
    auth_listen::admission::DEFAULT_WAIT
}
fn default_max_silent_per_address() -> usize {
    auth_listen::AdmissionSettings::default().max_silent_per_address
}
fn default_silent_timeout() -> Duration {
    auth_listen::AdmissionSettings::default().silent_timeout
}
fn default_socket_permissions() -> u32 {
    0o777
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_audit() -> String {
    "audit.jsonl".into()
}
pub(super) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration like \"60s\"")))
}

impl GatewayConfig {
    /// The local administrator: a system account that logs in over the Unix socket as
    /// the OS user who created the data directory, with no password.
    pub const LOCAL_ADMIN: &'static str = "postgres";

    /// What a first start writes; `os_user` (who runs this first start) may log in as
    /// [`Self::LOCAL_ADMIN`] over the Unix socket.
    pub fn default_toml(os_user: &str) -> String {
        format!(
            r#"# auth gateway: where to listen and who may authenticate how.
# Rules are tried in order, the first match decides, no match is refused (like pg_hba.conf).
listen = "127.0.0.1:6432"
auth_timeout = "60s"
danger_allow_cleartext_without_tls = false
audit_log = "audit.jsonl"
# Connections that have not authenticated yet, on every front door together: beyond an
# address's places a connection waits for one, and is refused (FATAL 53300, HTTP 503,
# gRPC UNAVAILABLE) only when the wait runs out.
max_unauthenticated_connections = 128
max_unauthenticated_per_address = 32
unauthenticated_wait = "5s"
# The Unix socket .s.PGSQL.<port> (psql -h DIR), relative to this directory; "" for none.
unix_socket_directory = "."
unix_socket_permissions = 0o777

# Local administration: the OS user of the map below, on the Unix socket, as `{admin}`.
[[rule]]
name = "local-admin"
type = "local"
users = ["{admin}"]
method = "peer"
map = "local-admin"

# Everyone else on the Unix socket: SCRAM-SHA-256.
[[rule]]
name = "local"
type = "local"
method = "scram"

{api}
# SCRAM-SHA-256 for everyone (SCRAM-SHA-256-PLUS with channel binding under TLS); on the
# HTTP and gRPC APIs, the same password as HTTP Basic over TLS.
[[rule]]
name = "scram"
type = "host"
method = "scram"

[[identity_map]]
map = "local-admin"
method = "peer"
identity = "{os_user}"
user = "{admin}"
"#,
            admin = Self::LOCAL_ADMIN,
            os_user = toml_escape(os_user),
            api = Self::API_RULE,
        )
    }

    /// The rule of the HTTP and gRPC APIs a first start writes, and the upgrade of a file
    /// from before rules guarded the APIs inserts.
    pub const API_RULE: &'static str = r#"# The HTTP and gRPC APIs: the gateway's own bearer tokens, API keys, and passwords
# (HTTP Basic), each only over TLS.
[[rule]]
name = "api"
protocols = ["http", "grpc"]
method = ["bearer", "api-key", "password"]
"#;

    /// Parses and checks the file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if config.rules.is_empty() {
            return Err(
                "no [[rule]]: every connection would be refused; add one, e.g. method = \"scram\""
                    .into(),
            );
        }
        let cas = config.client_certificates.ca_file.is_some();
        if let Some(e) = config.identity_map.iter().find(|e| e.map.is_none()) {
            return Err(format!(
                "[[identity_map]] identity `{}` names no map; add map = \"NAME\" and \
                 map = \"NAME\" on the rules it is for (a rule's map admits only its entries)",
                e.identity
            ));
        }
        for r in &config.rules {
            let rule = r.to_rule(Target::Reject)?;
            r.check_methods()?;
            if let Some(map) = &r.map
                && !config
                    .identity_map
                    .iter()
                    .any(|e| e.map.as_ref() == Some(map))
            {
                return Err(format!(
                    "rule `{}`: map = \"{map}\" has no [[identity_map]] entries with \
                     map = \"{map}\"",
                    r.name
                ));
            }
            r.check_local_only(&rule)?;
            r.check_certificates(cas)?;
            r.check_oauth(&config)?;
        }
        if let Some(p) = &config.oauth_password {
            p.check()?;
        }
        for (i, issuer) in config.oauth_issuers.iter().enumerate() {
            let same = |other: &super::oauth::OAuthIssuerConfig| {
                other.issuer.trim_end_matches('/') == issuer.issuer.trim_end_matches('/')
            };
            if config.oauth_issuers[..i].iter().any(same) {
                return Err(format!(
                    "[[oauth_issuer]] `{}` is configured twice; keep one, with the audience its \
                     tokens name for this gateway",
                    issuer.issuer
                ));
            }
        }
        config.client_certificates.client_name()?;
        if config.unix_socket_permissions > 0o777 {
            return Err(format!(
                "unix_socket_permissions = {}: a mode is at most 0o777; write it as a TOML \
                 octal number such as 0o770 (770 without 0o is decimal)",
                config.unix_socket_permissions
            ));
        }
        config.rate_limit.settings().map_err(|e| e.to_string())?;
        #[cfg(feature = "kerberos")]
        config.kerberos.mapper()?;
        #[cfg(not(feature = "kerberos"))]
        if let Some(r) = config.rules.iter().find(|r| r.has(Method::Gss)) {
            return Err(format!(
                "rule `{}`: method = \"gss\" needs Kerberos, which this build leaves out; \
                 run with `--features kerberos` (building it needs libkrb5-dev, libclang-dev \
                 and pkg-config: scripts/install-deps.sh)",
                r.name
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostgss_rule_is_refused_with_the_way_out() {
        let err = GatewayConfig::parse(
            "[[rule]]\nname = \"krb\"\ntype = \"hostgss\"\nmethod = \"scram\"",
        )
        .unwrap_err();
        assert!(err.contains("GSS-encrypted connections"), "{err}");
        assert!(err.contains("method = \"gss\""), "{err}");
    }

    #[test]
    fn the_default_file_parses() {
        let c = GatewayConfig::parse(&GatewayConfig::default_toml("ro\"ot")).unwrap();
        assert_eq!(c.listen.port(), 6432);
        assert_eq!(c.rules[0].method, [Method::Peer]);
        assert_eq!(c.rules[0].map.as_deref(), Some("local-admin"));
        assert_eq!(
            c.rules[2].method,
            [Method::Bearer, Method::ApiKey, Method::Password]
        );
        assert!(
            !c.rules[2]
                .protocol_match()
                .unwrap()
                .includes(Protocol::Postgres)
        );
        assert_eq!(c.rules[3].method, [Method::Scram]);
        assert!(!c.danger_allow_cleartext_without_tls);
        assert_eq!(
            (c.unix_socket_directory.as_str(), c.unix_socket_permissions),
            (".", 0o777)
        );
        assert_eq!(c.identity_map[0].identity, "ro\"ot");
    }

    #[test]
    fn trust_and_peer_only_where_they_prove_something() {
        let rule = |extra: &str, method: &str| {
            GatewayConfig::parse(&format!(
                "[[rule]]\nname = \"r\"\n{extra}method = \"{method}\""
            ))
        };
        let err = rule("", "trust").unwrap_err();
        assert!(err.contains("must match only this machine"), "{err}");
        let err = rule("addresses = [\"10.0.0.0/8\", \"127.0.0.1/32\"]\n", "trust").unwrap_err();
        assert!(err.contains("must match only this machine"), "{err}");
        for local in [
            "type = \"local\"\n",
            "addresses = [\"localhost\"]\n",
            "addresses = [\"127.0.0.0/8\", \"::1/128\"]\n",
        ] {
            assert!(rule(local, "trust").is_ok(), "{local}");
        }
        let err = GatewayConfig::parse(&format!(
            "unix_socket_permissions = 770\n{}",
            "[[rule]]\nname = \"r\"\nmethod = \"scram\""
        ))
        .unwrap_err();
        assert!(err.contains("such as 0o770"), "{err}");
        let err = rule("addresses = [\"localhost\"]\n", "peer").unwrap_err();
        assert!(err.contains("set type = \"local\""), "{err}");
        assert!(rule("type = \"local\"\n", "peer").is_ok());
        let old_file = rule("", "scram").unwrap();
        assert_eq!(
            old_file.unix_socket_directory, "",
            "no socket unless asked for"
        );
    }

    #[test]
    fn certificate_rules_need_tls_and_their_cas() {
        let cas = "[client_certificates]\nca_file = \"client-ca.crt\"\n";
        let rule = |kind: &str, extra: &str| {
            format!("[[rule]]\nname = \"c\"\ntype = \"{kind}\"\n{extra}\n")
        };
        let cert = rule("hostssl", "method = \"cert\"");
        let err = GatewayConfig::parse(&cert).unwrap_err();
        assert!(err.contains("[client_certificates]"), "{err}");
        let ok = GatewayConfig::parse(&format!("{cas}{cert}")).unwrap();
        assert_eq!(ok.rules[0].method, [Method::Cert]);
        assert!(ok.api_tls, "HTTPS by default");
        let both = rule(
            "hostssl",
            "method = \"scram\"\nclient_certificate = \"verify-full\"",
        );
        let parsed = GatewayConfig::parse(&format!("{cas}{both}")).unwrap();
        assert_eq!(
            parsed.rules[0].requirement(),
            Ok(Some(Requirement::VerifyFull))
        );
        let typo = rule(
            "hostssl",
            "method = \"scram\"\nclient_certificate = \"verify\"",
        );
        let err = GatewayConfig::parse(&format!("{cas}{typo}")).unwrap_err();
        assert!(err.contains("\"verify-ca\" or \"verify-full\""), "{err}");
        let bad_name = format!("{cas}name = \"subject\"\n{cert}");
        let err = GatewayConfig::parse(&bad_name).unwrap_err();
        assert!(err.contains("cn, dn, dns, email or uri"), "{err}");
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(
            GatewayConfig::parse("listen = \"127.0.0.1:1\"")
                .unwrap_err()
                .contains("no [[rule]]")
        );
        let bad = "[[rule]]\nname = \"x\"\ntype = \"hots\"\nmethod = \"scram\"";
        assert!(
            GatewayConfig::parse(bad)
                .unwrap_err()
                .contains("unknown type `hots`")
        );
        let bad = "[[rule]]\nname = \"x\"\naddresses = [\"10.0.0.0/33\"]\nmethod = \"scram\"";
        assert!(
            GatewayConfig::parse(bad)
                .unwrap_err()
                .contains("not a CIDR")
        );
        assert!(
            GatewayConfig::parse("auth_timeout = \"soon\"\n[[rule]]\nname=\"x\"\nmethod=\"scram\"")
                .is_err()
        );
    }

    #[test]
    fn the_readmes_toml_blocks_parse_as_one_file() {
        let readme = include_str!("../../../README.md");
        let mut blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        assert!(blocks.len() >= 3, "{blocks:?}");
        // Blocks of top-level keys (`trusted_proxies = [..]`) go before the tables, as
        // they would in one file.
        let opens_with_table = |b: &&str| {
            b.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .is_some_and(|l| l.starts_with('['))
        };
        blocks.sort_by_key(|b| opens_with_table(b));
        let parsed = GatewayConfig::parse(&blocks.concat()).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.rules.iter().any(|r| r.has(Method::OAuthBearer)));
        assert!(parsed.rules.iter().any(|r| r.has(Method::OAuthPassword)));
    }

    #[test]
    fn oauth_rules_name_what_the_file_configures() {
        let issuer = "[[oauth_issuer]]\nissuer = \"https://idp.example\"\naudience = \"pg\"\n";
        let rule = |kind: &str, extra: &str| {
            format!("[[rule]]\nname = \"o\"\ntype = \"{kind}\"\nmethod = \"oauthbearer\"\n{extra}")
        };
        let at = "issuer = \"https://idp.example/.well-known/openid-configuration\"\n";
        assert!(GatewayConfig::parse(&format!("{issuer}{}", rule("hostssl", at))).is_ok());
        // On `host` the token is offered only where TLS is on: the engine's transport rule.
        assert!(GatewayConfig::parse(&format!("{issuer}{}", rule("host", at))).is_ok());
        let err = GatewayConfig::parse(&rule("hostssl", at)).unwrap_err();
        assert!(err.contains("add [[oauth_issuer]]"), "{err}");
        let err = GatewayConfig::parse(&format!("{issuer}{}", rule("hostssl", ""))).unwrap_err();
        assert!(err.contains("needs issuer"), "{err}");
        let scram = "[[rule]]\nname = \"s\"\nmethod = \"scram\"\nscope = \"x\"\n";
        assert!(
            GatewayConfig::parse(scram)
                .unwrap_err()
                .contains("belong to")
        );
        let password = "[[rule]]\nname = \"p\"\nmethod = \"oauth-password\"\n";
        let err = GatewayConfig::parse(password).unwrap_err();
        assert!(err.contains("[oauth_password]"), "{err}");
        let section = "[oauth_password]\ntoken_endpoint = \"https://idp.example/token\"\nclient_id = \"gw\"\n";
        let err = GatewayConfig::parse(&format!("{section}{password}")).unwrap_err();
        assert!(err.contains("client_secret_env"), "{err}");
        let with_env =
            format!("{section}client_secret_env = \"S\"\n{password}fallback = \"kerberos\"\n");
        assert!(
            GatewayConfig::parse(&with_env)
                .unwrap_err()
                .contains("only fallback")
        );
    }

    #[test]
    fn gss_rules_say_whether_this_build_has_kerberos() {
        let gss = "[[rule]]\nname = \"k\"\nmethod = \"gss\"";
        let parsed = GatewayConfig::parse(gss);
        if cfg!(feature = "kerberos") {
            assert!(parsed.is_ok(), "{parsed:?}");
        } else {
            let err = parsed.unwrap_err();
            assert!(err.contains("--features kerberos"), "{err}");
        }
    }

    #[test]
    fn method_lists_protocols_and_maps_are_checked() {
        let rule = |extra: &str| GatewayConfig::parse(&format!("[[rule]]\nname = \"r\"\n{extra}"));
        let err = rule("method = \"bearer\"").unwrap_err();
        assert!(err.contains("protocols = [\"http\", \"grpc\"]"), "{err}");
        assert!(
            rule("method = [\"bearer\", \"api-key\"]\nprotocols = [\"http\", \"grpc\"]").is_ok()
        );
        let err = rule("method = [\"scram\", \"reject\"]").unwrap_err();
        assert!(err.contains("cannot be listed"), "{err}");
        let err = rule("method = []").unwrap_err();
        assert!(err.contains("runs nothing"), "{err}");
        let err = rule("method = \"scram\"\nprotocols = [\"smtp\"]").unwrap_err();
        assert!(err.contains("unknown protocol `smtp`"), "{err}");
        let err = rule("method = \"sso\"").unwrap_err();
        assert!(err.contains("or a list of them"), "{err}");
        let err = rule("type = \"local\"\nmethod = \"peer\"\nmap = \"m\"").unwrap_err();
        assert!(err.contains("no [[identity_map]] entries"), "{err}");
        let err = rule("method = \"scram\"\nmap = \"m\"\n[[identity_map]]\nmap = \"m\"\nidentity = \"a\"\nuser = \"b\"").unwrap_err();
        assert!(err.contains("prove none"), "{err}");
        let err = rule(
            "type = \"local\"\nmethod = \"peer\"\n[[identity_map]]\nidentity = \"a\"\nuser = \"b\"",
        )
        .unwrap_err();
        assert!(err.contains("names no map"), "{err}");
        let ok = rule("type = \"local\"\nmethod = \"peer\"\nmap = \"m\"\n[[identity_map]]\nmap = \"m\"\nmethod = \"peer\"\nidentity = \"a\"\nuser = \"b\"").unwrap();
        assert!(ok.identity_map("m").unwrap().allows("peer", "a", "b"));
        assert!(ok.identity_map("other").unwrap().is_empty());
    }
}
