//! Our calls to an authorization server's token, introspection and revocation endpoints,
//! made with the `oauth2` crate over our [`HttpClient`] (TLS settings, time limit, capped
//! answers). The `oauth2` crate knows client secrets in Basic or in the body; the RFC 7523
//! assertions (`client_secret_jwt`, `private_key_jwt`) go in as extra parameters. When the
//! provider answers `invalid_client` and our secret comes from a store, the secret is read
//! again and the request made once more: a rotated secret needs no restart.
//!
//! A failed call is judged by what the provider meant (`Endpoints::judge`), because a
//! chain falls back to another method on an outage and never on a refusal:
//!
//! | answer | judged |
//! |---|---|
//! | none: transport, TLS, time limit, too large | unavailable |
//! | HTTP 429 or 5xx, whatever the body | unavailable |
//! | OAuth `temporarily_unavailable`, `server_error` | unavailable |
//! | OAuth `invalid_client` (after one try with a re-read secret), `unauthorized_client` | misconfigured: ours, so unavailable, audited as configuration |
//! | any other OAuth error (`invalid_grant`, `access_denied`, `mfa_required`, ...) | refused |
//! | any other 4xx that is no OAuth error (a proxy's HTML 403, an empty 401) | refused |
//! | anything else we cannot read (a 200 with garbage) | unavailable |

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use auth_core::clock::SharedClock;
use oauth2::basic::{BasicClient, BasicTokenIntrospectionResponse, BasicTokenResponse};
use oauth2::{
    AccessToken, AuthType, ClientId, EndpointMaybeSet, EndpointNotSet, ErrorResponseType,
    IntrospectionUrl, RefreshToken, RequestTokenError, ResourceOwnerPassword,
    ResourceOwnerUsername, RevocationUrl, Scope, StandardErrorResponse, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::client_auth::{ClientAuth, assertion};
use crate::http::{HttpClient, HttpError, MAX_ENDPOINT_ANSWER, check_url};

/// Why an endpoint call gave no answer to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndpointError {
    /// The server refused the request: the grant (`invalid_grant`: a wrong password, a
    /// spent refresh token), the user (`access_denied`, `mfa_required`, a proxy's HTML
    /// 403), anything but an outage or our registration. The provider decided against
    /// the user, so a chain must not let another method decide otherwise.
    Refused(String),
    /// The server refused us as its client (`invalid_client`, `unauthorized_client`): our
    /// client id, secret or registration is wrong. Not the user's doing, so a chain may
    /// fall back, but it is for an administrator to fix, not an outage to wait out.
    Misconfigured(String),
    /// The server or the way to it failed (no answer, 429, 5xx, `temporarily_unavailable`,
    /// an answer we cannot read): not the user's doing, so a chain may fall back.
    Unavailable(String),
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::Misconfigured(why) | Self::Unavailable(why) => f.write_str(why),
        }
    }
}

type Client = BasicClient<
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type Failure<T> = RequestTokenError<HttpError, StandardErrorResponse<T>>;

/// One HTTP exchange as the oauth2 crate awaits it.
type Exchange = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>>;

/// Makes the request `$build` builds from an oauth2 client and the extra parameters of
/// our client authentication, and once more (with a re-read secret) when the provider
/// answers `invalid_client` and the secret changed in its store.
macro_rules! with_retry {
    ($self:ident, |$client:ident, $extra:ident| $build:block) => {{
        let (call, status) = $self.caller();
        let mut tries = 0;
        loop {
            let ($client, $extra) = $self.prepare().await?;
            let request = $build;
            // A try that gets no answer must not be judged by the previous try's status.
            status.store(0, Ordering::Relaxed);
            match request.request_async(&call).await {
                Ok(answer) => break Ok(answer),
                Err(e) => match $self.judge(e, status.load(Ordering::Relaxed), tries).await {
                    Next::Retry => tries += 1,
                    Next::Fail(e) => break Err(e),
                },
            }
        }
    }};
}

/// Whether to try once more (with a re-read secret) or what the failure is.
enum Next {
    Retry,
    Fail(EndpointError),
}

/// Our registration at one authorization server and the endpoints we call.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) client_id: String,
    pub(crate) auth: ClientAuth,
    pub(crate) http: HttpClient,
    pub(crate) timeout: Duration,
    pub(crate) token: Option<TokenUrl>,
    pub(crate) introspection: Option<IntrospectionUrl>,
    pub(crate) revocation: Option<RevocationUrl>,
    /// The `aud` of our assertions: the issuer when known, else the token endpoint.
    pub(crate) audience: String,
    pub(crate) clock: SharedClock,
}

impl Endpoints {
    /// Endpoints of the provider `issuer` (our assertions' audience; `None`: the first
    /// endpoint set) for `client_id` with `auth`, on the system clock; URLs are checked by
    /// [`check_url`].
    pub(crate) fn new(
        client_id: &str,
        auth: &ClientAuth,
        http: &HttpClient,
        timeout: Duration,
        issuer: Option<&str>,
    ) -> Self {
        Self {
            client_id: client_id.to_owned(),
            auth: auth.clone(),
            http: http.clone(),
            timeout,
            token: None,
            introspection: None,
            revocation: None,
            audience: issuer.unwrap_or_default().to_owned(),
            clock: auth_core::clock::system_clock(),
        }
    }

    /// Checks `url`; the first endpoint set is also our assertions' default audience.
    fn endpoint(&mut self, url: &str) -> Result<url::Url, HttpError> {
        let url = check_url(url)?;
        if self.audience.is_empty() {
            self.audience = url.to_string();
        }
        Ok(url)
    }

    pub(crate) fn with_token(mut self, url: &str) -> Result<Self, HttpError> {
        self.token = Some(TokenUrl::from_url(self.endpoint(url)?));
        Ok(self)
    }

    pub(crate) fn with_introspection(mut self, url: &str) -> Result<Self, HttpError> {
        self.introspection = Some(IntrospectionUrl::from_url(self.endpoint(url)?));
        Ok(self)
    }

    pub(crate) fn with_revocation(mut self, url: Option<&str>) -> Result<Self, HttpError> {
        self.revocation = url
            .map(|u| self.endpoint(u))
            .transpose()?
            .map(RevocationUrl::from_url);
        Ok(self)
    }

    /// The oauth2 client and the extra parameters for one request.
    async fn prepare(&self) -> Result<(Client, Vec<(&'static str, String)>), EndpointError> {
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri_option(self.token.clone())
            .set_introspection_url_option(self.introspection.clone())
            .set_revocation_url_option(self.revocation.clone());
        let mut extra = Vec::new();
        match &self.auth {
            ClientAuth::SecretBasic(s) | ClientAuth::SecretPost(s) => {
                let secret = s.current().await;
                client = client
                    .set_client_secret(oauth2::ClientSecret::new(secret.expose_secret().to_owned()))
                    .set_auth_type(match &self.auth {
                        ClientAuth::SecretBasic(_) => AuthType::BasicAuth,
                        _ => AuthType::RequestBody,
                    });
            }
            ClientAuth::SecretJwt(_) | ClientAuth::PrivateKeyJwt(_) => {
                let jwt = assertion(
                    &self.auth,
                    &self.client_id,
                    &self.audience,
                    self.clock.now(),
                )
                .await
                .map_err(|e| EndpointError::Unavailable(e.to_string()))?
                .ok_or_else(|| EndpointError::Unavailable("no client assertion".into()))?;
                client = client.set_auth_type(AuthType::RequestBody);
                extra.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                extra.push(("client_assertion", jwt.to_string()));
            }
        }
        Ok((client, extra))
    }

    /// What to do after `failure` on try `tries` (0 or 1), whose answer had the HTTP
    /// status `status` (0: there was no answer). The status speaks first: 429 and 5xx are
    /// outages whatever the body says (a load balancer's 503 may carry any JSON). Then the
    /// OAuth error code; then a 4xx that carries none is the provider's refusal (a proxy's
    /// HTML 403 blocks the user as surely as `access_denied`). What is left (no answer, a
    /// 200 we cannot read, a redirect we do not follow) says nothing about the user: an
    /// outage.
    async fn judge<T: ErrorResponseType + AsRef<str> + std::fmt::Display>(
        &self,
        failure: Failure<T>,
        status: u16,
        tries: u8,
    ) -> Next {
        let overloaded = status == 429 || status >= 500;
        let failed = match failure {
            RequestTokenError::ServerResponse(answer) => {
                let code = answer.error().as_ref();
                let why = answer.error_description().map_or_else(
                    || provider_text(code),
                    |d| format!("{}: {}", provider_text(code), provider_text(d)),
                );
                match code {
                    _ if overloaded => EndpointError::Unavailable(format!(
                        "the provider is unavailable (HTTP {status}: {why})"
                    )),
                    "temporarily_unavailable" | "server_error" => {
                        EndpointError::Unavailable(format!("the provider is unavailable ({why})"))
                    }
                    "invalid_client" => {
                        if tries == 0 && self.secret_rotated().await {
                            return Next::Retry;
                        }
                        EndpointError::Misconfigured(format!(
                            "the provider refused our client authentication ({why})"
                        ))
                    }
                    "unauthorized_client" => EndpointError::Misconfigured(format!(
                        "the provider does not allow our client this request ({why})"
                    )),
                    _ => EndpointError::Refused(why),
                }
            }
            RequestTokenError::Request(e) => EndpointError::Unavailable(e.to_string()),
            // serde's message quotes the offending value, which may be a token: say only
            // where and what kind of error.
            RequestTokenError::Parse(e, _) => no_oauth_error(
                status,
                format!(
                    "unreadable answer at `{}` ({:?})",
                    e.path(),
                    e.inner().classify()
                ),
            ),
            RequestTokenError::Other(e) => no_oauth_error(status, provider_text(&e)),
        };
        Next::Fail(failed)
    }

    /// Whether our client secret comes from a store and changed there since we read it
    /// (read now, after the provider refused it): then the request is worth one more try.
    async fn secret_rotated(&self) -> bool {
        let Some(secret) = self.auth.secret() else {
            return false;
        };
        match secret.reread().await {
            Ok(true) => {
                tracing::info!(
                    "the provider refused our client secret; the rotated one from the store is used"
                );
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read the client secret");
                false
            }
        }
    }

    /// The function the oauth2 crate makes its requests with, and where it leaves the HTTP
    /// status of the answer it got: the crate's errors for an answer that is no token (an
    /// HTML page, an empty body) do not carry the status, and [`Self::judge`] needs it to
    /// tell a refusal from an outage.
    fn caller(
        &self,
    ) -> (
        impl Fn(oauth2::HttpRequest) -> Exchange + use<>,
        Arc<AtomicU16>,
    ) {
        let http = self.http.clone();
        let timeout = self.timeout;
        let status = Arc::new(AtomicU16::new(0));
        let seen = status.clone();
        let call = move |request: oauth2::HttpRequest| -> Exchange {
            let http = http.clone();
            let seen = seen.clone();
            Box::pin(async move {
                let answer = http.execute(request, timeout, MAX_ENDPOINT_ANSWER).await?;
                seen.store(answer.status().as_u16(), Ordering::Relaxed);
                Ok(answer)
            })
        };
        (call, status)
    }

    fn missing(what: &str) -> EndpointError {
        EndpointError::Unavailable(format!("no {what} endpoint is configured"))
    }

    /// The password grant for `user`.
    pub(crate) async fn password(
        &self,
        user: &str,
        password: &SecretString,
        scope: Option<&str>,
    ) -> Result<BasicTokenResponse, EndpointError> {
        let user = ResourceOwnerUsername::new(user.to_owned());
        let password = ResourceOwnerPassword::new(password.expose_secret().to_owned());
        with_retry!(self, |client, extra| {
            let mut request = client
                .exchange_password(&user, &password)
                .map_err(|_| Self::missing("token"))?;
            for (k, v) in extra {
                request = request.add_extra_param(k, v);
            }
            if let Some(s) = scope {
                request = request.add_scope(Scope::new(s.to_owned()));
            }
            request
        })
    }

    /// The refresh grant.
    pub(crate) async fn refresh(
        &self,
        refresh: &SecretString,
    ) -> Result<BasicTokenResponse, EndpointError> {
        let token = RefreshToken::new(refresh.expose_secret().to_owned());
        with_retry!(self, |client, extra| {
            let mut request = client
                .exchange_refresh_token(&token)
                .map_err(|_| Self::missing("token"))?;
            for (k, v) in extra {
                request = request.add_extra_param(k, v);
            }
            request
        })
    }

    /// The client-credentials grant.
    pub(crate) async fn client_credentials(
        &self,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<BasicTokenResponse, EndpointError> {
        with_retry!(self, |client, extra| {
            let mut request = client
                .exchange_client_credentials()
                .map_err(|_| Self::missing("token"))?;
            for (k, v) in extra {
                request = request.add_extra_param(k, v);
            }
            if let Some(s) = scope {
                request = request.add_scope(Scope::new(s.to_owned()));
            }
            if let Some(r) = resource {
                request = request.add_extra_param("resource", r.to_owned());
            }
            request
        })
    }

    /// Introspects `token` (RFC 7662) with the hint `access_token`.
    pub(crate) async fn introspect(
        &self,
        token: &str,
    ) -> Result<BasicTokenIntrospectionResponse, EndpointError> {
        let token = AccessToken::new(token.to_owned());
        with_retry!(self, |client, extra| {
            let mut request = client
                .introspect(&token)
                .map_err(|_| Self::missing("introspection"))?
                .set_token_type_hint("access_token");
            for (k, v) in extra {
                request = request.add_extra_param(k, v);
            }
            request
        })
    }

    /// Revokes `token` (RFC 7009).
    pub(crate) async fn revoke(&self, token: StandardRevocableToken) -> Result<(), EndpointError> {
        with_retry!(self, |client, extra| {
            let mut request = client
                .revoke_token(token.clone())
                .map_err(|_| Self::missing("revocation"))?;
            for (k, v) in extra {
                request = request.add_extra_param(Cow::Borrowed(k), v);
            }
            request
        })
    }
}

/// How long a token answer's access token lives: its `expires_in` (else `default`),
/// between 1 second and 1 day whatever the provider says, so a hostile or broken answer
/// can neither overflow a time nor make every call fetch a new token.
pub(crate) fn lifetime(answer: &BasicTokenResponse, default: Duration) -> Duration {
    answer
        .expires_in()
        .unwrap_or(default)
        .clamp(Duration::from_secs(1), Duration::from_secs(86_400))
}

/// The failure of an answer with HTTP `status` that is no OAuth error (`what` says what it
/// is instead): a 4xx other than 429 is the provider's refusal, anything else (429, 5xx,
/// a 200 we cannot read, a redirect we do not follow) an outage.
fn no_oauth_error(status: u16, what: String) -> EndpointError {
    match status {
        0 => EndpointError::Unavailable(what),
        429 => {
            EndpointError::Unavailable(format!("the provider is unavailable (HTTP 429: {what})"))
        }
        400..=499 => EndpointError::Refused(format!("HTTP {status} ({what})")),
        _ => EndpointError::Unavailable(format!("HTTP {status}: {what}")),
    }
}

/// Text from the provider for our logs: at most 200 characters, control characters
/// escaped (a provider must not be able to forge log lines or flood them).
fn provider_text(text: &str) -> String {
    text.chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect()
}
