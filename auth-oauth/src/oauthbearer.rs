//! OAUTHBEARER (RFC 7628), the SASL mechanism PostgreSQL 18 clients log in with: the
//! client's initial response carries a bearer token, which a bearer-token authenticator
//! ([`JwtAuthenticator`](crate::JwtAuthenticator) or
//! [`IntrospectionAuthenticator`](crate::IntrospectionAuthenticator)) validates.
//!
//! The exchange is PostgreSQL's: a good token ends the exchange with no server message
//! (the adapter answers AuthenticationOk; libpq fails on "unexpected additional OAuth
//! data" otherwise). A refused token, or an empty one (a client asking where to get a
//! token), is answered with the RFC 7628 error JSON naming the issuer's discovery document
//! and the scope; the client must answer with a single `0x01`, and the exchange fails.

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::{
    Attempt, Authenticator, AuthorizationError, Credential, CredentialError, CredentialKind, Error,
    Failure, Outcome,
};
use secrecy::{ExposeSecret, SecretString};

use crate::client_auth::ConfigError;
use crate::http::{HttpError, check_url, redacted};

/// The SASL mechanism name.
pub const OAUTHBEARER: &str = "OAUTHBEARER";

/// The suffix a bare issuer gets for its discovery document (OpenID Connect Discovery).
const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";

/// The largest initial response accepted: a token is a few kilobytes at most.
const MAX_MESSAGE: usize = 64 * 1024;

/// Validates OAUTHBEARER logins with a bearer-token authenticator.
///
/// # Example
///
/// The token here is checked by a stand-in validator; a server uses a
/// [`JwtAuthenticator`](crate::JwtAuthenticator) or an
/// [`IntrospectionAuthenticator`](crate::IntrospectionAuthenticator):
///
/// ```
/// use std::sync::Arc;
/// use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, CredentialKind, Outcome,
///     Protocol, StandardSession};
/// use auth_oauth::OAuthBearer;
/// use secrecy::ExposeSecret;
///
/// /// Accepts the one token `good`, as the identity `alice`.
/// #[derive(Debug)]
/// struct OneToken;
///
/// #[async_trait::async_trait]
/// impl Authenticator for OneToken {
///     fn name(&self) -> &str { "oauth" }
///     fn accepts(&self) -> &[CredentialKind] { &[CredentialKind::Bearer] }
///     async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
///         match &attempt.credential {
///             Credential::Bearer(t) if t.expose_secret() == "good" => {
///                 let session = StandardSession::new("alice", "oauth", attempt.now())
///                     .with_scopes(["pg"]);
///                 Outcome::Authenticated(Box::new(session))
///             }
///             _ => Outcome::rejected(auth_core::CredentialError::Invalid, "unknown token"),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bearer = OAuthBearer::new(Arc::new(OneToken), "https://idp.example", "pg")?;
/// assert_eq!(bearer.discovery_url(), "https://idp.example/.well-known/openid-configuration");
///
/// // What a PostgreSQL 18 client sends first: GS2 header, then `auth=Bearer <token>`.
/// let initial = b"n,,\x01auth=Bearer good\x01\x01".to_vec();
/// let connection = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.5:40000".parse()?);
/// let credential = Credential::Sasl { mechanism: "OAUTHBEARER".into(), initial: Some(initial.into()) };
/// let outcome = bearer.authenticate(&mut Attempt::new(connection, credential)).await;
/// assert_eq!(outcome.session().map(|s| s.principal().to_owned()).as_deref(), Some("alice"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OAuthBearer {
    validator: Arc<dyn Authenticator>,
    discovery: String,
    scope: String,
    required: Vec<String>,
    error_body: Vec<u8>,
}

impl OAuthBearer {
    /// Validates tokens with `validator` (an authenticator of [`Credential::Bearer`]), and
    /// tells clients that have none to get one from `issuer` with `scope` (space-separated).
    ///
    /// `issuer` is the issuer identifier (its discovery document is then
    /// `<issuer>/.well-known/openid-configuration`) or the discovery document's URL itself
    /// (anything containing `/.well-known/`); libpq insists that it is `https`. Every word
    /// of `scope` must be among a token's scopes; [`Self::with_required_scopes`] changes
    /// that.
    pub fn new(
        validator: Arc<dyn Authenticator>,
        issuer: &str,
        scope: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let discovery = if issuer.contains("/.well-known/") {
            issuer.to_owned()
        } else {
            format!("{}{OPENID_CONFIGURATION}", issuer.trim_end_matches('/'))
        };
        let parsed = check_url(&discovery)?;
        if parsed.scheme() != "https" {
            return Err(HttpError::Url {
                url: redacted(&discovery),
                why: "PostgreSQL clients accept only an https issuer",
            }
            .into());
        }
        if discovery.contains('"') || discovery.contains('\\') {
            return Err(HttpError::Url {
                url: redacted(&discovery),
                why: "quotes and backslashes are not allowed in the advertised issuer",
            }
            .into());
        }
        let scope = scope.into();
        Ok(Self {
            validator,
            required: scope.split_whitespace().map(str::to_owned).collect(),
            error_body: error_json(&discovery, &scope),
            discovery,
            scope,
        })
    }

    /// Requires `scopes` of every token instead of the advertised ones (none: any token
    /// the validator accepts).
    #[must_use]
    pub fn with_required_scopes(mut self, scopes: Vec<String>) -> Self {
        self.required = scopes;
        self
    }

    /// The discovery document's URL the error answer advertises.
    pub fn discovery_url(&self) -> &str {
        &self.discovery
    }

    /// The scope the error answer advertises.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Sends the error answer, waits for the client's `0x01`, and fails with `failure`
    /// (or with the protocol violation the client's answer was).
    async fn refuse(&self, attempt: &mut Attempt, failure: Failure) -> Outcome {
        let Some(conversation) = attempt.conversation() else {
            return Outcome::Rejected(failure);
        };
        match conversation.exchange(self.error_body.clone()).await {
            Ok(answer) if answer == [KVSEP] => Outcome::Rejected(failure),
            Ok(_) => Outcome::rejected(
                CredentialError::Malformed,
                "OAUTHBEARER: the client answered the error with something other than 0x01",
            ),
            Err(auth_core::ConversationError::RateLimited) => {
                Outcome::rejected(AuthorizationError::RateLimited, failure.detail)
            }
            Err(e) => Outcome::Rejected(Failure::new(
                failure.error,
                format!("{}; then {e}", failure.detail),
            )),
        }
    }

    /// Whether `session` holds every required scope; the missing one otherwise.
    fn missing_scope<'a>(&'a self, granted: &[String]) -> Option<&'a str> {
        self.required
            .iter()
            .find(|r| !granted.iter().any(|g| g == *r))
            .map(String::as_str)
    }
}

/// The RFC 7628 error answer (section 3.2.2) naming `discovery` and `scope`.
fn error_json(discovery: &str, scope: &str) -> Vec<u8> {
    let mut body = serde_json::json!({
        "status": "invalid_token",
        "openid-configuration": discovery,
    });
    if !scope.is_empty() {
        body["scope"] = scope.into();
    }
    body.to_string().into_bytes()
}

/// The separator of RFC 7628's key-value pairs.
const KVSEP: u8 = 0x01;

/// What the client's initial response asks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// `auth=` with nothing: which issuer and scope to get a token for.
    Discovery,
    /// The `auth` value (`Bearer <token>`, not yet checked).
    Auth(&'a str),
}

/// Parses an initial response (RFC 7628 section 3.1): a GS2 header without channel
/// binding or authorization identity, then key-value pairs, exactly one of them `auth`.
pub(crate) fn parse_initial(message: &[u8]) -> Result<Request<'_>, &'static str> {
    if message.len() > MAX_MESSAGE {
        return Err("the message is too large");
    }
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8")?;
    let rest = match text.as_bytes().first() {
        Some(b'n' | b'y') => &text[1..],
        Some(b'p') => return Err("channel binding is not supported for OAUTHBEARER"),
        _ => return Err("the GS2 header is malformed"),
    };
    let rest = rest
        .strip_prefix(',')
        .ok_or("the GS2 header is malformed")?;
    let (authzid, rest) = rest.split_once(',').ok_or("the GS2 header is malformed")?;
    if !authzid.is_empty() {
        return Err("an authorization identity is not supported");
    }
    let mut pairs = rest
        .strip_prefix(KVSEP as char)
        .ok_or("the GS2 header is not followed by key-value pairs")?;
    let mut auth = None;
    loop {
        if pairs == "\u{1}" {
            break;
        }
        if pairs.starts_with(KVSEP as char) {
            return Err("there is data after the end of the message");
        }
        let (pair, tail) = pairs
            .split_once(KVSEP as char)
            .ok_or("the key-value pairs are not terminated")?;
        let (key, value) = pair.split_once('=').ok_or("a key-value pair has no `=`")?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err("a key is not alphabetic");
        }
        if !value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
        {
            return Err("a value has characters RFC 7628 does not allow");
        }
        if key == "auth" && auth.replace(value).is_some() {
            return Err("more than one auth value");
        }
        pairs = tail;
    }
    match auth {
        None => Err("the message has no auth value"),
        Some("") => Ok(Request::Discovery),
        Some(value) => Ok(Request::Auth(value)),
    }
}

/// The token of an `auth` value (`Bearer <b64token>`, RFC 6750 section 2.1), as
/// PostgreSQL reads it: the scheme in any case, spaces after it, `=` only at the end.
pub(crate) fn bearer_token(auth: &str) -> Result<&str, &'static str> {
    const SCHEME: &str = "bearer ";
    let scheme = auth.get(..SCHEME.len()).ok_or("not a Bearer value")?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err("not a Bearer value");
    }
    let token = auth[SCHEME.len()..].trim_start_matches(' ');
    if token.is_empty() {
        return Err("the bearer token is empty");
    }
    let body = token.trim_end_matches('=');
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    if body.is_empty() || !body.bytes().all(allowed) {
        return Err("the bearer token is not in the correct format");
    }
    Ok(token)
}

#[async_trait]
impl Authenticator for OAuthBearer {
    fn name(&self) -> &str {
        self.validator.name()
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Sasl(OAUTHBEARER)]
    }

    /// The SASL message carries a bearer token: whoever reads it can replay it.
    fn transport(&self) -> auth_core::Transport {
        auth_core::Transport::Encrypted
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Sasl { mechanism, initial } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        if mechanism != OAUTHBEARER {
            return Outcome::NotApplicable;
        }
        // Read in place: the message holds the token, and the credential wipes it.
        let message = initial.as_ref().map_or(&[][..], |m| m.expose_secret());
        let auth = match parse_initial(message) {
            Ok(Request::Discovery) => {
                metrics::counter!(crate::OAUTHBEARER_DISCOVERY_METRIC).increment(1);
                // Not a failed login: the client asks where to get a token, and retries.
                let failure = Failure::new(
                    CredentialError::Missing,
                    "OAUTHBEARER discovery: the client asked for the issuer and scope",
                );
                return self.refuse(attempt, failure).await;
            }
            Ok(Request::Auth(auth)) => auth,
            Err(why) => {
                return Outcome::rejected(
                    CredentialError::Malformed,
                    format!("malformed OAUTHBEARER message: {why}"),
                );
            }
        };
        let token = match bearer_token(auth) {
            Ok(token) => SecretString::from(token.to_owned()),
            Err(why) => {
                let failure = Failure::new(
                    CredentialError::Invalid,
                    format!("malformed OAuth bearer token: {why}"),
                );
                return self.refuse(attempt, failure).await;
            }
        };
        let sasl = std::mem::replace(&mut attempt.credential, Credential::Bearer(token));
        let outcome = self.validator.authenticate(attempt).await;
        attempt.credential = sasl;
        match outcome {
            Outcome::Authenticated(session) => match self.missing_scope(session.scopes()) {
                None => Outcome::Authenticated(session),
                Some(scope) => {
                    let failure = Failure::new(
                        Error::Authorization(AuthorizationError::MissingScope),
                        format!(
                            "the token of `{}` lacks the scope `{scope}`",
                            session.principal()
                        ),
                    );
                    self.refuse(attempt, failure).await
                }
            },
            // A token that does not even parse arrived in a well-formed message: for
            // OAUTHBEARER that is an invalid token, as PostgreSQL reports it.
            Outcome::Rejected(Failure {
                error: Error::Credential(CredentialError::Malformed),
                detail,
            }) => {
                let failure = Failure::new(CredentialError::Invalid, detail);
                self.refuse(attempt, failure).await
            }
            Outcome::Rejected(failure) => self.refuse(attempt, failure).await,
            Outcome::AccountRefused { error, detail } => {
                self.refuse(attempt, Failure::new(error, detail)).await
            }
            Outcome::NotApplicable => {
                let failure = Failure::new(
                    CredentialError::Unsupported,
                    format!("`{}` does not judge bearer tokens", self.validator.name()),
                );
                self.refuse(attempt, failure).await
            }
            // An outage is not the token's fault: no error answer invites a retry with it.
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_as_libpq_sends_them() {
        assert_eq!(
            parse_initial(b"n,,\x01auth=Bearer abc.def-_~+/==\x01\x01"),
            Ok(Request::Auth("Bearer abc.def-_~+/=="))
        );
        assert_eq!(
            parse_initial(b"n,,\x01auth=\x01\x01"),
            Ok(Request::Discovery)
        );
        assert_eq!(
            parse_initial(b"y,,\x01host=db\x01port=5432\x01auth=Bearer t\x01\x01"),
            Ok(Request::Auth("Bearer t"))
        );
    }

    #[test]
    fn malformed_messages_say_why() {
        for (message, why) in [
            (&b""[..], "GS2 header"),
            (
                b"p=tls-server-end-point,,\x01auth=Bearer t\x01\x01",
                "channel binding",
            ),
            (
                b"n,a=alice,\x01auth=Bearer t\x01\x01",
                "authorization identity",
            ),
            (b"n,,auth=Bearer t\x01\x01", "key-value pairs"),
            (b"n,,\x01auth=Bearer t\x01", "not terminated"),
            (b"n,,\x01auth=Bearer t\x01\x01extra", "after the end"),
            (b"n,,\x01\x01", "no auth value"),
            (b"n,,\x01auth=a\x01auth=b\x01\x01", "more than one"),
            (b"n,,\x01au th=x\x01\x01", "not alphabetic"),
            (b"n,,\x01auth=Bearer \x7f\x01\x01", "does not allow"),
            (b"n,,\x01auth\x01\x01", "no `=`"),
            (b"n,,\x01auth=\xff\x01\x01", "UTF-8"),
        ] {
            let err = parse_initial(message).unwrap_err();
            assert!(err.contains(why), "{message:?}: {err}");
        }
        assert!(parse_initial(&vec![b'n'; MAX_MESSAGE + 1]).is_err());
    }

    #[test]
    fn tokens_as_postgresql_reads_them() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bEaReR    abc=="), Ok("abc=="));
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearer a=b",
            "Bearer a b",
            "Bearer ==",
            "Bearerabc",
        ] {
            assert!(bearer_token(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug)]
    struct Never;

    #[async_trait]
    impl Authenticator for Never {
        fn name(&self) -> &str {
            "never"
        }
        fn accepts(&self) -> &[CredentialKind] {
            &[CredentialKind::Bearer]
        }
        async fn authenticate(&self, _: &mut Attempt) -> Outcome {
            Outcome::rejected(CredentialError::Invalid, "no")
        }
    }

    #[test]
    fn the_advertised_issuer_is_https_and_its_error_json_is_rfc_7628() {
        let b = OAuthBearer::new(Arc::new(Never), "https://idp.example/", "openid pg").unwrap();
        assert_eq!(
            b.discovery_url(),
            "https://idp.example/.well-known/openid-configuration"
        );
        let json: serde_json::Value = serde_json::from_slice(&b.error_body).unwrap();
        assert_eq!(json["status"], "invalid_token");
        assert_eq!(json["scope"], "openid pg");
        assert_eq!(json["openid-configuration"], b.discovery_url());
        let explicit = "https://idp.example/.well-known/oauth-authorization-server";
        let b = OAuthBearer::new(Arc::new(Never), explicit, "").unwrap();
        assert_eq!(b.discovery_url(), explicit);
        assert!(
            b.error_body.len() > 10
                && !String::from_utf8(b.error_body.clone())
                    .unwrap()
                    .contains("scope")
        );
        for bad in ["http://127.0.0.1:1", "not a url", "https://idp.example/\"x"] {
            assert!(
                OAuthBearer::new(Arc::new(Never), bad, "pg").is_err(),
                "{bad}"
            );
        }
    }
}
