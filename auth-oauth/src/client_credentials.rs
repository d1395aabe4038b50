//! Access tokens for outbound service-to-service calls (OAuth 2.0 client credentials),
//! cached and refreshed before they expire; one request however many callers wait.

use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use oauth2::TokenResponse;

use crate::client_auth::ClientAuth;
use crate::client_auth::ConfigError;
use crate::endpoint::{Endpoints, lifetime};
use crate::http::HttpClient;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client credentials token: {0}")]
pub struct TokenSourceError(String);

/// Settings of a [`ClientCredentials`] token source.
#[derive(Debug, Clone)]
pub struct ClientCredentialsConfig {
    /// The token endpoint (`https://`; plain `http://` only to loopback).
    pub token_endpoint: String,
    /// The provider's issuer identifier, the audience of our client assertions (else
    /// the token endpoint is).
    pub issuer: Option<String>,
    /// Our client id.
    pub client_id: String,
    /// How we authenticate.
    pub auth: ClientAuth,
    /// The HTTP client (its CAs and client identity).
    pub http: HttpClient,
    /// Requested scope, if any.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator, if any.
    pub resource: Option<String>,
    /// Fetch a new token this long before the current one expires.
    pub refresh_before: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl ClientCredentialsConfig {
    /// Settings for `token_endpoint` as `client_id` with `auth`: no scope or resource,
    /// refreshed 30 s before expiry, a 5 s time limit.
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        Self {
            token_endpoint: token_endpoint.into(),
            issuer: None,
            client_id: client_id.into(),
            auth,
            http: HttpClient::default(),
            scope: None,
            resource: None,
            refresh_before: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

struct Cached {
    token: SecretString,
    /// When to fetch a new one (system time, as the endpoints' clock reads it).
    refresh_at: SystemTime,
}

/// A cached, self-refreshing client-credentials access token.
pub struct ClientCredentials {
    config: ClientCredentialsConfig,
    endpoints: Endpoints,
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
    /// A token source; refuses a non-https endpoint off loopback.
    pub fn new(config: ClientCredentialsConfig) -> Result<Self, ConfigError> {
        let endpoints = Endpoints::new(
            &config.client_id,
            &config.auth,
            &config.http,
            config.timeout,
            config.issuer.as_deref(),
        )
        .with_token(&config.token_endpoint)?;
        Ok(Self {
            config,
            endpoints,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one when it is about to expire.
    pub async fn token(&self) -> Result<SecretString, TokenSourceError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && self.endpoints.clock.now() < c.refresh_at
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
        let started = self.endpoints.clock.now();
        let answer = self
            .endpoints
            .client_credentials(c.scope.as_deref(), c.resource.as_deref())
            .await
            .map_err(|e| TokenSourceError(e.to_string()))?;
        let lifetime = lifetime(&answer, Duration::from_secs(60));
        Ok(Cached {
            token: SecretString::from(answer.access_token().secret().clone()),
            refresh_at: started + lifetime.saturating_sub(c.refresh_before),
        })
    }
}
