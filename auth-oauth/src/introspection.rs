//! Opaque tokens through RFC 7662 introspection, with a cache bounded by the token's `exp`
//! and a configurable re-check interval for revocation.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::{
    Attempt, Authenticator, Credential, CredentialKind, CredentialStore, Error, Evidence, Key,
    Outcome, StandardSession,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::client_auth::{ClientAuth, post_form};

/// The shortest client secret accepted.
pub const MIN_CLIENT_SECRET: usize = 32;

/// A client secret that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client secret: {0}")]
pub struct SecretError(String);

pub(crate) fn short_secret() -> SecretError {
    SecretError(format!("shorter than {MIN_CLIENT_SECRET} characters"))
}

fn checked(secret: SecretString) -> Result<SecretString, SecretError> {
    if secret.expose_secret().chars().count() < MIN_CLIENT_SECRET {
        return Err(SecretError(format!(
            "shorter than {MIN_CLIENT_SECRET} characters"
        )));
    }
    Ok(secret)
}

/// The client secret from environment variable `var`.
pub fn client_secret_from_env(var: &str) -> Result<SecretString, SecretError> {
    let value = std::env::var(var).map_err(|_| SecretError(format!("`{var}` is not set")))?;
    checked(SecretString::from(value))
}

/// The client secret from a store (the wallet's `pgwire-oauth-client`).
pub async fn client_secret_from_store(
    store: &dyn CredentialStore,
    key: &str,
) -> Result<SecretString, SecretError> {
    let key = Key::new(key).map_err(|e| SecretError(e.to_string()))?;
    let record = store
        .get(&key)
        .await
        .map_err(|e| SecretError(e.to_string()))?
        .ok_or_else(|| SecretError(format!("no secret `{key}`")))?;
    let text = record
        .value_str()
        .ok_or_else(|| SecretError(format!("secret `{key}` is not text")))?;
    checked(SecretString::from(text.to_owned()))
}

/// Introspection settings.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The introspection endpoint.
    pub endpoint: String,
    /// Our client id.
    pub client_id: String,
    /// Our client secret (at least 32 characters).
    pub client_secret: SecretString,
    /// How we authenticate.
    pub auth: ClientAuth,
    /// The audience active tokens must name, if any.
    pub audience: Option<String>,
    /// Time limit of one request.
    pub timeout: Duration,
    /// The longest an answer is cached (also bounded by the token's `exp`).
    pub cache_max: Duration,
    /// How often a cached token is introspected again to notice revocation
    /// (`Duration::ZERO`: on every request).
    pub recheck: Duration,
}

#[derive(Debug)]
struct Active {
    subject: String,
    user: String,
    scopes: Vec<String>,
    expires: Option<SystemTime>,
    /// When the issuer last said the token was active (injected clock).
    checked: SystemTime,
}

/// Authenticates opaque [`Credential::Bearer`] tokens by introspection.
#[derive(Debug)]
pub struct IntrospectionAuthenticator {
    config: IntrospectionConfig,
    http: reqwest::Client,
    cache: moka::sync::Cache<[u8; 32], Arc<Active>>,
    clock: SharedClock,
}

impl IntrospectionAuthenticator {
    /// An authenticator with `config`; refuses a short client secret.
    pub fn new(config: IntrospectionConfig) -> Result<Self, SecretError> {
        let config = IntrospectionConfig {
            client_secret: checked(config.client_secret.clone())?,
            ..config
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SecretError(e.to_string()))?;
        let cache = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(config.cache_max.max(Duration::from_millis(1)))
            .build();
        Ok(Self {
            config,
            http,
            cache,
            clock: system_clock(),
        })
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn session(&self, a: &Active) -> Outcome {
        let mut s = StandardSession::new(a.subject.clone(), "oauth", self.clock.now())
            .with_user(a.user.clone())
            .with_scopes(a.scopes.iter().cloned())
            .with_evidence(Evidence::Token {
                issuer: None,
                token_id: None,
            });
        if let Some(e) = a.expires {
            s = s.with_expiry(e);
        }
        Outcome::Authenticated(s.boxed())
    }

    async fn introspect(&self, token: &str) -> Result<Option<Active>, Outcome> {
        let c = &self.config;
        let response = post_form(
            &self.http,
            &c.endpoint,
            c.auth,
            &c.client_id,
            &c.client_secret,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .send()
        .await
        .map_err(|e| Outcome::unavailable(format!("introspection: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(Outcome::unavailable(format!(
                "introspection: HTTP {}",
                response.status()
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            Outcome::unavailable(format!("introspection answer: {}", e.without_url()))
        })?;
        read_answer(&body, self.config.audience.as_deref(), self.clock.now())
    }
}

/// Reads `body` as the authenticator reads an introspection answer (audience `api`);
/// whether it describes an active token. For fuzzing the parser.
#[cfg(feature = "fuzzing")]
pub fn read_answer_for_fuzzing(body: &[u8]) -> bool {
    read_answer(body, Some("api"), SystemTime::UNIX_EPOCH).is_ok_and(|a| a.is_some())
}

/// What an RFC 7662 answer says: `Ok(None)` for an inactive token, the active token's
/// facts, or the refusal (an audience without ours, no subject).
fn read_answer(
    body: &[u8],
    audience: Option<&str>,
    checked: SystemTime,
) -> Result<Option<Active>, Outcome> {
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Outcome::unavailable(format!("introspection answer: {e}")))?;
    if body.get("active").and_then(serde_json::Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let text = |k: &str| body.get(k).and_then(serde_json::Value::as_str);
    if let Some(aud) = audience {
        let listed = match body.get("aud") {
            Some(serde_json::Value::String(s)) => s == aud,
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud)),
            _ => false,
        };
        if !listed {
            return Err(Outcome::rejected(
                Error::MissingClaim,
                format!("audience lacks `{aud}`"),
            ));
        }
    }
    let Some(subject) = text("sub").or_else(|| text("client_id")) else {
        return Err(Outcome::rejected(
            Error::MissingClaim,
            "active token without sub or client_id",
        ));
    };
    let expires = body
        .get("exp")
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)));
    Ok(Some(Active {
        subject: subject.to_owned(),
        user: text("username").unwrap_or(subject).to_owned(),
        scopes: text("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        expires,
        checked,
    }))
}

#[async_trait]
impl Authenticator for IntrospectionAuthenticator {
    fn name(&self) -> &str {
        "oauth-introspection"
    }

    fn accepts(&self) -> Vec<CredentialKind> {
        vec![CredentialKind::Bearer]
    }

    fn supports(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Bearer(_))
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Bearer(token) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let token = token.expose_secret();
        if token.is_empty() || token.len() > crate::token::MAX_TOKEN_LEN {
            return Outcome::rejected(Error::Malformed, "token empty or longer than 16 KiB");
        }
        // With a re-check on every request nothing is cached, so skip the digest too.
        let digest: Option<[u8; 32]> =
            (!self.config.recheck.is_zero()).then(|| Sha256::digest(token.as_bytes()).into());
        let now = self.clock.now();
        if let Some(digest) = &digest
            && let Some(hit) = self.cache.get(digest)
        {
            let live = hit.expires.is_none_or(|e| now < e);
            // A clock that went backwards counts as due for a re-check.
            let recent = now
                .duration_since(hit.checked)
                .is_ok_and(|d| d < self.config.recheck);
            if live && recent {
                return self.session(&hit);
            }
            self.cache.invalidate(digest);
        }
        match self.introspect(token).await {
            Ok(Some(active)) => {
                if active.expires.is_some_and(|e| e <= now) {
                    return Outcome::rejected(Error::Expired, "the introspected token has expired");
                }
                let outcome = self.session(&active);
                if let Some(digest) = digest {
                    self.cache.insert(digest, Arc::new(active));
                }
                outcome
            }
            Ok(None) => Outcome::rejected(
                Error::InvalidCredentials,
                "the token is not active (unknown, expired or revoked)",
            ),
            Err(outcome) => outcome,
        }
    }
}
