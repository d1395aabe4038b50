//! Access tokens for outbound service-to-service calls (OAuth 2.0 client credentials),
//! cached and refreshed before they expire; one request however many callers wait.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use crate::client_auth::{ClientAuth, post_form};
use crate::introspection::SecretError;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client credentials token: {0}")]
pub struct TokenSourceError(String);

/// Settings of a [`ClientCredentials`] token source.
#[derive(Debug, Clone)]
pub struct ClientCredentialsConfig {
    /// The token endpoint.
    pub token_endpoint: String,
    /// Our client id.
    pub client_id: String,
    /// Our client secret (at least 32 characters).
    pub client_secret: SecretString,
    /// How we authenticate.
    pub auth: ClientAuth,
    /// Requested scope, if any.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator, if any.
    pub resource: Option<String>,
    /// Fetch a new token this long before the current one expires.
    pub refresh_before: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// A cached, self-refreshing client-credentials access token.
pub struct ClientCredentials {
    config: ClientCredentialsConfig,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_endpoint", &self.config.token_endpoint)
            .field("client_id", &self.config.client_id)
            .finish()
    }
}

impl ClientCredentials {
    /// A token source; refuses a short client secret.
    pub fn new(config: ClientCredentialsConfig) -> Result<Self, SecretError> {
        if config.client_secret.expose_secret().chars().count()
            < crate::introspection::MIN_CLIENT_SECRET
        {
            return Err(crate::introspection::short_secret());
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| crate::introspection::short_secret())?;
        Ok(Self {
            config,
            http,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one when it is about to expire.
    pub async fn token(&self) -> Result<SecretString, TokenSourceError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn fetch(&self) -> Result<Cached, TokenSourceError> {
        let c = &self.config;
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if let Some(s) = &c.scope {
            form.push(("scope", s.clone()));
        }
        if let Some(r) = &c.resource {
            form.push(("resource", r.clone()));
        }
        let started = Instant::now();
        let response = post_form(
            &self.http,
            &c.token_endpoint,
            c.auth,
            &c.client_id,
            &c.client_secret,
            &form,
        )
        .send()
        .await
        .map_err(|e| TokenSourceError(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(TokenSourceError(format!("HTTP {}", response.status())));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| TokenSourceError(e.without_url().to_string()))?;
        let token = body
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| TokenSourceError("answer without access_token".into()))?;
        let lifetime = Duration::from_secs(
            body.get("expires_in")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(60),
        );
        Ok(Cached {
            token: SecretString::from(token.to_owned()),
            refresh_at: started + lifetime.saturating_sub(c.refresh_before),
        })
    }
}
