//! A failure as an HTTP response: status and `WWW-Authenticate` from auth-core's mapping
//! table, and an RFC 9457 problem+json body that says nothing a client could probe with.

use auth_core::Error;
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::layer::Challenge;

fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
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
    let mapping = error.mapping();
    let status =
        StatusCode::from_u16(mapping.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
            if let Some(code) = mapping.bearer_error {
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
