//! The listener's settings as a program's file writes them (at its top level).

use std::path::{Path, PathBuf};
use std::time::Duration;

use auth_core::certificate::TrustedIssuers;
use auth_core::settings::{Invalid, duration};
use serde::{Deserialize, Serialize};

use crate::admission::{
    AdmissionSettings, DEFAULT_MAX_UNAUTHENTICATED, DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
    DEFAULT_WAIT,
};
use crate::listener::DEFAULT_UNAUTHENTICATED_TIMEOUT;
use crate::proxy::TrustedProxies;
use crate::tls::TlsSetup;

/// Places and waits for unauthenticated connections, the proxies trusted to name clients,
/// and the server certificate: what every front door of a program listens with.
///
/// ```
/// use auth_listen::ListenSettings;
///
/// let s: ListenSettings = toml::from_str(
///     "max_unauthenticated_per_address = 8\ntrusted_proxies = [\"10.0.0.0/8\", \"unix\"]",
/// ).unwrap();
/// let built = s.build().unwrap();
/// assert_eq!(built.admission.max_per_address, 8);
/// assert!(built.trusted_proxies.trusts_ip("10.1.2.3".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenSettings {
    /// How long a connection may stay unauthenticated, the TLS handshake included
    /// (default `60s`).
    #[serde(with = "duration")]
    pub auth_timeout: Duration,
    /// Unauthenticated connections that have spoken, at once, in all, on every front door
    /// together (default 128; loopback and Unix-socket clients not counted).
    pub max_unauthenticated_connections: usize,
    /// Unauthenticated connections that have spoken, at once, from one client address
    /// (IPv6 by /64; default 32); more wait for a place.
    pub max_unauthenticated_per_address: usize,
    /// How long a connection beyond the places waits for one while none comes free before
    /// it is refused (default `5s`; FATAL 53300 on pgwire, 503 on HTTP, `UNAVAILABLE` on
    /// gRPC).
    #[serde(with = "duration")]
    pub unauthenticated_wait: Duration,
    /// Connections that have sent nothing yet, from one client address (default 256; they
    /// hold no place; beyond this one must speak within `unauthenticated_wait`).
    pub max_silent_per_address: usize,
    /// How long a connection may stay silent before it is closed (default `10s`).
    #[serde(with = "duration")]
    pub silent_timeout: Duration,
    /// The proxies in front (HAProxy, a load balancer, a TLS-terminating proxy on this
    /// machine): IP addresses, networks like `10.0.0.0/8`, and `"unix"` for Unix-socket
    /// peers. Their PROXY headers (and on HTTP and gRPC their `Forwarded` /
    /// `X-Forwarded-*` headers) name the client; from anyone else a PROXY header is
    /// refused. Empty by default.
    pub trusted_proxies: Vec<String>,
    /// The server certificate chain (PEM), relative to the data directory (default
    /// `server.crt`).
    pub tls_certificate: String,
    /// Its private key (PEM), relative to the data directory (default `server.key`).
    pub tls_key: String,
}

impl Default for ListenSettings {
    fn default() -> Self {
        let a = AdmissionSettings::default();
        Self {
            auth_timeout: DEFAULT_UNAUTHENTICATED_TIMEOUT,
            max_unauthenticated_connections: DEFAULT_MAX_UNAUTHENTICATED,
            max_unauthenticated_per_address: DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
            unauthenticated_wait: DEFAULT_WAIT,
            max_silent_per_address: a.max_silent_per_address,
            silent_timeout: a.silent_timeout,
            trusted_proxies: Vec::new(),
            tls_certificate: "server.crt".into(),
            tls_key: "server.key".into(),
        }
    }
}

/// What [`ListenSettings::build`] makes.
#[derive(Debug, Clone)]
pub struct ListenSetup {
    /// The places and waits, for [`crate::Admission::new`].
    pub admission: AdmissionSettings,
    /// The proxies whose headers name clients.
    pub trusted_proxies: TrustedProxies,
    /// For [`crate::Listener::with_unauthenticated_timeout`].
    pub auth_timeout: Duration,
}

impl ListenSettings {
    /// The admission settings and trusted proxies, or every value that cannot work.
    pub fn build(&self) -> Result<ListenSetup, Vec<Invalid>> {
        let mut problems = Vec::new();
        for (key, n) in [
            (
                "max_unauthenticated_connections",
                self.max_unauthenticated_connections,
            ),
            (
                "max_unauthenticated_per_address",
                self.max_unauthenticated_per_address,
            ),
            ("max_silent_per_address", self.max_silent_per_address),
        ] {
            if n == 0 {
                problems.push(
                    Invalid::new(key, "0 would refuse every connection")
                        .hint("use a positive number"),
                );
            }
        }
        for (key, d) in [
            ("auth_timeout", self.auth_timeout),
            ("silent_timeout", self.silent_timeout),
        ] {
            if d.is_zero() {
                problems
                    .push(Invalid::new(key, "must be longer than 0").hint("for example \"10s\""));
            }
        }
        let trusted_proxies =
            match TrustedProxies::parse(self.trusted_proxies.iter().map(String::as_str)) {
                Ok(t) => t,
                Err(e) => {
                    let i = self
                        .trusted_proxies
                        .iter()
                        .position(|p| p.trim() == e.0)
                        .unwrap_or_default();
                    problems.push(
                        Invalid::new(format!("trusted_proxies[{i}]"), e.to_string())
                            .hint("an address, a network like 10.0.0.0/8, or \"unix\""),
                    );
                    TrustedProxies::default()
                }
            };
        if !problems.is_empty() {
            return Err(problems);
        }
        let admission = AdmissionSettings::new(
            self.max_unauthenticated_connections,
            self.max_unauthenticated_per_address,
        )
        .with_wait(self.unauthenticated_wait)
        .with_silent(
            self.max_silent_per_address,
            AdmissionSettings::default().max_silent,
            self.silent_timeout,
        );
        Ok(ListenSetup {
            admission,
            trusted_proxies,
            auth_timeout: self.auth_timeout,
        })
    }

    /// The certificate's and the key's paths under `base_dir`.
    pub fn tls_paths(&self, base_dir: &Path) -> (PathBuf, PathBuf) {
        (
            base_dir.join(&self.tls_certificate),
            base_dir.join(&self.tls_key),
        )
    }

    /// The server's TLS, asking for client certificates of `client_cas` when given.
    pub fn tls(
        &self,
        base_dir: &Path,
        client_cas: Option<&TrustedIssuers>,
    ) -> Result<TlsSetup, Invalid> {
        let (cert_path, key_path) = self.tls_paths(base_dir);
        let cert = std::fs::read(&cert_path).map_err(|e| {
            Invalid::new("tls_certificate", format!("{}: {e}", cert_path.display()))
        })?;
        let key = std::fs::read(&key_path)
            .map_err(|e| Invalid::new("tls_key", format!("{}: {e}", key_path.display())))?;
        match client_cas {
            Some(cas) => TlsSetup::from_pem_with_client_cas(&cert, &key, cas),
            None => TlsSetup::from_pem(&cert, &key),
        }
        .map_err(|e| Invalid::new("tls_certificate", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_problems_name_their_key() {
        let d = ListenSettings::default();
        let back: ListenSettings = toml::from_str(&toml::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(d.build().unwrap().admission, AdmissionSettings::default());
        let bad = ListenSettings {
            max_unauthenticated_per_address: 0,
            trusted_proxies: vec!["10.0.0.1".into(), "proxy.example".into()],
            ..ListenSettings::default()
        };
        let keys: Vec<_> = bad
            .build()
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            ["max_unauthenticated_per_address", "trusted_proxies[1]"]
        );
    }
}
