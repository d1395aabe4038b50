//! Configuration from a TOML file and the environment, validated at start-up.
//!
//! Environment variables override the file. Every problem is reported at once, each
//! naming the setting, what is wrong and how to fix it, so a bad deployment fails fast
//! instead of at the first login.
//!
//! | environment | file | meaning |
//! |---|---|---|
//! | `AUTH_CONFIG` | | path of the TOML file |
//! | `AUTH_METHODS` | `methods` | ordered methods: `oauth,kerberos,wallet,password,api_key` |
//! | `AUTH_TIMEOUT` | `timeout` | per-method time limit (`5s`, `750ms`); default 5 s |
//! | `AUTH_FALLBACK` | `fallback` | methods whose outage falls through to the next (`oauth,kerberos`, `all`, `none`) |
//! | `AUTH_RATE_LIMIT` | `rate_limit.enabled` | `true`/`false`; default true |
//! | | `rate_limit.user_failures`, `address_failures`, `window`, `lockout`, `max_lockout`, `exempt_localhost`, `max_running_per_address`, `max_waiting_per_user`, `known_for`, `max_known_per_user` | the fields of [`LimitSettings`] |
//! | `AUTH_AUDIT_PATH` | `audit.path` | JSON-lines audit file; default: the `tracing` log |
//! | `AUTH_OAUTH_ISSUER` | `oauth.issuer` | trusted issuer (discovery) |
//! | `AUTH_OAUTH_JWKS_URL` | `oauth.jwks_url` | explicit JWKS URL |
//! | `AUTH_OAUTH_AUDIENCE` | `oauth.audience` | our audience |
//! | `AUTH_OAUTH_TOKEN_ENDPOINT` | `oauth.token_endpoint` | for the password grant |
//! | `AUTH_OAUTH_CLIENT_ID` | `oauth.client_id` | our client id |
//! | `AUTH_OAUTH_TIMEOUT` | `oauth.timeout` | overrides `timeout` for OAuth |
//! | `AUTH_KERBEROS_KEYTAB` or `KRB5_KTNAME` | `kerberos.keytab` | acceptor keytab |
//! | `AUTH_KERBEROS_SERVICE` | `kerberos.service` | service name; default `postgres` |
//! | `AUTH_KERBEROS_TIMEOUT` | `kerberos.timeout` | overrides `timeout` |
//! | `AUTH_WALLET_PATH` | `wallet.path` | wallet file |
//! | `AUTH_WALLET_KEY_FILE` | `wallet.key_file` | master key file |
//! | `AUTH_WALLET_KEY_ENV` | `wallet.key_env` | variable holding the master key |
//! | `AUTH_WALLET_PREFIX` | `wallet.prefix` | user key prefix; default `pgwire-user-` |
//! | `AUTH_PASSWORD_ALLOW_CLEARTEXT` | `password.allow_cleartext_without_tls` | default false |

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use std::sync::Arc;

use crate::audit::JsonLinesAuditSink;
use crate::authenticator::Authenticator;
use crate::chain::{Chain, Control, Link};
use crate::engine::{Engine, EngineBuilder};
use crate::policy::Policy;
use crate::rate_limit::{LimitSettings, MemoryRateLimiter};

/// The longest per-method timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// An authentication method a deployment can enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// OAuth / JWT bearer tokens and the password grant.
    OAuth,
    /// Kerberos / GSSAPI.
    Kerberos,
    /// Secrets in the encrypted wallet.
    Wallet,
    /// Local password hashes and SCRAM.
    Password,
    /// API keys.
    ApiKey,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 5] = [
        Self::OAuth,
        Self::Kerberos,
        Self::Wallet,
        Self::Password,
        Self::ApiKey,
    ];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::Kerberos => "kerberos",
            Self::Wallet => "wallet",
            Self::Password => "password",
            Self::ApiKey => "api_key",
        }
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| s.trim().to_owned())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The setting, as the file and the environment name it (`timeout` / `AUTH_TIMEOUT`).
    pub setting: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// A configuration that cannot be used; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid authentication configuration:")?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}; {}", p.setting, p.problem, p.fix)?;
        }
        Ok(())
    }
}

impl From<ConfigError> for crate::Failure {
    fn from(e: ConfigError) -> Self {
        crate::Failure::new(crate::ConfigurationError::Invalid, e.to_string())
    }
}

/// OAuth settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// The trusted issuer, for discovery.
    pub issuer: Option<String>,
    /// An explicit JWKS URL.
    pub jwks_url: Option<String>,
    /// Our audience.
    pub audience: Option<String>,
    /// The token endpoint for the password grant.
    pub token_endpoint: Option<String>,
    /// Our client id.
    pub client_id: Option<String>,
    /// Overrides the global timeout.
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// Kerberos settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerberosSettings {
    /// The acceptor keytab.
    pub keytab: Option<PathBuf>,
    /// The service name (`postgres`).
    pub service: Option<String>,
    /// Overrides the global timeout.
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// Wallet settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletSettings {
    /// The wallet file.
    pub path: Option<PathBuf>,
    /// The master key file.
    pub key_file: Option<PathBuf>,
    /// The environment variable holding the master key.
    pub key_env: Option<String>,
    /// The prefix of user keys.
    pub prefix: Option<String>,
    /// Overrides the global timeout.
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// Password settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    /// Whether the host should accept cleartext passwords on connections without TLS.
    /// auth-core only reads the setting: the host acts on it through its adapter's
    /// `dangerous()` options (`auth_pgwire::PgAuthConfig::dangerous`).
    #[serde(default)]
    pub allow_cleartext_without_tls: bool,
    /// Overrides the global timeout.
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// The `[rate_limit]` section of a file, as written: every field optional. Hosts with a
/// configuration file of their own (the gateway examples) embed it and call
/// [`RateLimitSection::settings`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    enabled: Option<bool>,
    user_failures: Option<u32>,
    address_failures: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    window: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    lockout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    max_lockout: Option<Duration>,
    exempt_localhost: Option<bool>,
    max_running_per_address: Option<u32>,
    max_waiting_per_user: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    known_for: Option<Duration>,
    max_known_per_user: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Option<PathBuf>,
}

/// The file's shape; everything optional so the environment can fill gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    methods: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde_opt")]
    timeout: Option<Duration>,
    fallback: Option<Vec<String>>,
    #[serde(default)]
    rate_limit: RateLimitSection,
    #[serde(default)]
    audit: RawAudit,
    oauth: Option<OAuthSettings>,
    kerberos: Option<KerberosSettings>,
    wallet: Option<WalletSettings>,
    password: Option<PasswordSettings>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Enabled methods, in chain order.
    pub methods: Vec<Method>,
    /// The per-method timeout.
    pub timeout: Duration,
    /// Methods whose outage falls through to the next method.
    pub fallback: Vec<Method>,
    /// Rate limiting, if enabled.
    pub rate_limit: Option<LimitSettings>,
    /// The JSON-lines audit file, if not the `tracing` log.
    pub audit_path: Option<PathBuf>,
    /// OAuth settings.
    pub oauth: OAuthSettings,
    /// Kerberos settings.
    pub kerberos: KerberosSettings,
    /// Wallet settings.
    pub wallet: WalletSettings,
    /// Password settings.
    pub password: PasswordSettings,
}

impl Config {
    /// Loads from the process environment and the file named by `AUTH_CONFIG`, if set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file = match env.get("AUTH_CONFIG") {
            Some(path) => Some(read_file(Path::new(path))?),
            None => None,
        };
        Self::load(file.as_deref(), &env)
    }

    /// Loads from TOML text (if any) and an environment map; the environment wins.
    pub fn load(
        toml_text: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut raw = match toml_text {
            Some(text) => toml::from_str::<RawConfig>(text).unwrap_or_else(|e| {
                problems.push(problem(
                    "configuration file",
                    format!("is not valid: {}", e.message()),
                    "fix the TOML syntax or remove the unknown setting it names",
                ));
                RawConfig::default()
            }),
            None => RawConfig::default(),
        };
        apply_env(&mut raw, env, &mut problems);
        let config = validate(raw, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The timeout for `method`: its own if set, else the global one.
    pub fn timeout_for(&self, method: Method) -> Duration {
        let own = match method {
            Method::OAuth => self.oauth.timeout,
            Method::Kerberos => self.kerberos.timeout,
            Method::Wallet => self.wallet.timeout,
            Method::Password => self.password.timeout,
            Method::ApiKey => None,
        };
        own.unwrap_or(self.timeout)
    }

    /// Whether an outage of `method` falls through to the next method.
    pub fn falls_back(&self, method: Method) -> bool {
        self.fallback.contains(&method)
    }

    /// The engine this configuration describes: one rule for every connection, running
    /// one link per enabled method, in order, each [`Control::CONCLUSIVE`] (falling
    /// through on an outage when the method is in `fallback`) under its timeout; rate
    /// limited when enabled; auditing to the JSON-lines file when one is set. `resolve`
    /// supplies the authenticator for each method; a method it cannot supply is a
    /// configuration error. The builder is returned so the host can still set a clock,
    /// an account stage, a shared limiter or another audit sink.
    pub fn engine_builder(
        &self,
        mut resolve: impl FnMut(Method) -> Option<Arc<dyn Authenticator>>,
    ) -> Result<EngineBuilder, ConfigError> {
        let mut problems = Vec::new();
        let mut chain = Chain::builder().name("config");
        for &method in &self.methods {
            let Some(auth) = resolve(method) else {
                problems.push(problem(
                    "methods / AUTH_METHODS",
                    format!("`{method}` is enabled but this server has no {method} authenticator"),
                    "remove it from AUTH_METHODS or build the server with that backend",
                ));
                continue;
            };
            let control = if self.falls_back(method) {
                Control::CONCLUSIVE.fallback_on_unavailable()
            } else {
                Control::CONCLUSIVE
            };
            chain = chain.push(Link::new(auth, control).with_timeout(self.timeout_for(method)));
        }
        let mut builder = match Policy::single(chain.build()) {
            Ok(policy) => Engine::builder(policy),
            Err(e) => {
                problems.push(problem(
                    "methods / AUTH_METHODS",
                    e.to_string(),
                    "remove local-only methods (trust, peer) from AUTH_METHODS",
                ));
                return Err(ConfigError { problems });
            }
        };
        if let Some(limits) = &self.rate_limit {
            builder = builder.rate_limiter(Arc::new(MemoryRateLimiter::new(limits.clone())));
        }
        if let Some(path) = &self.audit_path {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => builder = builder.audit(Arc::new(JsonLinesAuditSink::new(file))),
                Err(e) => problems.push(problem(
                    "audit.path / AUTH_AUDIT_PATH",
                    format!("cannot open {} for appending: {e}", path.display()),
                    "point it at a writable file or unset it to audit through the tracing log",
                )),
            }
        }
        if problems.is_empty() {
            Ok(builder)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![problem(
            "AUTH_CONFIG",
            format!("cannot read {}: {e}", path.display()),
            "point AUTH_CONFIG at a readable TOML file or unset it",
        )],
    })
}

fn problem(setting: &str, what: impl Into<String>, fix: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        setting: setting.to_owned(),
        problem: what.into(),
        fix: fix.into(),
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn apply_env(
    raw: &mut RawConfig,
    env: &HashMap<String, String>,
    problems: &mut Vec<ConfigProblem>,
) {
    let get = |k: &str| {
        env.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let duration = |k: &str, problems: &mut Vec<ConfigProblem>| {
        get(k).and_then(|v| match humantime::parse_duration(&v) {
            Ok(d) => Some(d),
            Err(_) => {
                problems.push(problem(
                    k,
                    format!("`{v}` is not a duration"),
                    "use a value like `5s` or `750ms`",
                ));
                None
            }
        })
    };
    let boolean = |k: &str, problems: &mut Vec<ConfigProblem>| {
        get(k).and_then(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => {
                problems.push(problem(
                    k,
                    format!("`{v}` is not a boolean"),
                    "use `true` or `false`",
                ));
                None
            }
        })
    };

    if let Some(v) = get("AUTH_METHODS") {
        raw.methods = Some(list(&v));
    }
    if let Some(d) = duration("AUTH_TIMEOUT", problems) {
        raw.timeout = Some(d);
    }
    if let Some(v) = get("AUTH_FALLBACK") {
        raw.fallback = Some(list(&v));
    }
    if let Some(b) = boolean("AUTH_RATE_LIMIT", problems) {
        raw.rate_limit.enabled = Some(b);
    }
    if let Some(p) = get("AUTH_AUDIT_PATH") {
        raw.audit.path = Some(p.into());
    }

    let oauth = raw.oauth.get_or_insert_with(Default::default);
    for (k, slot) in [
        ("AUTH_OAUTH_ISSUER", &mut oauth.issuer),
        ("AUTH_OAUTH_JWKS_URL", &mut oauth.jwks_url),
        ("AUTH_OAUTH_AUDIENCE", &mut oauth.audience),
        ("AUTH_OAUTH_TOKEN_ENDPOINT", &mut oauth.token_endpoint),
        ("AUTH_OAUTH_CLIENT_ID", &mut oauth.client_id),
    ] {
        if let Some(v) = get(k) {
            *slot = Some(v);
        }
    }
    if let Some(d) = duration("AUTH_OAUTH_TIMEOUT", problems) {
        oauth.timeout = Some(d);
    }

    let krb = raw.kerberos.get_or_insert_with(Default::default);
    if let Some(v) = get("AUTH_KERBEROS_KEYTAB").or_else(|| get("KRB5_KTNAME")) {
        // KRB5_KTNAME may carry a `FILE:` residue type prefix.
        krb.keytab = Some(v.strip_prefix("FILE:").unwrap_or(&v).into());
    }
    if let Some(v) = get("AUTH_KERBEROS_SERVICE") {
        krb.service = Some(v);
    }
    if let Some(d) = duration("AUTH_KERBEROS_TIMEOUT", problems) {
        krb.timeout = Some(d);
    }

    let wallet = raw.wallet.get_or_insert_with(Default::default);
    if let Some(v) = get("AUTH_WALLET_PATH") {
        wallet.path = Some(v.into());
    }
    if let Some(v) = get("AUTH_WALLET_KEY_FILE") {
        wallet.key_file = Some(v.into());
    }
    if let Some(v) = get("AUTH_WALLET_KEY_ENV") {
        wallet.key_env = Some(v);
    }
    if let Some(v) = get("AUTH_WALLET_PREFIX") {
        wallet.prefix = Some(v);
    }

    let password = raw.password.get_or_insert_with(Default::default);
    if let Some(b) = boolean("AUTH_PASSWORD_ALLOW_CLEARTEXT", problems) {
        password.allow_cleartext_without_tls = b;
    }
}

fn parse_methods(
    names: &[String],
    setting: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Method> {
    let mut methods = Vec::new();
    for name in names {
        match name.parse::<Method>() {
            Ok(m) if methods.contains(&m) => problems.push(problem(
                setting,
                format!("`{m}` is listed twice"),
                "list each method once, in the order they should be tried",
            )),
            Ok(m) => methods.push(m),
            Err(bad) => problems.push(problem(
                setting,
                format!("unknown method `{bad}`"),
                "use oauth, kerberos, wallet, password or api_key",
            )),
        }
    }
    methods
}

fn check_timeout(setting: &str, d: Duration, problems: &mut Vec<ConfigProblem>) {
    if d.is_zero() || d > MAX_TIMEOUT {
        problems.push(problem(
            setting,
            format!("{} is out of range", humantime::format_duration(d)),
            "use a timeout above 0 and at most 60s (the default is 5s)",
        ));
    }
}

fn check_url(setting: &str, url: &str, problems: &mut Vec<ConfigProblem>) {
    if !(url.starts_with("https://") || is_loopback_http(url)) {
        problems.push(problem(
            setting,
            format!("`{url}` is not an https URL"),
            "use https:// (plain http is accepted only for 127.0.0.1, [::1] and localhost)",
        ));
    }
}

/// Whether `url` is plain http to this machine: the authority, without user info, is a
/// loopback host with an optional numeric port.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn validate(raw: RawConfig, problems: &mut Vec<ConfigProblem>) -> Config {
    let methods = match &raw.methods {
        Some(names) => parse_methods(names, "methods / AUTH_METHODS", problems),
        None => vec![Method::Password],
    };
    if raw.methods.as_ref().is_some_and(Vec::is_empty) {
        problems.push(problem(
            "methods / AUTH_METHODS",
            "no method is enabled",
            "enable at least one, for example AUTH_METHODS=password",
        ));
    }
    let timeout = raw.timeout.unwrap_or(crate::chain::DEFAULT_TIMEOUT);
    check_timeout("timeout / AUTH_TIMEOUT", timeout, problems);

    let fallback = match raw.fallback.as_deref() {
        None => Vec::new(),
        Some([one]) if one.eq_ignore_ascii_case("all") => methods.clone(),
        Some([one]) if one.eq_ignore_ascii_case("none") => Vec::new(),
        Some(names) => {
            let fb = parse_methods(names, "fallback / AUTH_FALLBACK", problems);
            for m in &fb {
                if !methods.contains(m) {
                    problems.push(problem(
                        "fallback / AUTH_FALLBACK",
                        format!("`{m}` may fall back but is not enabled"),
                        "add it to AUTH_METHODS or remove it from AUTH_FALLBACK",
                    ));
                }
            }
            fb
        }
    };

    let oauth = raw.oauth.unwrap_or_default();
    let kerberos = raw.kerberos.unwrap_or_default();
    let wallet = raw.wallet.unwrap_or_default();
    let password = raw.password.unwrap_or_default();

    for (m, t) in [
        (Method::OAuth, oauth.timeout),
        (Method::Kerberos, kerberos.timeout),
        (Method::Wallet, wallet.timeout),
        (Method::Password, password.timeout),
    ] {
        if let Some(t) = t {
            check_timeout(&format!("{m}.timeout"), t, problems);
        }
    }

    if methods.contains(&Method::OAuth) {
        if oauth.issuer.is_none() && oauth.jwks_url.is_none() && oauth.token_endpoint.is_none() {
            problems.push(problem(
                "oauth",
                "oauth is enabled without an issuer, a JWKS URL or a token endpoint",
                "set AUTH_OAUTH_ISSUER (or oauth.issuer) for bearer tokens, or AUTH_OAUTH_TOKEN_ENDPOINT for the password grant",
            ));
        }
        for (name, v) in [
            ("oauth.issuer / AUTH_OAUTH_ISSUER", &oauth.issuer),
            ("oauth.jwks_url / AUTH_OAUTH_JWKS_URL", &oauth.jwks_url),
            (
                "oauth.token_endpoint / AUTH_OAUTH_TOKEN_ENDPOINT",
                &oauth.token_endpoint,
            ),
        ] {
            if let Some(url) = v {
                check_url(name, url, problems);
            }
        }
        if oauth.token_endpoint.is_some() && oauth.client_id.is_none() {
            problems.push(problem(
                "oauth.client_id / AUTH_OAUTH_CLIENT_ID",
                "a token endpoint is set but no client id",
                "set the client id registered with the authorization server",
            ));
        }
    }
    if methods.contains(&Method::Kerberos) && kerberos.keytab.is_none() {
        problems.push(problem(
            "kerberos.keytab / AUTH_KERBEROS_KEYTAB",
            "kerberos is enabled without a keytab",
            "set AUTH_KERBEROS_KEYTAB or KRB5_KTNAME to the service keytab",
        ));
    }
    if methods.contains(&Method::Wallet) {
        if wallet.path.is_none() {
            problems.push(problem(
                "wallet.path / AUTH_WALLET_PATH",
                "the wallet is enabled without a path",
                "set AUTH_WALLET_PATH to the wallet file",
            ));
        }
        if wallet.key_file.is_none() && wallet.key_env.is_none() {
            problems.push(problem(
                "wallet.key_file / AUTH_WALLET_KEY_FILE",
                "the wallet is enabled without a master key source",
                "set AUTH_WALLET_KEY_FILE to a key file (mode 0600) or AUTH_WALLET_KEY_ENV to a variable name",
            ));
        }
    }

    let rate_limit = rate_limit_settings(&raw.rate_limit, problems);

    Config {
        methods,
        timeout,
        fallback,
        rate_limit,
        audit_path: raw.audit.path,
        oauth,
        kerberos,
        wallet,
        password,
    }
}

impl RateLimitSection {
    /// The settings this section asks for (defaults for what it leaves out), `None` when
    /// it disables limiting, or every problem found.
    pub fn settings(&self) -> Result<Option<LimitSettings>, ConfigError> {
        let mut problems = Vec::new();
        let settings = rate_limit_settings(self, &mut problems);
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn rate_limit_settings(
    raw: &RateLimitSection,
    problems: &mut Vec<ConfigProblem>,
) -> Option<LimitSettings> {
    if raw.enabled == Some(false) {
        return None;
    }
    let d = LimitSettings::default();
    let s = LimitSettings {
        user_failures: raw.user_failures.unwrap_or(d.user_failures),
        address_failures: raw.address_failures.unwrap_or(d.address_failures),
        window: raw.window.unwrap_or(d.window),
        lockout: raw.lockout.unwrap_or(d.lockout),
        max_lockout: raw.max_lockout.unwrap_or(d.max_lockout),
        exempt_localhost: raw.exempt_localhost.unwrap_or(d.exempt_localhost),
        max_tracked: d.max_tracked,
        max_running_per_address: raw
            .max_running_per_address
            .unwrap_or(d.max_running_per_address),
        max_waiting_per_user: raw.max_waiting_per_user.unwrap_or(d.max_waiting_per_user),
        known_for: raw.known_for.unwrap_or(d.known_for),
        max_known_per_user: raw.max_known_per_user.unwrap_or(d.max_known_per_user),
    };
    if s.max_running_per_address < s.user_failures {
        problems.push(problem(
            "rate_limit.max_running_per_address",
            "fewer running attempts per address than user_failures would refuse a pool's correct logins",
            "use at least user_failures (default 64)",
        ));
    }
    if s.user_failures == 0 || s.address_failures == 0 {
        problems.push(problem(
            "rate_limit.user_failures / rate_limit.address_failures",
            "a limit of 0 would lock everyone out",
            "use a positive number (defaults: 5 per user, 20 per address)",
        ));
    }
    if s.window.is_zero() || s.lockout.is_zero() || s.max_lockout < s.lockout {
        problems.push(problem(
            "rate_limit.window / lockout / max_lockout",
            "durations must be positive and max_lockout at least lockout",
            "for example window = \"5m\", lockout = \"1m\", max_lockout = \"1h\"",
        ));
    }
    Some(s)
}

/// `Option<Duration>` from a humantime string (`"5s"`).
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => humantime::parse_duration(&s).map(Some).map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a duration; use a value like \"5s\" or \"750ms\""
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_password_only_5s_rate_limited() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.methods, vec![Method::Password]);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.rate_limit, Some(LimitSettings::default()));
        assert!(c.fallback.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = r#"
            methods = ["password"]
            timeout = "2s"
            [wallet]
            path = "/var/lib/auth/wallet"
            key_file = "/etc/auth/key"
        "#;
        let c = Config::load(
            Some(file),
            &env(&[
                ("AUTH_METHODS", "oauth, kerberos,wallet,password"),
                ("AUTH_TIMEOUT", "750ms"),
                ("AUTH_FALLBACK", "oauth,kerberos"),
                ("AUTH_OAUTH_ISSUER", "https://id.example.com"),
                ("KRB5_KTNAME", "FILE:/etc/krb5.keytab"),
                ("AUTH_KERBEROS_TIMEOUT", "2s"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.methods,
            vec![
                Method::OAuth,
                Method::Kerberos,
                Method::Wallet,
                Method::Password
            ]
        );
        assert_eq!(c.timeout, Duration::from_millis(750));
        assert_eq!(c.timeout_for(Method::Kerberos), Duration::from_secs(2));
        assert_eq!(c.timeout_for(Method::OAuth), Duration::from_millis(750));
        assert!(c.falls_back(Method::OAuth) && !c.falls_back(Method::Password));
        assert_eq!(
            c.kerberos.keytab.as_deref(),
            Some(Path::new("/etc/krb5.keytab"))
        );
    }

    #[test]
    fn oauth_without_endpoints_fails_fast_with_a_fix() {
        let err = Config::load(None, &env(&[("AUTH_METHODS", "oauth,password")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("oauth is enabled without"), "{text}");
        assert!(text.contains("AUTH_OAUTH_ISSUER"), "{text}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::load(
            None,
            &env(&[
                (
                    "AUTH_METHODS",
                    "oauth,ldap,password,password,kerberos,wallet",
                ),
                ("AUTH_TIMEOUT", "soon"),
                ("AUTH_FALLBACK", "api_key"),
                ("AUTH_OAUTH_TOKEN_ENDPOINT", "http://evil.example.com/token"),
                ("AUTH_RATE_LIMIT", "maybe"),
            ]),
        )
        .unwrap_err();
        let settings: Vec<&str> = err.problems.iter().map(|p| p.setting.as_str()).collect();
        for expected in [
            "AUTH_TIMEOUT",
            "AUTH_RATE_LIMIT",
            "methods / AUTH_METHODS",
            "fallback / AUTH_FALLBACK",
            "oauth.token_endpoint / AUTH_OAUTH_TOKEN_ENDPOINT",
            "oauth.client_id / AUTH_OAUTH_CLIENT_ID",
            "kerberos.keytab / AUTH_KERBEROS_KEYTAB",
            "wallet.path / AUTH_WALLET_PATH",
            "wallet.key_file / AUTH_WALLET_KEY_FILE",
        ] {
            assert!(
                settings.contains(&expected),
                "missing {expected} in {settings:?}"
            );
        }
        let text = err.to_string();
        assert!(text.contains("unknown method `ldap`"), "{text}");
        assert!(text.contains("`password` is listed twice"), "{text}");
    }

    #[test]
    fn bad_file_and_out_of_range_values_are_explained() {
        let err = Config::load(Some("timeot = \"5s\""), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("timeot"), "{err}");
        let err = Config::load(Some("timeout = \"2m\""), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("at most 60s"), "{err}");
        let err = Config::load(Some("[rate_limit]\nuser_failures = 0"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("lock everyone out"), "{err}");
        let err = Config::load(Some("methods = []"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("no method is enabled"), "{err}");
    }

    #[test]
    fn loopback_http_is_allowed_for_test_issuers() {
        let c = Config::load(
            None,
            &env(&[
                ("AUTH_METHODS", "oauth"),
                ("AUTH_OAUTH_ISSUER", "http://127.0.0.1:4000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.oauth.issuer.as_deref(), Some("http://127.0.0.1:4000"));
        assert!(
            Config::load(
                None,
                &env(&[
                    ("AUTH_METHODS", "oauth"),
                    ("AUTH_OAUTH_ISSUER", "http://localhost.evil.com")
                ]),
            )
            .is_err()
        );
    }

    #[test]
    fn rate_limit_can_be_disabled_and_tuned() {
        let c = Config::load(Some("[rate_limit]\nenabled = false"), &env(&[])).unwrap();
        assert_eq!(c.rate_limit, None);
        let c = Config::load(
            Some("[rate_limit]\nuser_failures = 3\nwindow = \"10m\""),
            &env(&[]),
        )
        .unwrap();
        let rl = c.rate_limit.unwrap();
        assert_eq!(rl.user_failures, 3);
        assert_eq!(rl.window, Duration::from_secs(600));
    }

    #[test]
    fn the_smart_lockout_and_concurrency_settings_are_read_and_checked() {
        let c = Config::load(
            Some(
                r#"[rate_limit]
known_for = "7days"
max_running_per_address = 16
max_waiting_per_user = 8
max_known_per_user = 2"#,
            ),
            &env(&[]),
        )
        .unwrap();
        let rl = c.rate_limit.unwrap();
        assert_eq!(rl.known_for, Duration::from_secs(7 * 86_400));
        assert_eq!(
            (
                rl.max_running_per_address,
                rl.max_waiting_per_user,
                rl.max_known_per_user
            ),
            (16, 8, 2)
        );
        let err = Config::load(
            Some(
                "[rate_limit]
max_running_per_address = 2",
            ),
            &env(&[]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("rate_limit.max_running_per_address"),
            "{err}"
        );
    }
}
