//! Reaching the store: one server through the `redis` crate's reconnecting
//! `ConnectionManager`, or a Redis Cluster; TLS verified against the configured CAs, and
//! an ACL user.

use std::fmt;
use std::net::IpAddr;

use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisResult,
    TlsCertificates, Value,
};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use crate::settings::RedisOptions;

/// One server's address, as a URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

impl Endpoint {
    /// `rediss://host:port`, or `redis://` on loopback (anywhere with `danger_plaintext`).
    pub(crate) fn parse(url: &str, danger_plaintext: bool) -> Result<Self, String> {
        let not_redis = || {
            format!(
                "`{url}` is not a Redis URL: use rediss://host:port (TLS) or redis://127.0.0.1:port"
            )
        };
        let parsed = url::Url::parse(url).map_err(|_| not_redis())?;
        let tls = match parsed.scheme() {
            "rediss" => true,
            "redis" => false,
            _ => return Err(not_redis()),
        };
        // Credentials belong in `user` and the password's source, never in a URL that
        // reaches logs and process listings.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("a password in the URL would be logged: use user and password_env or password_wallet".to_owned());
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(format!("`{url}` names no host")),
        };
        let port = parsed.port().unwrap_or(6379);
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback && !danger_plaintext {
            return Err(format!(
                "`{url}` would send the ACL password and every user name in plain text: use \
                 rediss:// (or danger_plaintext = true on a network you trust)"
            ));
        }
        Ok(Self { host, port, tls })
    }

    fn connection_info(&self, options: &RedisOptions) -> RedisResult<ConnectionInfo> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut info = addr.into_connection_info()?;
        let mut redis = info.redis_settings().clone();
        if let Some(user) = &options.user {
            redis = redis.set_username(user);
        }
        if let Some(password) = &options.password {
            redis = redis.set_password(password.expose_secret());
        }
        info = info.set_redis_settings(redis);
        Ok(info)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// How the server's certificate is checked.
#[derive(Clone)]
pub(crate) enum Tls {
    /// No TLS (loopback, or `danger_plaintext`).
    Off,
    /// Verified against these CAs (PEM), or the Mozilla roots.
    Verified { ca_pem: Option<Vec<u8>> },
}

impl Tls {
    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: None,
            root_cert: match self {
                Self::Off => None,
                Self::Verified { ca_pem } => ca_pem.clone(),
            },
        }
    }
}

/// The connection scripts go through.
pub(crate) enum Store {
    Single(ConnectionManager),
    Cluster(Box<Cluster>),
}

/// A Redis Cluster's client, and its connection once made.
pub(crate) struct Cluster {
    client: ClusterClient,
    connection: Mutex<Option<ClusterConnection>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(_) => f.write_str("Store::Single"),
            Self::Cluster(_) => f.write_str("Store::Cluster"),
        }
    }
}

impl Store {
    /// The store `options` name; connects lazily, at the first command.
    pub(crate) fn open(options: &RedisOptions) -> RedisResult<Self> {
        if options.cluster {
            let mut nodes = Vec::new();
            for e in &options.endpoints {
                nodes.push(e.connection_info(options)?);
            }
            let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(options.connect_timeout)
                .response_timeout(options.response_timeout);
            if let Some(user) = &options.user {
                builder = builder.username(user);
            }
            if let Some(password) = &options.password {
                builder = builder.password(password.expose_secret());
            }
            if options.endpoints.iter().any(|e| e.tls) {
                builder = builder.certs(options.tls.certificates());
            }
            return Ok(Self::Cluster(Box::new(Cluster {
                client: builder.build()?,
                connection: Mutex::new(None),
            })));
        }
        let endpoint = options.endpoints.first().ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Redis URL"))
        })?;
        let info = endpoint.connection_info(options)?;
        let client = if endpoint.tls {
            Client::build_with_tls(info, options.tls.certificates())?
        } else {
            Client::open(info)?
        };
        // Our own timeout bounds each batch. The manager reconnects once per failure,
        // without a backoff of its own: a refused connection must fail at once (the
        // decision waits for it), and the probe paces the retries of a down store.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(0);
        Ok(Self::Single(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// Sends `pipe` and returns one value per command (errors as values).
    pub(crate) async fn query(&self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(manager) => pipe.query_async(&mut manager.clone()).await,
            Self::Cluster(cluster) => {
                let mut conn = {
                    let mut slot = cluster.connection.lock().await;
                    match &*slot {
                        Some(c) => c.clone(),
                        None => {
                            let c = cluster.client.get_async_connection().await?;
                            *slot = Some(c.clone());
                            c
                        }
                    }
                };
                pipe.query_async(&mut conn).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_by_the_url_crate_and_refused_with_a_reason() {
        let e = Endpoint::parse("rediss://redis.internal:6380/0", false).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("redis.internal", 6380, true)
        );
        let v6 = Endpoint::parse("redis://[::1]", false).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6379));
        assert_eq!(v6.to_string(), "redis://[::1]:6379");
        assert!(
            Endpoint::parse("redis://10.0.0.5:6379", false)
                .unwrap_err()
                .contains("plain text")
        );
        assert!(Endpoint::parse("redis://10.0.0.5:6379", true).is_ok());
        assert!(
            Endpoint::parse("rediss://u:pw@h:1", false)
                .unwrap_err()
                .contains("password")
        );
        assert!(
            Endpoint::parse("http://h", false)
                .unwrap_err()
                .contains("not a Redis URL")
        );
        assert!(Endpoint::parse("rediss://h:99999", false).is_err());
    }
}
