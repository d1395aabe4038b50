//! The one HTTP client behind every call to an identity provider (discovery, JWKS,
//! introspection, the token and revocation endpoints): HTTPS on rustls with the aws-lc-rs
//! provider, the platform's and the webpki roots plus any CA the configuration names, an
//! optional client identity (mTLS to the provider), no redirects, plain `http://` only to
//! loopback, and bodies capped while they are read.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the client could not be built, a URL is refused, or a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A CA bundle, client certificate or key could not be read.
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The URL is not one we may call: not `https://` (plain `http://` is allowed to
    /// loopback only), or not a URL at all.
    #[error("refused URL `{url}`: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The request failed: connection, TLS (an untrusted certificate says so here),
    /// timeout.
    #[error("{0}")]
    Transport(String),
    /// The answer is larger than the limit for its kind.
    #[error("answer larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
}

/// The largest discovery document or JWKS read.
pub(crate) const MAX_DOCUMENT: usize = 1024 * 1024;
/// The largest token, introspection or revocation answer read.
pub(crate) const MAX_ENDPOINT_ANSWER: usize = 64 * 1024;

/// The reason [`check_url`] gives for a string that does not parse as a URL.
pub(crate) const NOT_A_URL: &str = "not a URL";

/// Whether `url` may be called: `https://` anywhere, `http://` only to a loopback host
/// (`localhost`, 127.0.0.0/8, `::1`), where nobody else can read or change the traffic.
pub fn check_url(url: &str) -> Result<url::Url, HttpError> {
    let refused = |why| HttpError::Url {
        url: redacted(url),
        why,
    };
    let parsed = url::Url::parse(url).map_err(|_| refused(NOT_A_URL))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback {
                return Err(refused("plain http is allowed only to loopback; use https"));
            }
        }
        _ => return Err(refused("only https (or http to loopback) is allowed")),
    }
    if parsed.host().is_none() {
        return Err(refused("no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refused(
            "credentials in a URL would be sent in the clear to logs",
        ));
    }
    Ok(parsed)
}

/// `url` without user info, query or fragment, for error messages and logs (a URL may
/// carry a password or an API key there).
pub(crate) fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// How a [`HttpClient`] trusts servers and proves itself.
#[derive(Clone, Default)]
pub struct HttpClientBuilder {
    extra_roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    no_public_roots: bool,
}

impl std::fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("extra_roots", &self.extra_roots.len())
            .field("identity", &self.identity.is_some())
            .field("public_roots", &!self.no_public_roots)
            .finish()
    }
}

impl HttpClientBuilder {
    /// Also trusts the CA certificates in `pem` (a private CA of the provider).
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Result<Self, HttpError> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| HttpError::Tls(format!("CA bundle: {e}")))?;
            self.extra_roots.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(HttpError::Tls("CA bundle: no certificate in it".into()));
        }
        Ok(self)
    }

    /// Presents this certificate chain and key (PEM) to providers that ask (mTLS).
    pub fn identity_pem(mut self, chain: &[u8], key: &[u8]) -> Result<Self, HttpError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HttpError::Tls(format!("client certificate: {e}")))?;
        if chain.is_empty() {
            return Err(HttpError::Tls(
                "client certificate: none in the file".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| HttpError::Tls(format!("client key: {e}")))?;
        self.identity = Some((chain, Arc::new(key)));
        Ok(self)
    }

    /// Trusts only the CAs added with [`Self::add_ca_pem`], not the platform's nor the
    /// webpki roots (a provider on a private PKI that nobody else may impersonate).
    #[must_use]
    pub fn only_added_roots(mut self) -> Self {
        self.no_public_roots = true;
        self
    }

    /// The client.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        let mut roots = if self.no_public_roots {
            rustls::RootCertStore::empty()
        } else {
            public_roots().clone()
        };
        for cert in self.extra_roots {
            roots
                .add(cert)
                .map_err(|e| HttpError::Tls(format!("CA bundle: {e}")))?;
        }
        if roots.is_empty() {
            return Err(HttpError::Tls("no trusted CA at all".into()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut tls = match self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key.clone_key())
                .map_err(|e| HttpError::Tls(format!("client identity: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        // No redirects (a provider cannot send us elsewhere, say to plain http) and no
        // proxy from the environment (it would carry loopback traffic, client secrets
        // included, to another host).
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| HttpError::Tls(e.to_string()))?;
        Ok(HttpClient { client })
    }
}

/// The platform's roots and the webpki roots, read once per process.
fn public_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "a platform CA certificate could not be read");
        }
        let (_, skipped) = roots.add_parsable_certificates(native.certs);
        if skipped > 0 {
            tracing::debug!(skipped, "platform CA certificates rustls cannot use");
        }
        roots
    })
}

/// A client for identity providers; cheap to clone (one connection pool).
///
/// # Example
///
/// ```
/// use auth_oauth::{HttpClient, IssuerConfig, JwtAuthenticator, ValidationSettings};
///
/// // The platform's and the webpki roots; `.add_ca_pem(..)` for a private CA,
/// // `.identity_pem(..)` for mTLS, `.only_added_roots()` to trust nothing else.
/// let http = HttpClient::builder().build()?;
/// let auth = JwtAuthenticator::new(
///     vec![IssuerConfig::discovery("https://idp.example.com", "api").with_http(http)],
///     ValidationSettings::default(),
/// )?;
/// # drop(auth);
/// // Plain http is for loopback only.
/// assert!(JwtAuthenticator::new(
///     vec![IssuerConfig::discovery("http://idp.example.com", "api")],
///     ValidationSettings::default(),
/// )
/// .is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl Default for HttpClient {
    /// Trusts the platform's and the webpki roots; no client identity.
    #[allow(clippy::expect_used)] // the webpki roots are compiled in: never empty
    fn default() -> Self {
        static DEFAULT: OnceLock<HttpClient> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                HttpClientBuilder::default()
                    .build()
                    .expect("the public roots are never empty")
            })
            .clone()
    }
}

impl HttpClient {
    /// A builder for a client with its own CAs or identity.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// `GET url`, reading at most `limit` bytes of the answer.
    pub(crate) async fn get(
        &self,
        url: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<Answer, HttpError> {
        let url = check_url(url)?;
        let response = self
            .client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport)?;
        Answer::read(response, limit).await
    }

    /// Sends `request` (as oauth2 builds it), reading at most `limit` bytes of the answer.
    pub(crate) async fn execute(
        &self,
        request: oauth2::HttpRequest,
        timeout: Duration,
        limit: usize,
    ) -> Result<oauth2::HttpResponse, HttpError> {
        let url = check_url(&request.uri().to_string())?;
        let (parts, body) = request.into_parts();
        let mut builder = self
            .client
            .request(parts.method, url)
            .timeout(timeout)
            .body(body);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(transport)?;
        let answer = Answer::read(response, limit).await?;
        let mut http = oauth2::http::Response::builder().status(answer.status);
        for (name, value) in &answer.headers {
            http = http.header(name, value);
        }
        http.body(answer.body)
            .map_err(|e| HttpError::Transport(e.to_string()))
    }
}

/// The error text of a failed request, with its whole source chain (rustls says there
/// why a certificate was refused) and the URL without user info or query.
fn transport(e: reqwest::Error) -> HttpError {
    let url = e.url().map(|u| redacted(u.as_str()));
    let e = e.without_url();
    let mut text = e.to_string();
    if let Some(url) = url {
        text.push_str(&format!(" ({url})"));
    }
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    HttpError::Transport(text)
}

/// A read answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// Reads `response`, refusing as soon as it passes `limit` bytes (before reading the
    /// rest, so a hostile provider cannot make us buffer gigabytes).
    async fn read(mut response: reqwest::Response, limit: usize) -> Result<Self, HttpError> {
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(HttpError::TooLarge { limit });
        }
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > limit {
                return Err(HttpError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/token",
            "http://localhost:3000/jwks",
            "http://[::1]:3000/jwks",
            "HTTP://LOCALHOST/jwks",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.example.com/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "http://[::ffff:127.0.0.1]/jwks",
            "http://0.0.0.0/jwks",
            "ftp://idp.example.com/jwks",
            "https://user:pw@idp.example.com/jwks",
            "idp.example.com/jwks",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_never_repeat_credentials_or_queries() {
        let err = check_url("https://user:hunter2@idp.example.com/jwks?api_key=k3y").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2") && !text.contains("k3y"), "{text}");
        assert!(text.contains("idp.example.com/jwks"), "{text}");
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let err = HttpClient::builder().add_ca_pem(b"not pem").unwrap_err();
        assert!(matches!(err, HttpError::Tls(_)), "{err}");
        let err = HttpClient::builder()
            .only_added_roots()
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no trusted CA"), "{err}");
    }
}
