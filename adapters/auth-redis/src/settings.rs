//! The `[redis]` section: where the shared store is, how to reach it, and what to decide
//! without it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use auth_core::CredentialStore;
use auth_core::settings::Invalid;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::connect::{Endpoint, Tls};
use crate::outage::OnOutage;

/// The `[redis]` section as a file writes it; [`build`](Self::build) reads the CA file and
/// the password and gives the [`RedisOptions`] a limiter connects with.
///
/// ```
/// use auth_redis::RedisSettings;
///
/// let s: RedisSettings = toml::from_str(r#"
///     url = "rediss://redis.internal:6380"
///     user = "gateway"
///     password_env = "GATEWAY_REDIS_PASSWORD"
///     ca_file = "redis-ca.pem"
///     on_outage = "local"
/// "#).unwrap();
/// assert!(s.check().is_empty());
/// let plain: RedisSettings = toml::from_str(r#"url = "redis://10.0.0.5:6379""#).unwrap();
/// assert_eq!(plain.check()[0].key, "url", "plain text off loopback needs its danger opt-in");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `rediss://host:port` (TLS), or `redis://` on loopback. Several URLs, one per seed
    /// node, with `cluster = true`.
    pub url: String,
    /// More seed nodes of a Redis Cluster (with `cluster = true`).
    pub more_urls: Vec<String>,
    /// Whether the URLs are seed nodes of a Redis Cluster.
    pub cluster: bool,
    /// The ACL user (default: none, the `default` user).
    pub user: Option<String>,
    /// The environment variable holding the user's password.
    pub password_env: Option<String>,
    /// The wallet key holding the user's password (`authctl secret set KEY`).
    pub password_wallet: Option<String>,
    /// PEM file of the CAs the server's certificate must chain to (relative to the data
    /// directory); default: the Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// Allows `redis://` (no TLS) to a host other than loopback.
    pub danger_plaintext: bool,
    /// The prefix of every key; it is also the hash tag that keeps a decision's keys in one
    /// Cluster slot (default `auth`).
    pub key_prefix: String,
    /// How long connecting may take (default `1s`).
    #[serde(with = "auth_core::settings::duration")]
    pub connect_timeout: Duration,
    /// How long one answer may take before the store counts as down (default `40ms`):
    /// every decision is made within it.
    #[serde(with = "auth_core::settings::duration")]
    pub response_timeout: Duration,
    /// How often a down store is tried again (default `1s`).
    #[serde(with = "auth_core::settings::duration")]
    pub retry_interval: Duration,
    /// How often an outage is audited while it lasts (default `60s`).
    #[serde(with = "auth_core::settings::duration")]
    pub report_interval: Duration,
    /// What decides while the store is down: `refuse` (default, fail closed), `local` (this
    /// process's own limiter) or `danger_allow` (no limits at all).
    pub on_outage: OnOutage,
    /// How long a verification slot of a process that died stays taken (default `60s`).
    #[serde(with = "auth_core::settings::duration")]
    pub slot_lease: Duration,
    /// How long a running attempt of a process that died still counts against its address
    /// (default `10m`).
    #[serde(with = "auth_core::settings::duration")]
    pub attempt_lease: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            more_urls: Vec::new(),
            cluster: false,
            user: None,
            password_env: None,
            password_wallet: None,
            ca_file: None,
            danger_plaintext: false,
            key_prefix: "auth".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(40),
            retry_interval: Duration::from_secs(1),
            report_interval: Duration::from_secs(60),
            on_outage: OnOutage::Refuse,
            slot_lease: Duration::from_secs(60),
            attempt_lease: Duration::from_secs(600),
        }
    }
}

/// Everything a limiter needs to reach its store, read and checked.
#[derive(Clone)]
pub struct RedisOptions {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) cluster: bool,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) tls: Tls,
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) retry_interval: Duration,
    pub(crate) report_interval: Duration,
    pub(crate) on_outage: OnOutage,
    pub(crate) slot_lease: Duration,
    pub(crate) attempt_lease: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("endpoints", &self.endpoints)
            .field("cluster", &self.cluster)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("key_prefix", &self.key_prefix)
            .field("on_outage", &self.on_outage)
            .finish_non_exhaustive()
    }
}

impl RedisOptions {
    /// Options for one server at `url`, with every other setting at its default; TLS
    /// verifies against the Mozilla roots unless [`with_ca_pem`](Self::with_ca_pem).
    pub fn new(url: &str) -> Result<Self, Invalid> {
        Self::from_settings(
            &RedisSettings {
                url: url.to_owned(),
                ..RedisSettings::default()
            },
            None,
            None,
        )
    }

    /// The CAs (PEM) the server's certificate must chain to.
    #[must_use]
    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.tls = Tls::Verified { ca_pem: Some(pem) };
        self
    }

    /// Logs in as the ACL `user` with `password`.
    #[must_use]
    pub fn with_user(mut self, user: &str, password: SecretString) -> Self {
        self.user = Some(user.to_owned());
        self.password = Some(password);
        self
    }

    /// The key prefix (also the Cluster hash tag).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.key_prefix);
        self
    }

    /// What decides while the store is down.
    #[must_use]
    pub fn with_on_outage(mut self, on_outage: OnOutage) -> Self {
        self.on_outage = on_outage;
        self
    }

    /// How long one answer may take before the store counts as down.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How often a down store is tried again.
    #[must_use]
    pub fn with_retry_interval(mut self, every: Duration) -> Self {
        self.retry_interval = every;
        self
    }

    /// More seed nodes, and treats them all as a Redis Cluster.
    pub fn cluster(mut self, more_urls: &[String]) -> Result<Self, Invalid> {
        for url in more_urls {
            self.endpoints
                .push(Endpoint::parse(url, false).map_err(|e| Invalid::new("more_urls", e))?);
        }
        self.cluster = true;
        Ok(self)
    }

    fn from_settings(
        s: &RedisSettings,
        ca_pem: Option<Vec<u8>>,
        password: Option<SecretString>,
    ) -> Result<Self, Invalid> {
        let mut endpoints = Vec::new();
        for (key, url) in
            std::iter::once(("url", &s.url)).chain(s.more_urls.iter().map(|u| ("more_urls", u)))
        {
            endpoints
                .push(Endpoint::parse(url, s.danger_plaintext).map_err(|e| Invalid::new(key, e))?);
        }
        let tls = if endpoints.iter().any(|e| e.tls) {
            Tls::Verified { ca_pem }
        } else {
            Tls::Off
        };
        Ok(Self {
            endpoints,
            cluster: s.cluster,
            user: s.user.clone(),
            password,
            tls,
            key_prefix: s.key_prefix.clone(),
            connect_timeout: s.connect_timeout,
            response_timeout: s.response_timeout,
            retry_interval: s.retry_interval,
            report_interval: s.report_interval,
            on_outage: s.on_outage,
            slot_lease: s.slot_lease,
            attempt_lease: s.attempt_lease,
        })
    }
}

impl RedisSettings {
    /// Whether the section names a store at all (an empty `url` means no shared store).
    pub fn is_set(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Every value that cannot work, without reading files, the environment or the wallet.
    pub fn check(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        for (key, url) in std::iter::once(("url", &self.url))
            .chain(self.more_urls.iter().map(|u| ("more_urls", u)))
        {
            if let Err(e) = Endpoint::parse(url, self.danger_plaintext) {
                problems.push(Invalid::new(key, e).hint("url = \"rediss://redis.internal:6380\""));
            }
        }
        if !self.more_urls.is_empty() && !self.cluster {
            problems.push(Invalid::new(
                "more_urls",
                "seed nodes belong to a Redis Cluster; set cluster = true, or remove them",
            ));
        }
        if self.password_env.is_some() && self.password_wallet.is_some() {
            problems.push(Invalid::new(
                "password_wallet",
                "name the password's source once: password_env or password_wallet",
            ));
        }
        if (self.password_env.is_some() || self.password_wallet.is_some()) && self.user.is_none() {
            problems.push(
                Invalid::new("user", "a password needs its ACL user")
                    .hint("user = \"gateway\" (ACL SETUSER gateway on >... ~auth* +@all)"),
            );
        }
        let prefix_ok = !self.key_prefix.is_empty()
            && !self.key_prefix.contains(['{', '}'])
            && self.key_prefix.chars().all(|c| c.is_ascii_graphic());
        if !prefix_ok {
            problems.push(Invalid::new(
                "key_prefix",
                "must be printable ASCII without braces (it becomes the Cluster hash tag)",
            ));
        }
        for (key, d) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("retry_interval", self.retry_interval),
            ("report_interval", self.report_interval),
            ("slot_lease", self.slot_lease),
            ("attempt_lease", self.attempt_lease),
        ] {
            if d.is_zero() {
                problems.push(Invalid::new(key, "must be longer than 0"));
            }
        }
        problems
    }

    /// The options, with the CA file read from `base_dir` and the password from its
    /// source (`store` for `password_wallet`); or every problem, by key.
    pub async fn build(
        &self,
        base_dir: &Path,
        store: Option<Arc<dyn CredentialStore>>,
    ) -> Result<RedisOptions, Vec<Invalid>> {
        let problems = self.check();
        if !problems.is_empty() {
            return Err(problems);
        }
        let ca_pem = match &self.ca_file {
            Some(file) => {
                let path = base_dir.join(file);
                Some(std::fs::read(&path).map_err(|e| {
                    vec![Invalid::new("ca_file", format!("{}: {e}", path.display()))]
                })?)
            }
            None => None,
        };
        let password = self.password(store).await.map_err(|e| vec![e])?;
        RedisOptions::from_settings(self, ca_pem, password).map_err(|e| vec![e])
    }

    async fn password(
        &self,
        store: Option<Arc<dyn CredentialStore>>,
    ) -> Result<Option<SecretString>, Invalid> {
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map(|v| Some(SecretString::from(v)))
                .map_err(|_| Invalid::new("password_env", format!("${var} is not set")));
        }
        let Some(name) = &self.password_wallet else {
            return Ok(None);
        };
        let refused = |what: String| {
            Invalid::new("password_wallet", what)
                .hint(format!("`authctl secret set {name}` stores it"))
        };
        let store = store.ok_or_else(|| refused("no wallet to read it from".to_owned()))?;
        auth_core::store::text_secret(store.as_ref(), name)
            .await
            .map(Some)
            .map_err(refused)
    }
}
