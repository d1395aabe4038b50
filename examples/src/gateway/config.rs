//! The gateway's TOML file: it composes the settings types of the crates it runs (each
//! crate owns its own section, as sqlx's backends own their options) with the few keys
//! that are the gateway's own, and the `AUTH_*` environment variables over them.

use std::net::SocketAddr;

use auth_core::Protocol;
use auth_core::certificate::Requirement;
use auth_core::policy::{ConnectionType, Rule, Target};
use auth_core::settings::{
    AuditSettings, ClientCertificateSettings, ConfigError, ConfigProblem, IdentityMapSpec, Origin,
    RateLimitSettings, RuleSpec, Settings, SettingsSource, fields_of,
};
use auth_listen::ListenSettings;
use auth_oauth::{IssuerSettings, PasswordGrantSettings};
use auth_password::PasswordSettings;
use auth_wallet::WalletSettings;
use serde::{Deserialize, Serialize};

/// The prefix of the environment variables that override the file's settings:
/// `AUTH_LISTEN`, `AUTH_RATE_LIMIT__USER_FAILURES`, `AUTH_RULE__0__METHOD`.
pub const ENV_PREFIX: &str = "AUTH_";

/// How a rule authenticates: the gateway's method vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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

/// A rule's keys that belong to its methods rather than to pg_hba's vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodOptions {
    /// `oauthbearer` rules: the issuer advertised to clients and trusted for the rule's
    /// tokens (an `[[oauth_issuer]]`'s `issuer`, or its discovery document's URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `oauthbearer` rules: the scope clients ask for (space-separated); a token must carry
    /// every one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `oauth-password` rules: `scram` checks the password against the gateway's own users
    /// while the OAuth server is unavailable (never when it refused the password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// One `[[rule]]`: pg_hba's vocabulary (auth-core's [`RuleSpec`]) over the gateway's
/// methods, with the options of those methods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleConfig {
    /// The rule as pg_hba would say it.
    #[serde(flatten)]
    pub spec: RuleSpec<Method>,
    /// Its methods' options.
    #[serde(flatten)]
    pub options: MethodOptions,
}

impl std::ops::Deref for RuleConfig {
    type Target = RuleSpec<Method>;
    fn deref(&self) -> &RuleSpec<Method> {
        &self.spec
    }
}

impl RuleConfig {
    /// Whether the rule runs `method`.
    pub fn has(&self, method: Method) -> bool {
        self.spec.method.contains(&method)
    }
}

/// The keys that are the gateway's own, at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Where pgwire listens (default `127.0.0.1:6432`; `--listen` overrides it).
    pub listen: SocketAddr,
    /// Offer methods whose clients send a reusable secret (passwords, HTTP Basic, bearer
    /// tokens, API keys) on connections without TLS too, on every front door: only behind
    /// a TLS-terminating proxy on this machine (default false).
    pub danger_allow_cleartext_without_tls: bool,
    /// The directory of the Unix socket `.s.PGSQL.<port>` (`psql -h DIR`), relative to
    /// the data directory; `""` (the default when absent, so a file from before sockets
    /// keeps starting where a socket cannot be made) serves none. A first start writes
    /// `"."`, the data directory. Keep the directory unwritable by other users.
    pub unix_socket_directory: String,
    /// The socket file's permissions (default `0o777`: every local user may try;
    /// authentication then decides).
    pub unix_socket_permissions: u32,
    /// Serve the HTTP and gRPC APIs over TLS with the data directory's certificate (the
    /// default); `false` for plain HTTP/2 behind a TLS-terminating proxy on this machine.
    pub api_tls: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            danger_allow_cleartext_without_tls: false,
            unix_socket_directory: String::new(),
            unix_socket_permissions: 0o777,
            api_tls: true,
        }
    }
}

/// `[health]`: how the admin listener's readiness is judged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// How often every dependency is checked (default `5s`).
    #[serde(with = "auth_core::settings::duration")]
    pub interval: std::time::Duration,
    /// The dependencies whose failure makes `/readyz` answer 503, by name or by kind:
    /// `wallet`, `server_certificate`, `crl`, `keytab`, `oauth_password`, `oauth_issuer`
    /// (every issuer) or `oauth_issuer <issuer>` (one). Default: the wallet, the server certificate and the
    /// CRLs. The others are checked and reported without taking the instance out of its
    /// load balancer: a shared identity provider going down must not pull every instance
    /// while SCRAM still works.
    pub required: Vec<String>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval: std::time::Duration::from_secs(5),
            required: vec!["wallet".into(), "server_certificate".into(), "crl".into()],
        }
    }
}

/// The `[kerberos]` section: auth-kerberos's settings in a build with Kerberos; kept as
/// written in one without (a `gss` rule then says how to get a build with it).
#[cfg(feature = "kerberos")]
pub type KerberosConfig = auth_kerberos::KerberosSettings;
/// The `[kerberos]` section: auth-kerberos's settings in a build with Kerberos; kept as
/// written in one without (a `gss` rule then says how to get a build with it).
#[cfg(not(feature = "kerberos"))]
pub type KerberosConfig = toml::Table;

/// The whole file, composed of the crates' own settings.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayConfig {
    /// The gateway's own keys.
    #[serde(flatten)]
    pub gateway: GatewaySettings,
    /// auth-listen's: places, waits, trusted proxies, the certificate (top-level keys).
    #[serde(flatten)]
    pub listen: ListenSettings,
    /// auth-core's audit log (`audit_log`).
    #[serde(flatten)]
    pub audit: AuditSettings,
    /// `[rate_limit]`: auth-core's limiter, shared by every front door.
    pub rate_limit: RateLimitSettings,
    /// `[redis]`: auth-redis's store; when it names one, the limits are counted there,
    /// shared by every gateway on it.
    pub redis: auth_redis::RedisSettings,
    /// `[client_certificates]`: auth-core's certificate CAs.
    pub client_certificates: ClientCertificateSettings,
    /// `[password]`: auth-password's hasher and policy.
    pub password: PasswordSettings,
    /// `[wallet]`: auth-wallet's file and master key.
    pub wallet: WalletSettings,
    /// `[kerberos]`: auth-kerberos's, for `method = "gss"` rules.
    pub kerberos: KerberosConfig,
    /// `[oauth_password]`: auth-oauth's password grant, for `oauth-password` rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_password: Option<PasswordGrantSettings>,
    /// `[[oauth_issuer]]`: auth-oauth's issuers, whose tokens `oauthbearer` rules accept.
    #[serde(rename = "oauth_issuer")]
    pub oauth_issuers: Vec<IssuerSettings>,
    /// `[[rule]]`: the rules, first match wins.
    #[serde(rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// `[[identity_map]]`: which identities may act as which users (pg_ident), by map.
    pub identity_map: Vec<IdentityMapSpec>,
    /// `[health]`: the gateway's readiness checks.
    pub health: HealthSettings,
}

/// The tables and arrays of tables the file may hold, besides top-level keys.
const SECTIONS: [&str; 11] = [
    "health",
    "rate_limit",
    "redis",
    "client_certificates",
    "password",
    "wallet",
    "kerberos",
    "oauth_password",
    "oauth_issuer",
    "rule",
    "identity_map",
];

/// A configuration read, with what the environment set that is no setting (ignored).
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: GatewayConfig,
    /// Variables with the prefix that name no setting: ignored, and reported.
    pub warnings: Vec<ConfigProblem>,
}

/// `text` inside a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Collects a problem of section `section` per refusal of a crate's `build()`/`check()`.
fn locate_all(
    settings: &Settings<'_>,
    section: &str,
    invalid: impl IntoIterator<Item = auth_core::settings::Invalid>,
    problems: &mut Vec<ConfigProblem>,
) {
    problems.extend(invalid.into_iter().map(|i| settings.locate(section, i)));
}

/// `T` from `read`, or its default with the problem recorded.
fn or_default<T: Default>(read: Result<T, ConfigProblem>, problems: &mut Vec<ConfigProblem>) -> T {
    read.unwrap_or_else(|p| {
        problems.push(p);
        T::default()
    })
}

impl GatewayConfig {
    /// Reads `text` (the file `name`) with the `AUTH_*` variables of `env` over it, and
    /// checks the whole: every problem, each with its line or variable.
    pub fn load(
        name: &str,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        Self::load_in(None, name, text, env)
    }

    /// [`Self::load`], and with `data_dir` also the files the settings name, read as the
    /// start reads them (client CAs and CRLs, the server certificate when it exists, the
    /// issuers' CA bundles), so a missing or broken file is a problem on its key's line.
    /// Nothing is written and nothing is called.
    pub fn load_in(
        data_dir: Option<&std::path::Path>,
        name: &str,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let source = SettingsSource::new(name, text).with_env(ENV_PREFIX, env);
        let settings = source
            .parse()
            .map_err(|problems| ConfigError { problems })?;
        let mut problems = Vec::new();
        let p = &mut problems;
        let mut known: Vec<&str> = SECTIONS.to_vec();
        known.extend(fields_of::<GatewaySettings>());
        known.extend(fields_of::<ListenSettings>());
        known.extend(fields_of::<AuditSettings>());
        let (unknown, warnings) = settings.unknown_keys(&known);
        p.extend(unknown);
        let mut rules = Vec::new();
        match settings.each::<RuleSpec<Method>, MethodOptions>("rule", fields_of::<MethodOptions>())
        {
            Ok(elements) => {
                for e in elements {
                    match e.value {
                        Ok((spec, options)) => rules.push((e.index, RuleConfig { spec, options })),
                        Err(problem) => p.push(problem),
                    }
                }
            }
            Err(problem) => p.push(problem),
        }
        let identity_map = each_plain::<IdentityMapSpec>(&settings, "identity_map", p);
        let oauth_issuers = each_plain::<IssuerSettings>(&settings, "oauth_issuer", p);
        let config = Self {
            gateway: or_default(settings.top_level(), p),
            listen: or_default(settings.top_level(), p),
            audit: or_default(settings.top_level(), p),
            rate_limit: or_default(settings.section("rate_limit"), p),
            redis: or_default(settings.section("redis"), p),
            client_certificates: or_default(settings.section("client_certificates"), p),
            password: or_default(settings.section("password"), p),
            wallet: or_default(settings.section("wallet"), p),
            kerberos: or_default(settings.section("kerberos"), p),
            oauth_password: settings.optional("oauth_password").unwrap_or_else(|e| {
                p.push(e);
                None
            }),
            oauth_issuers: oauth_issuers.iter().map(|(_, i)| i.clone()).collect(),
            rules: rules.iter().map(|(_, r)| r.clone()).collect(),
            identity_map: identity_map.iter().map(|(_, e)| e.clone()).collect(),
            health: or_default(settings.section("health"), p),
        };
        let mut check = Check {
            settings: &settings,
            problems,
        };
        check.sections(&config, &oauth_issuers, &identity_map);
        if let Some(dir) = data_dir {
            check.files(&config, dir);
        }
        for (index, rule) in &rules {
            check.rule(&config, *index, rule);
        }
        if rules.is_empty() && check.problems.is_empty() {
            check.problems.push(
                ConfigProblem::new(
                    Origin::File {
                        file: name.into(),
                        line: 1,
                    },
                    "rule",
                    "no [[rule]]: every connection would be refused",
                )
                .hint("add one, e.g. [[rule]] name = \"all\" method = \"scram\""),
            );
        }
        // In the file's order, then the variables'.
        check.problems.sort_by_key(|p| match &p.origin {
            Origin::File { line, .. } => (0, *line),
            Origin::Env(_) => (1, 0),
            Origin::Default => (2, 0),
        });
        ConfigError::check(check.problems)?;
        Ok(Loaded { config, warnings })
    }

    /// Parses and checks `text` alone (no environment), as `gateway.toml`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::load("gateway.toml", text, std::iter::empty()).map(|l| l.config)
    }

    /// The effective configuration as TOML: every setting, defaults included. Secrets are
    /// never in it: the file can only name where they are (a variable, a wallet key, a
    /// file).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }

    /// The identity map `name`: the `[[identity_map]]` entries with `map = "name"`.
    pub fn identity_map(&self, name: &str) -> Result<auth_core::account::IdentityMap, String> {
        IdentityMapSpec::map(&self.identity_map, name).map_err(|e| e.to_string())
    }
}

/// The elements of the array of tables `key` that read, with their indexes.
fn each_plain<T: serde::de::DeserializeOwned>(
    settings: &Settings<'_>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<(usize, T)> {
    #[derive(Deserialize)]
    struct Nothing {}
    let mut out = Vec::new();
    match settings.each::<T, Nothing>(key, &[]) {
        Ok(elements) => {
            for e in elements {
                match e.value {
                    Ok((value, _)) => out.push((e.index, value)),
                    Err(p) => problems.push(p),
                }
            }
        }
        Err(p) => problems.push(p),
    }
    out
}

/// The checks across sections, each problem placed where its key was written.
struct Check<'s, 'a> {
    settings: &'s Settings<'a>,
    problems: Vec<ConfigProblem>,
}

impl Check<'_, '_> {
    fn at(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let mut problem = ConfigProblem::new(self.settings.origin(path), path, message);
        if let Some(hint) = hint {
            problem = problem.hint(hint);
        }
        self.problems.push(problem);
    }

    fn invalid(
        &mut self,
        section: &str,
        invalid: impl IntoIterator<Item = auth_core::settings::Invalid>,
    ) {
        locate_all(self.settings, section, invalid, &mut self.problems);
    }

    /// Each crate's own checks, and the gateway's across them.
    fn sections(
        &mut self,
        config: &GatewayConfig,
        issuers: &[(usize, IssuerSettings)],
        identity_map: &[(usize, IdentityMapSpec)],
    ) {
        if let Err(problems) = config.listen.build() {
            self.invalid("", problems);
        }
        if let Err(problems) = config.rate_limit.build() {
            self.invalid("rate_limit", problems);
        }
        if config.redis.is_set() || config.redis != auth_redis::RedisSettings::default() {
            self.invalid("redis", config.redis.check());
        }
        if let Err(problem) = config.client_certificates.client_name() {
            self.invalid("client_certificates", [problem]);
        }
        if let Err(problem) = config.password.build() {
            self.invalid("password", [problem]);
        }
        self.invalid("wallet", config.wallet.check());
        #[cfg(feature = "kerberos")]
        if let Err(problem) = config.kerberos.mapper() {
            self.invalid("kerberos", [problem]);
        }
        if let Some(grant) = &config.oauth_password {
            self.invalid("oauth_password", grant.check());
        }
        for (n, (i, issuer)) in issuers.iter().enumerate() {
            self.invalid(&format!("oauth_issuer[{i}]"), issuer.check());
            let same = |(_, other): &(usize, IssuerSettings)| {
                other.issuer.trim_end_matches('/') == issuer.issuer.trim_end_matches('/')
            };
            if issuers[..n].iter().any(same) {
                self.at(
                    &format!("oauth_issuer[{i}].issuer"),
                    format!("[[oauth_issuer]] `{}` is configured twice", issuer.issuer),
                    Some("keep one, with the audience its tokens name for this gateway".into()),
                );
            }
        }
        for (i, entry) in identity_map {
            let path = format!("identity_map[{i}]");
            if entry.map.is_none() {
                self.at(
                    &path,
                    format!("[[identity_map]] identity `{}` names no map", entry.identity),
                    Some("add map = \"NAME\", and map = \"NAME\" on the rules it is for (a rule's map admits only its entries)".into()),
                );
            }
            if let Err(problem) = entry.entry() {
                self.invalid(&path, [problem]);
            }
        }
        if config.gateway.unix_socket_permissions > 0o777 {
            self.at(
                "unix_socket_permissions",
                format!(
                    "unix_socket_permissions = {}: a mode is at most 0o777",
                    config.gateway.unix_socket_permissions
                ),
                Some(
                    "write it as a TOML octal number such as 0o770 (770 without 0o is decimal)"
                        .into(),
                ),
            );
        }
    }

    /// The files the sections name, read as the start reads them.
    fn files(&mut self, config: &GatewayConfig, dir: &std::path::Path) {
        let cas = match config.client_certificates.build(dir) {
            Ok(cas) => cas,
            Err(problem) => {
                self.invalid("client_certificates", [problem]);
                None
            }
        };
        let (certificate, key) = config.listen.tls_paths(dir);
        // A first start makes them; only files that are there are judged.
        if (certificate.exists() || key.exists())
            && let Err(problem) = config.listen.tls(dir, cas.as_deref())
        {
            self.invalid("", [problem]);
        }
        for (i, issuer) in config.oauth_issuers.iter().enumerate() {
            if issuer.check().is_empty()
                && let Err(problem) = issuer.build(dir)
            {
                self.invalid(&format!("oauth_issuer[{i}]"), [problem]);
            }
        }
    }

    /// One rule: its pg_hba words, and that its methods fit its doors and the sections.
    fn rule(&mut self, config: &GatewayConfig, index: usize, r: &RuleConfig) {
        let path = format!("rule[{index}]");
        let name = &r.spec.name;
        let rule = match r.spec.to_rule(Target::Reject) {
            Ok(rule) => Some(rule),
            Err(problem) => {
                self.invalid(&path, [problem]);
                None
            }
        };
        let method_path = format!("{path}.method");
        if r.spec.method.is_empty() {
            self.at(
                &method_path,
                format!("rule `{name}`: method = [] runs nothing"),
                Some("name a method".into()),
            );
        }
        if r.has(Method::Reject) && r.spec.method.len() > 1 {
            self.at(
                &method_path,
                format!("rule `{name}`: reject refuses; it cannot be listed with other methods"),
                None,
            );
        }
        let pgwire = r
            .spec
            .protocol_match()
            .is_ok_and(|p| p.includes(Protocol::Postgres));
        if let Some(m) = r
            .spec
            .method
            .iter()
            .find(|m| matches!(m, Method::Bearer | Method::ApiKey))
            .filter(|_| pgwire)
        {
            self.at(
                &method_path,
                format!("rule `{name}`: method \"{}\" is for the HTTP and gRPC APIs", m.as_str()),
                Some("add protocols = [\"http\", \"grpc\"] (PostgreSQL clients send tokens with method = \"oauthbearer\")".into()),
            );
        }
        let requirement = match r.spec.requirement() {
            Ok(requirement) => requirement,
            Err(problem) => {
                self.invalid(&path, [problem]);
                None
            }
        };
        if let Some(map) = &r.spec.map {
            let proves = r.spec.method.iter().any(|m| m.proves_identity())
                || requirement == Some(Requirement::VerifyFull);
            if !proves {
                self.at(
                    &format!("{path}.map"),
                    format!("rule `{name}`: map = \"...\" maps identities (peer, cert, gss, or a verify-full certificate) to users; this rule's methods prove none"),
                    None,
                );
            } else if !config
                .identity_map
                .iter()
                .any(|e| e.map.as_ref() == Some(map))
            {
                self.at(
                    &format!("{path}.map"),
                    format!("rule `{name}`: map = \"{map}\" has no [[identity_map]] entries"),
                    Some(format!("add [[identity_map]] entries with map = \"{map}\"")),
                );
            }
        }
        if let Some(rule) = &rule {
            self.local_only(&method_path, r, rule);
        }
        let uses_certificates = r.has(Method::Cert) || requirement.is_some();
        if uses_certificates && config.client_certificates.ca_file.is_none() {
            self.at(
                &path,
                format!("rule `{name}` uses client certificates, but no CAs are named"),
                Some("name their CAs in [client_certificates] ca_file = \"client-ca.crt\" (PEM, relative to the data directory)".into()),
            );
        }
        self.oauth(config, &path, r);
        #[cfg(not(feature = "kerberos"))]
        if r.has(Method::Gss) {
            self.at(
                &method_path,
                format!("rule `{name}`: method = \"gss\" needs Kerberos, which this build leaves out"),
                Some("run with `--features kerberos` (building it needs libkrb5-dev, libclang-dev and pkg-config: scripts/install-deps.sh)".into()),
            );
        }
    }

    /// Methods that prove nothing about a remote client need a rule that matches only
    /// this machine (auth-core's policy refuses them otherwise too; this says it in the
    /// file's terms).
    fn local_only(&mut self, method_path: &str, r: &RuleConfig, rule: &Rule) {
        let name = &r.spec.name;
        if r.has(Method::Peer) && rule.connection != ConnectionType::Local {
            self.at(
                method_path,
                format!("rule `{name}`: method = \"peer\" asks the kernel which OS user runs the client, which only a Unix-socket connection can tell"),
                Some("set type = \"local\"".into()),
            );
        }
        if r.has(Method::Trust) && !rule.local_only() {
            self.at(
                method_path,
                format!("rule `{name}`: method = \"trust\" lets clients in without any credential, so the rule must match only this machine"),
                Some("set type = \"local\" (the Unix socket) or addresses = [\"localhost\"]".into()),
            );
        }
    }

    /// The OAuth options fit the methods, and name what the file configures.
    fn oauth(&mut self, config: &GatewayConfig, path: &str, r: &RuleConfig) {
        let name = &r.spec.name;
        let options = &r.options;
        let bearer = r.has(Method::OAuthBearer);
        if !bearer && (options.issuer.is_some() || options.scope.is_some()) {
            self.at(
                path,
                format!("rule `{name}`: issuer and scope belong to method = \"oauthbearer\" rules"),
                None,
            );
        }
        if !r.has(Method::OAuthPassword) && options.fallback.is_some() {
            self.at(
                &format!("{path}.fallback"),
                format!("rule `{name}`: fallback belongs to method = \"oauth-password\" rules"),
                None,
            );
        }
        if bearer {
            match &options.issuer {
                None => self.at(
                    path,
                    format!(
                        "rule `{name}`: method = \"oauthbearer\" needs issuer = \"https://...\""
                    ),
                    Some("name one of the [[oauth_issuer]] sections".into()),
                ),
                Some(issuer)
                    if !config
                        .oauth_issuers
                        .iter()
                        .any(|i| super::oauth::advertises(issuer, &i.issuer)) =>
                {
                    self.at(
                        &format!("{path}.issuer"),
                        format!("rule `{name}`: issuer `{issuer}` is not configured"),
                        Some(format!("add [[oauth_issuer]] issuer = \"{issuer}\" with the audience its tokens name for this gateway")),
                    );
                }
                Some(_) => {}
            }
        }
        if r.has(Method::OAuthPassword) {
            if config.oauth_password.is_none() {
                self.at(
                    path,
                    format!("rule `{name}`: method = \"oauth-password\" needs an [oauth_password] section"),
                    Some("add [oauth_password] with token_endpoint, client_id and the client secret's source".into()),
                );
            }
            if let Some(other) = options.fallback.as_deref().filter(|f| *f != "scram") {
                self.at(
                    &format!("{path}.fallback"),
                    format!(
                        "rule `{name}`: fallback = \"{other}\"; the only fallback is \"scram\""
                    ),
                    None,
                );
            }
        }
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, String> {
        GatewayConfig::parse(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_hostgss_rule_is_refused_with_the_way_out() {
        let err =
            parse("[[rule]]\nname = \"krb\"\ntype = \"hostgss\"\nmethod = \"scram\"").unwrap_err();
        assert!(err.contains("GSS-encrypted connections"), "{err}");
        assert!(err.contains("method = \"gss\""), "{err}");
    }

    #[test]
    fn the_default_file_parses() {
        let c = parse(&GatewayConfig::default_toml("ro\"ot")).unwrap();
        assert_eq!(c.gateway.listen.port(), 6432);
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
        assert!(!c.gateway.danger_allow_cleartext_without_tls);
        assert_eq!(
            (
                c.gateway.unix_socket_directory.as_str(),
                c.gateway.unix_socket_permissions
            ),
            (".", 0o777)
        );
        assert_eq!(c.identity_map[0].identity, "ro\"ot");
    }

    #[test]
    fn trust_and_peer_only_where_they_prove_something() {
        let rule = |extra: &str, method: &str| {
            parse(&format!(
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
        let err = parse(&format!(
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
            old_file.gateway.unix_socket_directory, "",
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
        let err = parse(&cert).unwrap_err();
        assert!(err.contains("[client_certificates]"), "{err}");
        let ok = parse(&format!("{cas}{cert}")).unwrap();
        assert_eq!(ok.rules[0].method, [Method::Cert]);
        assert!(ok.gateway.api_tls, "HTTPS by default");
        let both = rule(
            "hostssl",
            "method = \"scram\"\nclient_certificate = \"verify-full\"",
        );
        let parsed = parse(&format!("{cas}{both}")).unwrap();
        assert_eq!(
            parsed.rules[0].requirement(),
            Ok(Some(Requirement::VerifyFull))
        );
        let typo = rule(
            "hostssl",
            "method = \"scram\"\nclient_certificate = \"verify\"",
        );
        let err = parse(&format!("{cas}{typo}")).unwrap_err();
        assert!(err.contains("\"verify-ca\" or \"verify-full\""), "{err}");
        let bad_name = format!("{cas}name = \"subject\"\n{cert}");
        let err = parse(&bad_name).unwrap_err();
        assert!(err.contains("cn, dn, dns, email or uri"), "{err}");
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(
            parse("listen = \"127.0.0.1:1\"")
                .unwrap_err()
                .contains("no [[rule]]")
        );
        let bad = "[[rule]]\nname = \"x\"\ntype = \"hots\"\nmethod = \"scram\"";
        assert!(parse(bad).unwrap_err().contains("unknown type `hots`"));
        let bad = "[[rule]]\nname = \"x\"\naddresses = [\"10.0.0.0/33\"]\nmethod = \"scram\"";
        assert!(parse(bad).unwrap_err().contains("not a CIDR"));
        assert!(parse("auth_timeout = \"soon\"\n[[rule]]\nname=\"x\"\nmethod=\"scram\"").is_err());
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
        let parsed = parse(&blocks.concat()).unwrap_or_else(|e| panic!("{e}"));
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
        assert!(parse(&format!("{issuer}{}", rule("hostssl", at))).is_ok());
        // On `host` the token is offered only where TLS is on: the engine's transport rule.
        assert!(parse(&format!("{issuer}{}", rule("host", at))).is_ok());
        let err = parse(&rule("hostssl", at)).unwrap_err();
        assert!(err.contains("add [[oauth_issuer]]"), "{err}");
        let err = parse(&format!("{issuer}{}", rule("hostssl", ""))).unwrap_err();
        assert!(err.contains("needs issuer"), "{err}");
        let scram = "[[rule]]\nname = \"s\"\nmethod = \"scram\"\nscope = \"x\"\n";
        assert!(parse(scram).unwrap_err().contains("belong to"));
        let password = "[[rule]]\nname = \"p\"\nmethod = \"oauth-password\"\n";
        let err = parse(password).unwrap_err();
        assert!(err.contains("[oauth_password]"), "{err}");
        let section = "[oauth_password]\ntoken_endpoint = \"https://idp.example/token\"\nclient_id = \"gw\"\n";
        let err = parse(&format!("{section}{password}")).unwrap_err();
        assert!(err.contains("client_secret_env"), "{err}");
        let with_env =
            format!("{section}client_secret_env = \"S\"\n{password}fallback = \"kerberos\"\n");
        assert!(parse(&with_env).unwrap_err().contains("only fallback"));
    }

    #[test]
    fn gss_rules_say_whether_this_build_has_kerberos() {
        let gss = "[[rule]]\nname = \"k\"\nmethod = \"gss\"";
        let parsed = parse(gss);
        if cfg!(feature = "kerberos") {
            assert!(parsed.is_ok(), "{parsed:?}");
        } else {
            let err = parsed.unwrap_err();
            assert!(err.contains("--features kerberos"), "{err}");
        }
    }

    #[test]
    fn method_lists_protocols_and_maps_are_checked() {
        let rule = |extra: &str| parse(&format!("[[rule]]\nname = \"r\"\n{extra}"));
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
        assert!(err.contains("unknown variant `sso`"), "{err}");
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

    /// The README's blocks as one file, with every optional section filled in.
    fn everything() -> String {
        let readme = include_str!("../../../README.md");
        let mut blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        blocks.sort_by_key(|b| {
            b.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .is_some_and(|l| l.starts_with('['))
        });
        let extra = r#"
[kerberos]
keytab = "/etc/krb5.keytab"
service = "postgres"
http_service = "HTTP"
realms = ["TEST.REALM"]
[[kerberos.map]]
pattern = "^(.*)$"
user = "\\1"
[wallet]
master_key_file = "master.key"
"#;
        format!("{}{extra}", blocks.concat())
    }

    /// `path`'s value in `table` (`rule.0.method`).
    fn leaf<'t>(table: &'t toml::Table, path: &[String]) -> Option<&'t toml::Value> {
        let mut value = table.get(&path[0])?;
        for step in &path[1..] {
            value = match step.parse::<usize>() {
                Ok(i) => value.as_array()?.get(i)?,
                Err(_) => value.as_table()?.get(step)?,
            };
        }
        Some(value)
    }

    fn leaves(prefix: &[String], value: &toml::Value, out: &mut Vec<(Vec<String>, toml::Value)>) {
        let at = |k: String| [prefix, &[k]].concat();
        match value {
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| leaves(&at(k.clone()), v, out)),
            toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| leaves(&at(i.to_string()), v, out)),
            other => out.push((prefix.to_vec(), other.clone())),
        }
    }

    /// Another value of the same kind, as an environment variable would write it.
    fn another(value: &toml::Value) -> String {
        match value {
            toml::Value::Integer(n) => (n + 1).to_string(),
            toml::Value::Boolean(b) => (!b).to_string(),
            toml::Value::String(s) => {
                if let Ok(d) = humantime::parse_duration(s) {
                    humantime::format_duration(d + std::time::Duration::from_secs(1)).to_string()
                } else if let Ok(addr) = s.parse::<SocketAddr>() {
                    SocketAddr::new(addr.ip(), addr.port() + 1).to_string()
                } else {
                    format!("{s}x")
                }
            }
            toml::Value::Array(items) => {
                let mut items = items.clone();
                items.push(toml::Value::String("x".into()));
                toml::Value::Array(items).to_string()
            }
            other => other.to_string(),
        }
    }

    #[test]
    fn every_key_can_be_set_by_its_auth_variable() {
        let file = everything();
        let base = parse(&file).unwrap_or_else(|e| panic!("{e}"));
        let effective: toml::Table = toml::from_str(&base.to_toml()).unwrap();
        let mut all = Vec::new();
        leaves(&[], &toml::Value::Table(effective), &mut all);
        assert!(all.len() > 60, "{} keys", all.len());
        let (mut applied, mut refused) = (0, 0);
        for (path, old) in &all {
            let var = format!("{ENV_PREFIX}{}", path.join("__").to_ascii_uppercase());
            let value = another(old);
            match GatewayConfig::load("gateway.toml", &file, [(var.clone(), value.clone())]) {
                Ok(loaded) => {
                    assert!(loaded.warnings.is_empty(), "{var}: {:?}", loaded.warnings);
                    let now: toml::Table = toml::from_str(&loaded.config.to_toml()).unwrap();
                    let new = leaf(&now, path).unwrap_or_else(|| panic!("{var} lost the key"));
                    assert_ne!(new, old, "{var}={value} changed nothing");
                    applied += 1;
                }
                Err(e) => {
                    // A value the setting refuses (naming the variable), or a rule naming
                    // the setting does: the file alone loads, so the variable reached it.
                    assert!(!e.problems.is_empty(), "{var}={value}");
                    refused += 1;
                }
            }
        }
        assert!(applied > refused, "{applied} applied, {refused} refused");
    }
}
