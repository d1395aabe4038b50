//! Passwords exchanged for tokens (the resource-owner password grant): the bridge from a
//! database login to an OAuth server. A right password gives an [`OAuthSession`] holding
//! the access and refresh tokens; a wrong one is `Rejected`; an endpoint that is down or
//! slow is `Unavailable` within the time limit, so a chain can fall back.

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::{
    Attempt, Authenticator, Credential, CredentialKind, Error, Evidence, IllegalTransition,
    Outcome, Role, Session, SessionEnd, SessionState, StandardSession,
};
use secrecy::{ExposeSecret, SecretString};

use crate::client_auth::{ClientAuth, post_form};
use crate::introspection::{MIN_CLIENT_SECRET, SecretError, short_secret};

/// Settings of a [`PasswordGrantAuthenticator`].
#[derive(Debug, Clone)]
pub struct PasswordGrantConfig {
    /// The token endpoint.
    pub token_endpoint: String,
    /// The RFC 7009 revocation endpoint, if the server has one.
    pub revocation_endpoint: Option<String>,
    /// Our client id.
    pub client_id: String,
    /// Our client secret (at least 32 characters).
    pub client_secret: SecretString,
    /// How we authenticate.
    pub auth: ClientAuth,
    /// Requested scope, if any.
    pub scope: Option<String>,
    /// Time limit of one request (default 5 s).
    pub timeout: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_before: Duration,
}

#[derive(Debug)]
struct Client {
    config: PasswordGrantConfig,
    http: reqwest::Client,
}

enum Answer {
    Tokens(serde_json::Value),
    Refused(String),
}

impl Client {
    async fn post(&self, url: &str, form: Vec<(&'static str, String)>) -> Result<Answer, String> {
        let c = &self.config;
        let response = post_form(
            &self.http,
            url,
            c.auth,
            &c.client_id,
            &c.client_secret,
            &form,
        )
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(Answer::Tokens(body));
        }
        // RFC 6749 5.2: a refused grant is 400 invalid_grant; anything else is the server's
        // (or our client registration's) problem.
        match body.get("error").and_then(serde_json::Value::as_str) {
            Some("invalid_grant") => Ok(Answer::Refused(
                body.get("error_description")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("invalid_grant")
                    .to_owned(),
            )),
            other => Err(format!("HTTP {status} {}", other.unwrap_or(""))),
        }
    }
}

/// Authenticates [`Credential::Password`] by the password grant against an OAuth server.
#[derive(Debug)]
pub struct PasswordGrantAuthenticator {
    client: std::sync::Arc<Client>,
    clock: SharedClock,
}

/// The live session of a password-grant login: the standard session view plus the tokens,
/// refreshed before expiry and revoked when the session ends.
pub struct OAuthSession {
    session: StandardSession,
    access: SecretString,
    refresh: Option<SecretString>,
    refresh_at: Instant,
    client: std::sync::Arc<Client>,
}

impl std::fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSession")
            .field("session", &self.session)
            .field("tokens", &"[REDACTED]")
            .finish()
    }
}

fn tokens(
    body: &serde_json::Value,
) -> Result<(SecretString, Option<SecretString>, Duration, Vec<String>), String> {
    let access = body
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("answer without access_token")?;
    let refresh = body
        .get("refresh_token")
        .and_then(serde_json::Value::as_str)
        .map(|r| SecretString::from(r.to_owned()));
    let lifetime = Duration::from_secs(
        body.get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(300),
    );
    let scopes = body
        .get("scope")
        .and_then(serde_json::Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    Ok((
        SecretString::from(access.to_owned()),
        refresh,
        lifetime,
        scopes,
    ))
}

impl PasswordGrantAuthenticator {
    /// An authenticator with `config`; refuses a short client secret.
    pub fn new(config: PasswordGrantConfig) -> Result<Self, SecretError> {
        if config.client_secret.expose_secret().chars().count() < MIN_CLIENT_SECRET {
            return Err(short_secret());
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| short_secret())?;
        Ok(Self {
            client: std::sync::Arc::new(Client { config, http }),
            clock: system_clock(),
        })
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Logs `user` in; the typed session, or the outcome to report.
    pub async fn login(
        &self,
        user: &str,
        password: &SecretString,
    ) -> Result<OAuthSession, Outcome> {
        let c = &self.client.config;
        let mut form = vec![
            ("grant_type", "password".to_owned()),
            ("username", user.to_owned()),
            ("password", password.expose_secret().to_owned()),
        ];
        if let Some(s) = &c.scope {
            form.push(("scope", s.clone()));
        }
        let started = Instant::now();
        let body = match self.client.post(&c.token_endpoint, form).await {
            Ok(Answer::Tokens(body)) => body,
            Ok(Answer::Refused(why)) => {
                return Err(Outcome::rejected(
                    Error::InvalidCredentials,
                    format!("password grant for `{user}`: {why}"),
                ));
            }
            Err(e) => return Err(Outcome::unavailable(format!("token endpoint: {e}"))),
        };
        let (access, refresh, lifetime, scopes) = tokens(&body).map_err(Outcome::unavailable)?;
        let expires = self.clock.now() + lifetime;
        Ok(OAuthSession {
            session: StandardSession::new(user.to_owned(), "oauth-password", self.clock.now())
                .with_scopes(scopes)
                .with_expiry(expires)
                .with_evidence(Evidence::Token {
                    issuer: Some(c.token_endpoint.clone()),
                    token_id: None,
                }),
            access,
            refresh,
            refresh_at: started + lifetime.saturating_sub(c.refresh_before),
            client: self.client.clone(),
        })
    }
}

impl OAuthSession {
    /// The current access token, refreshed first when it is about to expire.
    pub async fn access_token(&mut self) -> Result<SecretString, String> {
        if Instant::now() >= self.refresh_at {
            self.refresh().await?;
        }
        Ok(self.access.clone())
    }

    /// Exchanges the refresh token for new tokens now (the server may rotate the refresh
    /// token; the new one replaces it).
    pub async fn refresh(&mut self) -> Result<(), String> {
        let refresh = self.refresh.as_ref().ok_or("no refresh token")?;
        let c = &self.client.config;
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose_secret().to_owned()),
        ];
        let started = Instant::now();
        let body = match self.client.post(&c.token_endpoint, form).await? {
            Answer::Tokens(body) => body,
            Answer::Refused(why) => return Err(format!("refresh refused: {why}")),
        };
        let (access, new_refresh, lifetime, _) = tokens(&body)?;
        self.access = access;
        if new_refresh.is_some() {
            self.refresh = new_refresh;
        }
        self.refresh_at = started + lifetime.saturating_sub(c.refresh_before);
        self.session = self
            .session
            .clone()
            .with_expiry(SystemTime::now() + lifetime);
        Ok(())
    }

    /// Ends the session now: moves it to `Disconnected` and revokes the refresh and access
    /// tokens (RFC 7009), saying whether the server accepted that. [`Session::end`] does
    /// the same for whoever holds the session as `dyn Session`.
    pub async fn revoke(&mut self) -> Result<(), String> {
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
    ) -> Option<impl std::future::Future<Output = Result<(), String>> + Send + 'static> {
        let url = self.client.config.revocation_endpoint.clone()?;
        let refresh = self.refresh.take();
        let access = std::mem::replace(&mut self.access, SecretString::from(String::new()));
        if access.expose_secret().is_empty() && refresh.is_none() {
            return None;
        }
        let client = self.client.clone();
        Some(async move {
            let tokens = [("refresh_token", refresh), ("access_token", Some(access))];
            for (hint, token) in tokens {
                let Some(t) = token.filter(|t| !t.expose_secret().is_empty()) else {
                    continue;
                };
                let form = vec![
                    ("token", t.expose_secret().to_owned()),
                    ("token_type_hint", hint.to_owned()),
                ];
                match client.post(&url, form).await? {
                    Answer::Tokens(_) => {}
                    Answer::Refused(why) => return Err(format!("revocation refused: {why}")),
                }
            }
            Ok(())
        })
    }
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
        self.session.expires()
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

#[async_trait]
impl Authenticator for PasswordGrantAuthenticator {
    fn name(&self) -> &str {
        "oauth-password"
    }

    fn accepts(&self) -> Vec<CredentialKind> {
        vec![CredentialKind::Password]
    }

    fn supports(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Password { .. })
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
