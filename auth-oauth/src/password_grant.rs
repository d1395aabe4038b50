//! Passwords exchanged for tokens (the resource-owner password grant): the bridge from a
//! database login to an OAuth server. A right password gives an [`OAuthSession`] holding
//! the access and refresh tokens; a wrong one, or any other refusal by the server
//! (`access_denied`, `mfa_required`, a proxy's 403), is `Rejected`, so no chain falls back
//! from it; an endpoint that is down, slow or overloaded (429, 5xx) is `Unavailable` within
//! the time limit, so a chain can fall back; a server that refuses us as its client
//! (`invalid_client`, `unauthorized_client`) is `Unavailable` too, with a configuration
//! error for the audit.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::clock::SharedClock;
use auth_core::{
    Attempt, Authenticator, Credential, CredentialError, CredentialKind, Evidence,
    IllegalTransition, Outcome, Role, Session, SessionEnd, SessionRenewal, SessionState,
    StandardSession,
};
use secrecy::{ExposeSecret, SecretString};

use oauth2::basic::BasicTokenResponse;
use oauth2::{AccessToken, RefreshToken, StandardRevocableToken, TokenResponse};

use crate::client_auth::ClientAuth;
use crate::client_auth::ConfigError;
use crate::endpoint::{EndpointError, Endpoints, lifetime};
use crate::http::HttpClient;

/// Settings of a [`PasswordGrantAuthenticator`].
#[derive(Debug, Clone)]
pub struct PasswordGrantConfig {
    /// The token endpoint (`https://`; plain `http://` only to loopback).
    pub token_endpoint: String,
    /// The RFC 7009 revocation endpoint, if the server has one.
    pub revocation_endpoint: Option<String>,
    /// The provider's issuer identifier, the audience of our client assertions (else
    /// the token endpoint is) and the issuer sessions name.
    pub issuer: Option<String>,
    /// Our client id.
    pub client_id: String,
    /// How we authenticate.
    pub auth: ClientAuth,
    /// The HTTP client (its CAs and client identity).
    pub http: HttpClient,
    /// Requested scope, if any.
    pub scope: Option<String>,
    /// Time limit of one request (default 5 s).
    pub timeout: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_before: Duration,
}

impl PasswordGrantConfig {
    /// Settings for `token_endpoint` as `client_id` with `auth`: no revocation endpoint
    /// or scope, a 5 s time limit, refreshed 30 s before expiry.
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        Self {
            token_endpoint: token_endpoint.into(),
            revocation_endpoint: None,
            issuer: None,
            client_id: client_id.into(),
            auth,
            http: HttpClient::default(),
            scope: None,
            timeout: Duration::from_secs(5),
            refresh_before: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
struct Client {
    config: PasswordGrantConfig,
    endpoints: Endpoints,
}

/// Authenticates [`Credential::Password`] by the password grant against an OAuth server.
#[derive(Debug)]
pub struct PasswordGrantAuthenticator {
    client: Arc<Client>,
}

impl PasswordGrantAuthenticator {
    /// Whether the token endpoint answers (a readiness check): any HTTP answer to a
    /// `GET` (token endpoints refuse it with 400 or 405) means the server is there; a
    /// connection, TLS or time-out failure means it is not. Sends no credential.
    pub async fn probe(&self) -> Result<String, String> {
        let endpoints = &self.client.endpoints;
        let url = &self.client.config.token_endpoint;
        endpoints
            .http
            .get(url, endpoints.timeout, 4096)
            .await
            .map(|answer| {
                format!(
                    "the token endpoint answers (HTTP {})",
                    answer.status.as_u16()
                )
            })
            .map_err(|e| format!("the token endpoint does not answer: {e}"))
    }
}

/// The live session of a password-grant login: the standard session view plus the tokens,
/// refreshed before expiry (by [`OAuthSession::access_token`], or by whoever keeps the
/// session open through [`Session::renewal`]) and revoked when the session ends.
pub struct OAuthSession {
    session: StandardSession,
    /// Shared with a renewal in flight, which runs outside the session's lock.
    tokens: Arc<Mutex<Tokens>>,
    client: Arc<Client>,
}

/// A session's tokens and times, on the authenticator's clock.
struct Tokens {
    access: SecretString,
    refresh: Option<SecretString>,
    /// When to refresh.
    refresh_at: SystemTime,
    /// When the access token expires, and with it the session unless refreshed.
    expires: SystemTime,
    /// The session has ended and its tokens were handed to revocation: a refresh that
    /// completes after that revokes what it got instead of keeping it.
    ended: bool,
}

/// How long a session waits before it tries again a refresh that failed for an outage.
const REFRESH_RETRY: Duration = Duration::from_secs(30);

impl std::fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSession")
            .field("session", &self.session)
            .field("tokens", &"[REDACTED]")
            .finish()
    }
}

/// The access token, refresh token, lifetime and scopes of a token answer.
fn tokens(
    answer: &BasicTokenResponse,
) -> (SecretString, Option<SecretString>, Duration, Vec<String>) {
    let access = SecretString::from(answer.access_token().secret().clone());
    let refresh = answer
        .refresh_token()
        .map(|r| SecretString::from(r.secret().clone()));
    let lifetime = lifetime(answer, Duration::from_secs(300));
    let scopes = answer
        .scopes()
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    (access, refresh, lifetime, scopes)
}

impl PasswordGrantAuthenticator {
    /// An authenticator with `config`; refuses a non-https endpoint off loopback.
    pub fn new(config: PasswordGrantConfig) -> Result<Self, ConfigError> {
        let endpoints = Endpoints::new(
            &config.client_id,
            &config.auth,
            &config.http,
            config.timeout,
            config.issuer.as_deref(),
        )
        .with_token(&config.token_endpoint)?
        .with_revocation(config.revocation_endpoint.as_deref())?;
        Ok(Self {
            client: Arc::new(Client { config, endpoints }),
        })
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        Arc::make_mut(&mut self.client).endpoints.clock = clock;
        self
    }

    /// Logs `user` in; the typed session, or the outcome to report.
    pub async fn login(
        &self,
        user: &str,
        password: &SecretString,
    ) -> Result<OAuthSession, Outcome> {
        let c = &self.client.config;
        let started = self.client.endpoints.clock.now();
        let answer = match self
            .client
            .endpoints
            .password(user, password, c.scope.as_deref())
            .await
        {
            Ok(answer) => answer,
            Err(EndpointError::Refused(why)) => {
                return Err(Outcome::rejected(
                    CredentialError::Invalid,
                    format!("password grant for `{user}`: {why}"),
                ));
            }
            // No decision on the user: an outage, or the server refusing us as its client.
            // Either way unavailable (a chain may fall back); the failure's kind tells the
            // audit which.
            Err(e) => {
                return Err(Outcome::Unavailable(
                    GrantError::from_endpoint("password grant", e).into(),
                ));
            }
        };
        let (access, refresh, lifetime, scopes) = tokens(&answer);
        let now = self.client.endpoints.clock.now();
        Ok(OAuthSession {
            session: StandardSession::new(user.to_owned(), "oauth-password", now)
                .with_scopes(scopes)
                .with_evidence(Evidence::Token {
                    issuer: Some(c.issuer.clone().unwrap_or_else(|| c.token_endpoint.clone())),
                    token_id: None,
                }),
            tokens: Arc::new(Mutex::new(Tokens {
                access,
                refresh,
                refresh_at: started + lifetime.saturating_sub(c.refresh_before),
                expires: now + lifetime,
                ended: false,
            })),
            client: self.client.clone(),
        })
    }
}

/// Why a password-grant session could not refresh or revoke its tokens.
///
/// Converts into an auth-core [`Failure`](auth_core::Failure) for the audit log: a refusal
/// is the credential's, an outage the infrastructure's, a refusal of our client the
/// configuration's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The provider issued no refresh token, so the session cannot be extended.
    #[error("the provider issued no refresh token")]
    NoRefreshToken,
    /// The provider refused the token (`invalid_grant`: revoked, expired or spent) or the
    /// user (`access_denied`, a 403).
    #[error("{operation} refused: {why}")]
    Refused {
        /// `refresh` or `revocation`.
        operation: &'static str,
        /// The provider's reason, capped and escaped.
        why: String,
    },
    /// The provider refused us as its client (`invalid_client`, `unauthorized_client`):
    /// our client id, secret or registration needs fixing. Nothing is decided about the
    /// token, so a refresh is tried again later, as after an outage.
    #[error("{operation}: {why}")]
    Misconfigured {
        /// `password grant`, `refresh` or `revocation`.
        operation: &'static str,
        /// The provider's reason, capped and escaped.
        why: String,
    },
    /// The provider or the way to it failed (no answer, 429, 5xx, an unreadable answer).
    #[error("{operation}: {why}")]
    Unavailable {
        /// `password grant`, `refresh` or `revocation`.
        operation: &'static str,
        /// What failed.
        why: String,
    },
}

impl GrantError {
    fn from_endpoint(operation: &'static str, e: EndpointError) -> Self {
        match e {
            EndpointError::Refused(why) => Self::Refused { operation, why },
            EndpointError::Misconfigured(why) => Self::Misconfigured { operation, why },
            EndpointError::Unavailable(why) => Self::Unavailable { operation, why },
        }
    }
}

impl From<GrantError> for auth_core::Failure {
    fn from(e: GrantError) -> Self {
        let kind: auth_core::Error = match &e {
            GrantError::Refused { .. } | GrantError::NoRefreshToken => {
                CredentialError::Expired.into()
            }
            // Our registration at the provider is a setting that cannot work.
            GrantError::Misconfigured { .. } => auth_core::ConfigurationError::Invalid.into(),
            GrantError::Unavailable { .. } => auth_core::InfrastructureError::Unavailable.into(),
        };
        auth_core::Failure::new(kind, e.to_string())
    }
}

impl OAuthSession {
    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current access token, refreshed first when it is about to expire.
    pub async fn access_token(&mut self) -> Result<SecretString, GrantError> {
        let due = self.client.endpoints.clock.now() >= self.tokens().refresh_at;
        if due {
            self.refresh().await?;
        }
        Ok(self.tokens().access.clone())
    }

    /// Exchanges the refresh token for new tokens now (the server may rotate the refresh
    /// token; the new one replaces it).
    pub async fn refresh(&mut self) -> Result<(), GrantError> {
        refresh(self.client.clone(), self.tokens.clone()).await
    }

    /// Ends the session now: moves it to `Disconnected` and revokes the refresh and access
    /// tokens (RFC 7009), saying whether the server accepted that. [`Session::end`] does
    /// the same for whoever holds the session as `dyn Session`.
    pub async fn revoke(&mut self) -> Result<(), GrantError> {
        let _ = self.session.transition(SessionState::Disconnected);
        match self.revocation() {
            Some(revocation) => revocation.await,
            None => Ok(()),
        }
    }

    /// The revocation of the session's tokens, taken out of the session (so it runs at
    /// most once), or `None` when there is no revocation endpoint or nothing to revoke.
    fn revocation(
        &mut self,
    ) -> Option<impl std::future::Future<Output = Result<(), GrantError>> + Send + 'static> {
        self.tokens().ended = true;
        self.client.endpoints.revocation.as_ref()?;
        let (refresh, access) = {
            let mut tokens = self.tokens();
            let refresh = tokens.refresh.take();
            let access = std::mem::replace(&mut tokens.access, SecretString::from(String::new()));
            (refresh, access)
        };
        if access.expose_secret().is_empty() && refresh.is_none() {
            return None;
        }
        Some(revoke(self.client.clone(), refresh, access))
    }
}

/// Revokes `refresh` and `access` at `client`'s provider (RFC 7009), both tried: a refusal
/// for one must not leave the other usable.
async fn revoke(
    client: Arc<Client>,
    refresh: Option<SecretString>,
    access: SecretString,
) -> Result<(), GrantError> {
    let refresh = refresh.filter(|t| !t.expose_secret().is_empty()).map(|t| {
        StandardRevocableToken::RefreshToken(RefreshToken::new(t.expose_secret().to_owned()))
    });
    let access = Some(access)
        .filter(|t| !t.expose_secret().is_empty())
        .map(|t| {
            StandardRevocableToken::AccessToken(AccessToken::new(t.expose_secret().to_owned()))
        });
    let mut first_error = Ok(());
    for token in [refresh, access].into_iter().flatten() {
        if let Err(e) = client.endpoints.revoke(token).await
            && first_error.is_ok()
        {
            first_error = Err(GrantError::from_endpoint("revocation", e));
        }
    }
    first_error
}

impl Session for OAuthSession {
    fn principal(&self) -> &str {
        self.session.principal()
    }
    fn user(&self) -> &str {
        self.session.user()
    }
    fn method(&self) -> &str {
        self.session.method()
    }
    fn evidence(&self) -> &Evidence {
        self.session.evidence()
    }
    fn roles(&self) -> &[Role] {
        self.session.roles()
    }
    fn scopes(&self) -> &[String] {
        self.session.scopes()
    }
    fn created(&self) -> SystemTime {
        self.session.created()
    }
    fn last_activity(&self) -> SystemTime {
        self.session.last_activity()
    }
    fn expires(&self) -> Option<SystemTime> {
        Some(self.tokens().expires)
    }
    fn state(&self) -> SessionState {
        self.session.state()
    }
    fn transition(&mut self, to: SessionState) -> Result<(), IllegalTransition> {
        self.session.transition(to)
    }
    fn touch(&mut self, now: SystemTime) -> Result<(), IllegalTransition> {
        self.session.touch(now)
    }
    /// Refreshes the tokens when the refresh is due (and the provider issued a refresh
    /// token): the connection that obtained them is still open. A refusal (the refresh
    /// token was revoked or expired) ends the session at once; an outage is tried again
    /// later while the access token lasts.
    fn renewal(&mut self, now: SystemTime) -> Option<SessionRenewal> {
        {
            let tokens = self.tokens();
            if tokens.refresh.is_none() || now < tokens.refresh_at {
                return None;
            }
        }
        let (client, tokens) = (self.client.clone(), self.tokens.clone());
        Some(Box::pin(async move {
            refresh(client, tokens)
                .await
                .map_err(auth_core::Failure::from)
        }))
    }
    /// Revokes the session's tokens at the provider (RFC 7009): the connection that
    /// obtained them is gone, so nobody may use them any more.
    fn end(&mut self) -> Option<SessionEnd> {
        let _ = self.session.transition(SessionState::Disconnected);
        let revocation = self.revocation()?;
        Some(Box::pin(async move {
            if let Err(e) = revocation.await {
                tracing::warn!(error = %e, "revoking the tokens of an ended session failed");
            }
        }))
    }
}

/// Refreshes `tokens` at `client`'s provider. A refusal expires them now; an outage (or a
/// refusal of our client, which an administrator may fix meanwhile) leaves them as they
/// are and puts the next try off by [`REFRESH_RETRY`].
async fn refresh(client: Arc<Client>, shared: Arc<Mutex<Tokens>>) -> Result<(), GrantError> {
    let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(refresh_token) = lock().refresh.clone() else {
        return Err(GrantError::NoRefreshToken);
    };
    let clock = &client.endpoints.clock;
    let started = clock.now();
    match client.endpoints.refresh(&refresh_token).await {
        Ok(answer) => {
            let (access, new_refresh, lifetime, _) = tokens(&answer);
            let unused = {
                let mut t = lock();
                if t.ended {
                    Some((new_refresh, access))
                } else {
                    t.access = access;
                    if new_refresh.is_some() {
                        t.refresh = new_refresh;
                    }
                    t.refresh_at = started + lifetime.saturating_sub(client.config.refresh_before);
                    t.expires = started + lifetime;
                    None
                }
            };
            let Some((new_refresh, access)) = unused else {
                return Ok(());
            };
            // The session ended while this refresh was on its way: nobody will use these
            // tokens, and its revocation had only the old ones.
            if client.endpoints.revocation.is_some() {
                let _ = revoke(client.clone(), new_refresh, access).await;
            }
            Err(GrantError::Refused {
                operation: "refresh",
                why: "the session ended while the refresh was running".into(),
            })
        }
        Err(e) => {
            let e = GrantError::from_endpoint("refresh", e);
            let mut t = lock();
            match e {
                GrantError::Refused { .. } => {
                    t.expires = t.expires.min(clock.now());
                    // Spent or revoked: asking again would only be refused again.
                    t.refresh = None;
                }
                _ => t.refresh_at = (clock.now() + REFRESH_RETRY).min(t.expires),
            }
            Err(e)
        }
    }
}

#[async_trait]
impl Authenticator for PasswordGrantAuthenticator {
    fn name(&self) -> &str {
        "oauth-password"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Password { user, password } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        match self.login(user, password).await {
            Ok(session) => Outcome::Authenticated(Box::new(session)),
            Err(outcome) => outcome,
        }
    }
}
