//! Bearer JWTs from trusted issuers as an auth-core authenticator.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::{
    Attempt, Authenticator, Credential, CredentialError, CredentialKind, Error, Evidence, Outcome,
    Role, StandardSession,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::client_auth::ConfigError;
use crate::key::Alg;
use crate::keyset::{FetchSettings, KeySet, KeySource, LookupError};
use crate::token::{self, Object};

/// One trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The issuer exactly as tokens name it in `iss`.
    pub issuer: String,
    /// Where its keys come from.
    pub keys: KeySource,
    /// The audience tokens must name (in `aud`).
    pub audience: String,
    /// Require RFC 9068 access tokens (`typ` `at+jwt`).
    pub require_at_jwt: bool,
    /// Fetch settings.
    pub fetch: FetchSettings,
}

impl IssuerConfig {
    /// An issuer with keys from discovery, audience `audience`.
    pub fn discovery(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            keys: KeySource::Discovery,
            audience: audience.into(),
            require_at_jwt: false,
            fetch: FetchSettings::default(),
        }
    }

    /// The same issuer, its keys fetched with `http` (its CAs and client identity).
    #[must_use]
    pub fn with_http(mut self, http: crate::HttpClient) -> Self {
        self.fetch.http = http;
        self
    }

    /// An issuer with an explicit JWKS URL.
    pub fn jwks(
        issuer: impl Into<String>,
        jwks_url: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            keys: KeySource::Jwks(jwks_url.into()),
            ..Self::discovery(issuer, audience)
        }
    }
}

/// Validation settings shared by all issuers.
#[derive(Debug, Clone)]
pub struct ValidationSettings {
    /// Allowed clock difference for `exp`, `nbf` and `iat` (default 60 s).
    pub leeway: Duration,
    /// The longest `exp - iat` accepted, if any (default 24 hours). While it is set, a
    /// token without `iat` is refused: its lifetime could not be known.
    pub max_lifetime: Option<Duration>,
    /// The claim naming the local user, when not `sub` (the default). `sub` is the one
    /// identifier an issuer promises to keep unique and never reassign; OpenID Connect
    /// says `preferred_username` is neither, so name it here only for an issuer you
    /// control. A token without the configured claim is refused.
    pub username_claim: Option<String>,
    /// The claim holding role names (default `roles`).
    pub roles_claim: String,
    /// The most validated tokens cached.
    pub cache_capacity: u64,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(60),
            max_lifetime: Some(Duration::from_secs(24 * 3600)),
            username_claim: None,
            roles_claim: "roles".into(),
            cache_capacity: 100_000,
        }
    }
}

/// The longest a validated token is served from the cache (on the injected clock).
const CACHE_MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Validated {
    issuer: String,
    subject: String,
    user: String,
    token_id: Option<String>,
    roles: Vec<Role>,
    scopes: Vec<String>,
    expires: SystemTime,
}

/// Validates [`Credential::Bearer`] JWTs against trusted issuers.
///
/// The issuer is chosen by the token's `iss` before any key is used; each key verifies
/// only its own algorithm (never `none`, never an HMAC secret derived from a public key);
/// `jku`, `x5u` and embedded `jwk` headers are ignored and `crit` is refused; `exp`,
/// `nbf` and `iat` are checked with leeway on the injected clock; `aud` must contain the
/// issuer's audience. A validated token is cached (keyed by its SHA-256, until its `exp`),
/// so a repeated token costs a lookup.
///
/// # Example
///
/// Keys usually come from the issuer's JWKS ([`IssuerConfig::discovery`],
/// [`IssuerConfig::jwks`]); here the issuer's key is configured locally
/// ([`KeySource::Static`]: an HMAC secret shared with the issuer, or a pinned public key
/// from [`VerifyingKey::from_jwk`](crate::VerifyingKey::from_jwk)), so nothing is fetched:
///
/// ```
/// use std::sync::Arc;
/// use std::time::{SystemTime, UNIX_EPOCH};
/// use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
/// use auth_oauth::{
///     Alg, IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey,
/// };
/// // Signing here stands in for the issuer. jsonwebtoken 11 needs a crypto backend
/// // feature, or it panics at run time ("Could not automatically determine the
/// // process-level CryptoProvider"):
/// // jsonwebtoken = { version = "11", default-features = false, features = ["aws_lc_rs"] }
/// use jsonwebtoken::{Algorithm, EncodingKey, Header};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = b"at least 32 bytes of shared secret..";
/// let key = VerifyingKey::hmac(None, Alg::HS256, secret)?;
/// let issuer = IssuerConfig {
///     keys: KeySource::Static(Arc::new(vec![Arc::new(key)])),
///     ..IssuerConfig::discovery("https://issuer.example", "api")
/// };
/// let jwt = JwtAuthenticator::new(vec![issuer], ValidationSettings::default())?;
///
/// // What the issuer hands the client.
/// let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
/// let claims = serde_json::json!({
///     "iss": "https://issuer.example", "aud": "api", "sub": "alice",
///     "iat": now, "exp": now + 300, "scope": "orders:read",
/// });
/// let signing_key = EncodingKey::from_secret(secret);
/// let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &signing_key)?;
///
/// let connection = ConnectionInfo::tcp(Protocol::Http, "10.0.0.5:40000".parse()?);
/// let mut attempt = Attempt::new(connection.clone(), Credential::bearer(token));
/// let outcome = jwt.authenticate(&mut attempt).await;
/// let session = outcome.session().ok_or("token refused")?;
/// assert_eq!(session.principal(), "alice");
/// assert_eq!(session.scopes(), ["orders:read"]);
///
/// let mut attempt = Attempt::new(connection, Credential::bearer("not-a-jwt"));
/// assert!(jwt.authenticate(&mut attempt).await.failure().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct JwtAuthenticator {
    issuers: HashMap<String, (IssuerConfig, Arc<KeySet>)>,
    settings: ValidationSettings,
    clock: SharedClock,
    /// Validated tokens by SHA-256, with when they were validated (injected clock).
    cache: quick_cache::sync::Cache<[u8; 32], Arc<(Validated, SystemTime)>>,
    /// `auth_token_cache_total{cache="jwt"}`.
    cache_counters: auth_core::metrics::HitCounters,
}

fn now_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn reject(error: Error, detail: impl Into<String>) -> Outcome {
    Outcome::rejected(error, detail.into())
}

impl JwtAuthenticator {
    /// An authenticator trusting `issuers`.
    pub fn new(
        issuers: Vec<IssuerConfig>,
        settings: ValidationSettings,
    ) -> Result<Self, ConfigError> {
        let mut map = HashMap::new();
        for config in issuers {
            let keys = Arc::new(
                KeySet::new(
                    config.issuer.clone(),
                    config.keys.clone(),
                    config.fetch.clone(),
                )
                .map_err(|source| ConfigError::Issuer {
                    issuer: config.issuer.clone(),
                    source,
                })?,
            );
            map.insert(config.issuer.clone(), (config, keys));
        }
        let cache = quick_cache::sync::Cache::new(
            usize::try_from(settings.cache_capacity).unwrap_or(usize::MAX),
        );
        Ok(Self {
            issuers: map,
            settings,
            clock: system_clock(),
            cache,
            cache_counters: auth_core::metrics::HitCounters::new(
                crate::TOKEN_CACHE_METRIC,
                &[("cache", "jwt")],
            ),
        })
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Fetches the keys of `issuer` now (a readiness check: does the issuer answer?), and
    /// keeps them in use when it does. The number of usable keys it published, or why
    /// it could not be asked. Also sets `auth_jwks_age_seconds{issuer}` to the age of
    /// the keys in use afterwards.
    pub async fn probe_issuer(&self, issuer: &str) -> Result<usize, String> {
        let Some((_, keys)) = self.issuers.get(issuer) else {
            return Err(format!("issuer `{issuer}` is not trusted here"));
        };
        let now = self.clock.now();
        let probed = keys.probe(now).await;
        if let Some(age) = keys.age(now) {
            metrics::gauge!(crate::JWKS_AGE_METRIC, "issuer" => issuer.to_owned())
                .set(age.as_secs_f64());
        }
        probed
    }

    /// The issuers trusted, as their tokens name them.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }

    /// How many times the keys of `issuer` were fetched (for tests and metrics).
    pub fn key_fetches(&self, issuer: &str) -> u64 {
        self.issuers.get(issuer).map_or(0, |(_, k)| k.fetches())
    }

    fn session(&self, v: Validated, now: SystemTime) -> Outcome {
        Outcome::Authenticated(
            StandardSession::new(v.subject, "oauth", now)
                .with_user(v.user)
                .with_roles(v.roles)
                .with_scopes(v.scopes)
                .with_expiry(v.expires)
                .with_evidence(Evidence::Token {
                    issuer: Some(v.issuer),
                    token_id: v.token_id,
                })
                .boxed(),
        )
    }

    fn claims(
        &self,
        config: &IssuerConfig,
        claims: &Object<'_>,
        now: i64,
    ) -> Result<Validated, Outcome> {
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(60);
        let malformed = |e: token::TokenError| {
            reject(Error::Credential(CredentialError::Malformed), e.to_string())
        };
        let exp = token::seconds(claims, "exp").map_err(malformed)?;
        let Some(exp) = exp else {
            return Err(reject(
                Error::Credential(CredentialError::MissingClaim),
                "token without `exp`",
            ));
        };
        if now > exp.saturating_add(leeway) {
            return Err(reject(
                Error::Credential(CredentialError::Expired),
                format!("expired at {exp}"),
            ));
        }
        if let Some(nbf) = token::seconds(claims, "nbf").map_err(malformed)?
            && nbf > now.saturating_add(leeway)
        {
            return Err(reject(
                Error::Credential(CredentialError::Expired),
                format!("not valid before {nbf}"),
            ));
        }
        let iat = token::seconds(claims, "iat").map_err(malformed)?;
        if let Some(iat) = iat
            && iat > now.saturating_add(leeway)
        {
            return Err(reject(
                Error::Credential(CredentialError::MissingClaim),
                format!("issued in the future ({iat})"),
            ));
        }
        if let Some(max) = self.settings.max_lifetime {
            let Some(iat) = iat else {
                return Err(reject(
                    Error::Credential(CredentialError::MissingClaim),
                    "token without `iat` while a maximum lifetime is set",
                ));
            };
            if exp.saturating_sub(iat) > i64::try_from(max.as_secs()).unwrap_or(i64::MAX) {
                return Err(reject(
                    Error::Credential(CredentialError::MissingClaim),
                    "lifetime longer than allowed",
                ));
            }
        }
        let audiences = token::strings(claims, "aud").map_err(malformed)?;
        if !audiences.contains(&config.audience) {
            return Err(reject(
                Error::Credential(CredentialError::MissingClaim),
                format!("audience {audiences:?} lacks `{}`", config.audience),
            ));
        }
        let Some(subject) = token::string(claims, "sub").filter(|s| !s.is_empty()) else {
            return Err(reject(
                Error::Credential(CredentialError::MissingClaim),
                "token without `sub`",
            ));
        };
        let user = match self.settings.username_claim.as_deref() {
            None | Some("sub") => subject.clone().into_owned(),
            Some(claim) => match token::string(claims, claim).filter(|u| !u.is_empty()) {
                Some(user) => user.into_owned(),
                None => {
                    return Err(reject(
                        Error::Credential(CredentialError::MissingClaim),
                        format!("token without `{claim}`"),
                    ));
                }
            },
        };
        let mut scopes: Vec<String> = token::string(claims, "scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        scopes.extend(token::strings(claims, "scp").map_err(malformed)?);
        let roles = token::strings(claims, &self.settings.roles_claim)
            .map_err(malformed)?
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        Ok(Validated {
            issuer: config.issuer.clone(),
            subject: subject.into_owned(),
            user,
            token_id: token::string(claims, "jti").map(Cow::into_owned),
            roles,
            scopes,
            expires: UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap_or(0)),
        })
    }

    async fn validate(&self, jwt: &str, now: SystemTime) -> Result<Validated, Outcome> {
        let malformed = |e: token::TokenError| {
            reject(Error::Credential(CredentialError::Malformed), e.to_string())
        };
        let decoded = token::decode(jwt).map_err(malformed)?;
        let header = decoded.header().map_err(malformed)?;
        let claims = decoded.claims().map_err(malformed)?;
        let alg_name = token::string(&header, "alg").unwrap_or_default();
        let Some(alg) = Alg::parse(&alg_name) else {
            return Err(reject(
                Error::Credential(CredentialError::BadSignature),
                format!("algorithm `{alg_name}` is not accepted"),
            ));
        };
        // The issuer is chosen before any key is used.
        let iss = token::string(&claims, "iss").unwrap_or_default();
        let Some((config, keys)) = self.issuers.get(iss.as_ref()) else {
            return Err(reject(
                Error::Credential(CredentialError::UntrustedIssuer),
                format!("issuer `{iss}` is not trusted"),
            ));
        };
        if config.require_at_jwt {
            let typ = token::string(&header, "typ")
                .unwrap_or_default()
                .to_ascii_lowercase();
            if typ != "at+jwt" && typ != "application/at+jwt" {
                return Err(reject(
                    Error::Credential(CredentialError::MissingClaim),
                    format!("typ `{typ}` is not at+jwt"),
                ));
            }
        }
        let kid = token::string(&header, "kid");
        let key = keys
            .key(kid.as_deref(), alg, now)
            .await
            .map_err(|e| match e {
                LookupError::UnknownKey(_) => reject(
                    Error::Credential(CredentialError::BadSignature),
                    e.to_string(),
                ),
                LookupError::Unavailable(_) => Outcome::unavailable(e.to_string()),
            })?;
        if key.alg != alg {
            return Err(reject(
                Error::Credential(CredentialError::BadSignature),
                format!(
                    "key `{}` verifies {:?}, not {alg:?}",
                    kid.as_deref().unwrap_or("(none)"),
                    key.alg
                ),
            ));
        }
        if !key.verify(decoded.signing_input, &decoded.signature) {
            return Err(reject(
                Error::Credential(CredentialError::BadSignature),
                "signature does not verify",
            ));
        }
        self.claims(config, &claims, now_secs(now))
    }
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    fn name(&self) -> &str {
        "oauth"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Bearer]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Bearer(token) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let jwt = token.expose_secret();
        // One clock reading serves the cache check, the claim checks and the session.
        let now = self.clock.now();
        if self.settings.cache_capacity == 0 {
            return match self.validate(jwt, now).await {
                Ok(v) => self.session(v, now),
                Err(outcome) => outcome,
            };
        }
        let digest: [u8; 32] = Sha256::digest(jwt.as_bytes()).into();
        if let Some(hit) = self.cache.get(&digest) {
            let (validated, at) = hit.as_ref();
            // A validation stands until the token expires, and at most CACHE_MAX_AGE: a key
            // the issuer withdrew stops validating its tokens by then.
            let fresh = now.duration_since(*at).is_ok_and(|age| age < CACHE_MAX_AGE);
            if now < validated.expires && fresh {
                self.cache_counters.count(true);
                return self.session(validated.clone(), now);
            }
            self.cache.remove(&digest);
        }
        self.cache_counters.count(false);
        match self.validate(jwt, now).await {
            Ok(v) => {
                if v.expires > now {
                    self.cache.insert(digest, Arc::new((v.clone(), now)));
                }
                self.session(v, now)
            }
            Err(outcome) => outcome,
        }
    }
}
