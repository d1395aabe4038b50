//! A failure as an HTTP response: the HTTP column of the error mapping (status and RFC 6750
//! `error` code), `WWW-Authenticate` challenges, and an RFC 9457 problem+json body that
//! says nothing a client could probe with.

use auth_core::{AuthorizationError, ConfigurationError, CredentialError, Error};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::layer::Challenge;

fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The HTTP status for `error`.
///
/// | kind | status |
/// |---|---|
/// | credential: malformed, weak password | 400 |
/// | missing role or scope | 403 |
/// | rate limited | 429 |
/// | infrastructure | 503 |
/// | configuration invalid, missing, insecure | 500 |
/// | every other credential, account and authorization kind, requirement unmet | 401 |
///
/// ```
/// use auth_core::{AuthorizationError, CredentialError};
/// use axum::http::StatusCode;
///
/// assert_eq!(auth_axum::http_status(CredentialError::Invalid.into()), StatusCode::UNAUTHORIZED);
/// assert_eq!(auth_axum::http_status(AuthorizationError::MissingScope.into()), StatusCode::FORBIDDEN);
/// ```
pub fn http_status(error: Error) -> StatusCode {
    use AuthorizationError as Z;
    match error {
        Error::Credential(CredentialError::Malformed | CredentialError::WeakPassword) => {
            StatusCode::BAD_REQUEST
        }
        Error::Authorization(Z::MissingRole | Z::MissingScope) => StatusCode::FORBIDDEN,
        Error::Authorization(Z::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
        Error::Infrastructure(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Configuration(
            ConfigurationError::Invalid
            | ConfigurationError::Missing
            | ConfigurationError::Insecure,
        ) => StatusCode::INTERNAL_SERVER_ERROR,
        // Every other refusal, and any kind a later auth-core adds: ask for credentials.
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The RFC 6750 `error` parameter of the `Bearer` challenge for `error`, when one applies.
/// A request without credentials gets none (RFC 6750 section 3.1), nor does a refusal
/// that is not about the token (policy, rate limit, outage).
///
/// | kind | code |
/// |---|---|
/// | credential: malformed, weak password | `invalid_request` |
/// | credential: invalid, expired, bad signature, untrusted issuer, missing claim; every account kind | `invalid_token` |
/// | missing role or scope | `insufficient_scope` |
/// | the rest | (none) |
pub fn bearer_error(error: Error) -> Option<&'static str> {
    use CredentialError as C;
    match error {
        Error::Credential(C::Malformed | C::WeakPassword) => Some("invalid_request"),
        Error::Credential(
            C::Invalid | C::Expired | C::BadSignature | C::UntrustedIssuer | C::MissingClaim,
        )
        | Error::Account(_) => Some("invalid_token"),
        Error::Authorization(
            AuthorizationError::MissingRole | AuthorizationError::MissingScope,
        ) => Some("insufficient_scope"),
        _ => None,
    }
}

/// The response for `error`: a 401 carries one `WWW-Authenticate` challenge per method in
/// `challenges` (the Bearer one with its RFC 6750 `error`, none when nothing was
/// presented); a 400 or 403 only the Bearer one, when Bearer is offered (with `scope` for
/// `insufficient_scope`); 429 and 503 carry none.
pub fn failure_response(
    error: Error,
    challenges: &[Challenge],
    realm: &str,
    scope: Option<&str>,
) -> Response {
    let status = http_status(error);
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": auth_tower::public_message(error),
    });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    // A 401 offers every scheme (RFC 7235 4.1); a 400 or 403 is about the bearer request
    // that was made, so only Bearer says why (RFC 6750 3.1).
    let offered: &[Challenge] = match status.as_u16() {
        401 => challenges,
        400 | 403 if challenges.contains(&Challenge::Bearer) => &[Challenge::Bearer],
        _ => &[],
    };
    for challenge in offered {
        let mut text = match challenge {
            Challenge::Bearer => format!("Bearer realm=\"{}\"", quoted(realm)),
            Challenge::Basic => format!("Basic realm=\"{}\", charset=\"UTF-8\"", quoted(realm)),
            Challenge::Negotiate => "Negotiate".to_owned(),
            Challenge::ApiKey => continue, // no standard challenge exists
        };
        if *challenge == Challenge::Bearer {
            if let Some(code) = bearer_error(error) {
                text.push_str(&format!(", error=\"{code}\""));
            }
            if let Some(scope) = scope {
                text.push_str(&format!(", scope=\"{}\"", quoted(scope)));
            }
        }
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.append(WWW_AUTHENTICATE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::{AccountError, InfrastructureError};

    #[test]
    fn the_http_column() {
        let cases: [(Error, u16, Option<&str>); 9] = [
            (CredentialError::Missing.into(), 401, None),
            (
                CredentialError::Malformed.into(),
                400,
                Some("invalid_request"),
            ),
            (CredentialError::Invalid.into(), 401, Some("invalid_token")),
            (
                CredentialError::BadSignature.into(),
                401,
                Some("invalid_token"),
            ),
            (AccountError::Disabled.into(), 401, Some("invalid_token")),
            (AuthorizationError::Rejected.into(), 401, None),
            (
                AuthorizationError::MissingScope.into(),
                403,
                Some("insufficient_scope"),
            ),
            (AuthorizationError::RateLimited.into(), 429, None),
            (InfrastructureError::Unavailable.into(), 503, None),
        ];
        for (error, status, code) in cases {
            assert_eq!(http_status(error).as_u16(), status, "{error:?}");
            assert_eq!(bearer_error(error), code, "{error:?}");
        }
        for error in Error::ALL {
            let s = http_status(error).as_u16();
            assert!([400, 401, 403, 429, 500, 503].contains(&s), "{error:?}");
            // Only a 401, 400 or 403 can carry a Bearer error code.
            assert!(bearer_error(error).is_none() || [400, 401, 403].contains(&s));
        }
    }
}
