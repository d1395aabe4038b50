//! Opaque tokens through RFC 7662 introspection, with a cache bounded by the token's `exp`
//! and a configurable re-check interval for revocation.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use auth_core::clock::SharedClock;
use auth_core::{
    Attempt, Authenticator, Credential, CredentialError, CredentialKind, Error, Evidence, Outcome,
    StandardSession,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use oauth2::TokenIntrospectionResponse;
use oauth2::basic::BasicTokenIntrospectionResponse;

use crate::client_auth::{ClientAuth, ConfigError};
use crate::endpoint::Endpoints;
use crate::http::HttpClient;

/// Introspection settings.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The introspection endpoint (`https://`; plain `http://` only to loopback).
    pub endpoint: String,
    /// The provider's issuer identifier. When set, an answer naming another `iss` is
    /// refused, and it is the audience of our client assertions.
    pub issuer: Option<String>,
    /// Our client id.
    pub client_id: String,
    /// How we authenticate to the endpoint.
    pub auth: ClientAuth,
    /// The HTTP client (its CAs and client identity).
    pub http: HttpClient,
    /// The audience active tokens must name, if any.
    pub audience: Option<String>,
    /// The answer's member naming the local user; `None` (the default) takes `sub`, the
    /// stable identifier. RFC 7662's `username` is for display and may be reassigned.
    pub username_member: Option<String>,
    /// Whether a token without `sub` (a client-credentials token) is the user its
    /// `client_id` names. Off by default: a client id is not a user name, and a client
    /// named like a user would otherwise log in as that user.
    pub client_id_as_user: bool,
    /// Time limit of one request.
    pub timeout: Duration,
    /// The longest an answer is cached (also bounded by the token's `exp`).
    pub cache_max: Duration,
    /// How often a cached token is introspected again to notice revocation
    /// (`Duration::ZERO`: on every request).
    pub recheck: Duration,
}

impl IntrospectionConfig {
    /// Settings for `endpoint`, authenticating as `client_id` with `auth`: user from
    /// `sub`, a 3 s time limit, answers cached up to 5 minutes and re-checked every 30 s.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            issuer: None,
            client_id: client_id.into(),
            auth,
            http: HttpClient::default(),
            audience: None,
            username_member: None,
            client_id_as_user: false,
            timeout: Duration::from_secs(3),
            cache_max: Duration::from_secs(300),
            recheck: Duration::from_secs(30),
        }
    }
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
    endpoints: Endpoints,
    cache: quick_cache::sync::Cache<[u8; 32], Arc<Active>>,
    /// `auth_token_cache_total{cache="introspection"}`.
    cache_counters: auth_core::metrics::HitCounters,
}

impl IntrospectionAuthenticator {
    /// An authenticator with `config`; refuses a non-https endpoint off loopback.
    pub fn new(config: IntrospectionConfig) -> Result<Self, ConfigError> {
        let endpoints = Endpoints::new(
            &config.client_id,
            &config.auth,
            &config.http,
            config.timeout,
            config.issuer.as_deref(),
        )
        .with_introspection(&config.endpoint)?;
        let cache = quick_cache::sync::Cache::new(100_000);
        Ok(Self {
            config,
            endpoints,
            cache,
            cache_counters: auth_core::metrics::HitCounters::new(
                crate::TOKEN_CACHE_METRIC,
                &[("cache", "introspection")],
            ),
        })
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.endpoints.clock = clock;
        self
    }

    fn session(&self, a: &Active) -> Outcome {
        let mut s = StandardSession::new(a.subject.clone(), "oauth", self.endpoints.clock.now())
            .with_user(a.user.clone())
            .with_scopes(a.scopes.iter().cloned())
            .with_evidence(Evidence::Token {
                issuer: self.config.issuer.clone(),
                token_id: None,
            });
        if let Some(e) = a.expires {
            s = s.with_expiry(e);
        }
        Outcome::Authenticated(s.boxed())
    }

    async fn introspect(&self, token: &str) -> Result<Option<Active>, Outcome> {
        let answer = self
            .endpoints
            .introspect(token)
            .await
            .map_err(|e| Outcome::unavailable(format!("introspection: {e}")))?;
        read_answer(&answer, &self.config, self.endpoints.clock.now())
    }
}

/// Reads `body` as the authenticator reads an introspection answer (audience `api`,
/// issuer `https://idp`); whether it describes an active token. For fuzzing the parser.
#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
pub fn read_answer_for_fuzzing(body: &[u8]) -> bool {
    let Ok(answer) = serde_json::from_slice::<BasicTokenIntrospectionResponse>(body) else {
        return false;
    };
    let Ok(secret) = crate::ClientSecret::new(secrecy::SecretString::from(
        "f".repeat(crate::MIN_CLIENT_SECRET),
    )) else {
        return false;
    };
    let mut config = IntrospectionConfig::new(
        "https://idp/introspect",
        "fuzz",
        ClientAuth::SecretBasic(secret),
    );
    config.audience = Some("api".into());
    config.issuer = Some("https://idp".into());
    read_answer(&answer, &config, SystemTime::UNIX_EPOCH).is_ok_and(|a| a.is_some())
}

/// What an RFC 7662 answer says: `Ok(None)` for an inactive token, the active token's
/// facts, or the refusal (another issuer, a refresh token, an audience without ours, no
/// subject).
fn read_answer(
    answer: &BasicTokenIntrospectionResponse,
    config: &IntrospectionConfig,
    checked: SystemTime,
) -> Result<Option<Active>, Outcome> {
    if !answer.active() {
        return Ok(None);
    }
    let refuse = |error, why: String| Err(Outcome::rejected(error, why));
    if let (Some(expected), Some(iss)) = (&config.issuer, answer.iss())
        && iss != expected
    {
        return refuse(
            Error::Credential(CredentialError::UntrustedIssuer),
            format!("issuer `{iss}` is not `{expected}`"),
        );
    }
    // A refresh token is a credential for the token endpoint, never for an API.
    if answer
        .token_type()
        .is_some_and(|t| t.as_ref().eq_ignore_ascii_case("refresh_token"))
    {
        return refuse(
            Error::Credential(CredentialError::Invalid),
            "a refresh token is not an access token".into(),
        );
    }
    if let Some(aud) = &config.audience
        && !answer
            .aud()
            .is_some_and(|list| list.iter().any(|a| a == aud))
    {
        return refuse(
            Error::Credential(CredentialError::MissingClaim),
            format!("audience lacks `{aud}`"),
        );
    }
    let subject = match (answer.sub(), answer.client_id()) {
        (Some(sub), _) if !sub.is_empty() => sub.to_owned(),
        (_, Some(client)) if config.client_id_as_user => client.as_str().to_owned(),
        _ => {
            return refuse(
                Error::Credential(CredentialError::MissingClaim),
                "active token without sub (a client's token; `client_id_as_user` is off)".into(),
            );
        }
    };
    let user = match config.username_member.as_deref() {
        None | Some("sub") => subject.clone(),
        Some("username") => match answer.username() {
            Some(u) if !u.is_empty() => u.to_owned(),
            _ => {
                return refuse(
                    Error::Credential(CredentialError::MissingClaim),
                    "answer without `username`".into(),
                );
            }
        },
        Some(other) => {
            return refuse(
                Error::Credential(CredentialError::MissingClaim),
                format!("member `{other}` is not read from introspection answers"),
            );
        }
    };
    let expires = answer
        .exp()
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)));
    Ok(Some(Active {
        subject,
        user,
        scopes: answer
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
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

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Bearer]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Bearer(token) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let token = token.expose_secret();
        if token.is_empty() || token.len() > crate::token::MAX_TOKEN_LEN {
            return Outcome::rejected(
                CredentialError::Malformed,
                "token empty or longer than 16 KiB",
            );
        }
        // With a re-check on every request (or no caching) nothing is cached, so skip the
        // digest too.
        let cached_for = self.config.recheck.min(self.config.cache_max);
        let digest: Option<[u8; 32]> =
            (!cached_for.is_zero()).then(|| Sha256::digest(token.as_bytes()).into());
        let now = self.endpoints.clock.now();
        if let Some(digest) = &digest
            && let Some(hit) = self.cache.get(digest)
        {
            let live = hit.expires.is_none_or(|e| now < e);
            // A clock that went backwards counts as due for a re-check.
            let recent = now
                .duration_since(hit.checked)
                .is_ok_and(|d| d < cached_for);
            if live && recent {
                self.cache_counters.count(true);
                return self.session(&hit);
            }
            self.cache.remove(digest);
        }
        if digest.is_some() {
            self.cache_counters.count(false);
        }
        match self.introspect(token).await {
            Ok(Some(active)) => {
                if active.expires.is_some_and(|e| e <= now) {
                    return Outcome::rejected(
                        CredentialError::Expired,
                        "the introspected token has expired",
                    );
                }
                let outcome = self.session(&active);
                if let Some(digest) = digest {
                    self.cache.insert(digest, Arc::new(active));
                }
                outcome
            }
            Ok(None) => Outcome::rejected(
                CredentialError::Invalid,
                "the token is not active (unknown, expired or revoked)",
            ),
            Err(outcome) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IntrospectionConfig {
        let secret = crate::ClientSecret::new(secrecy::SecretString::from("s".repeat(40))).unwrap();
        IntrospectionConfig {
            issuer: Some("https://idp".into()),
            audience: Some("api".into()),
            ..IntrospectionConfig::new(
                "https://idp/introspect",
                "rs",
                ClientAuth::SecretBasic(secret),
            )
        }
    }

    fn read(
        body: serde_json::Value,
        config: &IntrospectionConfig,
    ) -> Result<Option<Active>, Outcome> {
        let answer: BasicTokenIntrospectionResponse = serde_json::from_value(body).unwrap();
        read_answer(&answer, config, UNIX_EPOCH)
    }

    fn refusal(out: Result<Option<Active>, Outcome>) -> Error {
        out.unwrap_err().failure().unwrap().error
    }

    #[test]
    fn the_user_is_sub_unless_configured() {
        let body = serde_json::json!({"active": true, "sub": "u-1", "username": "alice",
            "aud": "api", "iss": "https://idp", "token_type": "Bearer"});
        let active = read(body.clone(), &config()).unwrap().unwrap();
        assert_eq!(
            (active.subject.as_str(), active.user.as_str()),
            ("u-1", "u-1")
        );
        let named = IntrospectionConfig {
            username_member: Some("username".into()),
            ..config()
        };
        assert_eq!(read(body, &named).unwrap().unwrap().user, "alice");
        let nameless = serde_json::json!({"active": true, "sub": "u-1", "aud": "api"});
        assert_eq!(
            refusal(read(nameless, &named)),
            Error::Credential(CredentialError::MissingClaim)
        );
    }

    #[test]
    fn another_issuer_a_refresh_token_and_a_clients_token_are_refused() {
        let other =
            serde_json::json!({"active": true, "sub": "u", "aud": "api", "iss": "https://evil"});
        assert_eq!(
            refusal(read(other, &config())),
            Error::Credential(CredentialError::UntrustedIssuer)
        );
        let refresh = serde_json::json!({"active": true, "sub": "u", "aud": "api",
            "token_type": "refresh_token"});
        assert_eq!(
            refusal(read(refresh, &config())),
            Error::Credential(CredentialError::Invalid)
        );
        let client = serde_json::json!({"active": true, "client_id": "alice", "aud": "api"});
        assert_eq!(
            refusal(read(client.clone(), &config())),
            Error::Credential(CredentialError::MissingClaim)
        );
        let allowed = IntrospectionConfig {
            client_id_as_user: true,
            ..config()
        };
        assert_eq!(read(client, &allowed).unwrap().unwrap().user, "alice");
        let inactive = serde_json::json!({"active": false, "sub": "u"});
        assert!(read(inactive, &config()).unwrap().is_none());
        let no_aud = serde_json::json!({"active": true, "sub": "u", "aud": ["other"]});
        assert_eq!(
            refusal(read(no_aud, &config())),
            Error::Credential(CredentialError::MissingClaim)
        );
    }
}
