//! Client authentication at an authorization server's endpoints (RFC 6749 2.3.1), shared
//! by introspection, revocation and the token grants.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// How the client authenticates to the authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A form POST of `form` to `url`, authenticated as `client_id` with `secret`.
///
/// RFC 6749 2.3.1 has both halves of Basic credentials form-encoded before base64, so a
/// secret holding `+`, `%` or `:` reaches a conforming server intact. The secret's copies
/// made here are zeroized; the request's own copy is marked sensitive.
pub(crate) fn post_form<K: AsRef<str>, V: AsRef<str>>(
    http: &reqwest::Client,
    url: &str,
    auth: ClientAuth,
    client_id: &str,
    secret: &SecretString,
    form: &[(K, V)],
) -> reqwest::RequestBuilder {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(form);
    let mut request = http.post(url);
    match auth {
        ClientAuth::Basic => {
            let pair = Zeroizing::new(format!(
                "{}:{}",
                form_encode(client_id),
                Zeroizing::new(form_encode(secret.expose_secret())).as_str()
            ));
            let header = Zeroizing::new(format!("Basic {}", B64.encode(pair.as_bytes())));
            // Base64 and form encoding leave only visible ASCII, always a valid header.
            if let Ok(mut value) = HeaderValue::from_str(&header) {
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
        }
        ClientAuth::Post => {
            body.append_pair("client_id", client_id);
            body.append_pair("client_secret", secret.expose_secret());
        }
    }
    request
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_and_sensitive() {
        let http = reqwest::Client::new();
        let secret = SecretString::from("a+b/c:d%e f".to_owned());
        let request = post_form(
            &http,
            "http://127.0.0.1:9/token",
            ClientAuth::Basic,
            "svc:1",
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .build()
        .unwrap();
        let header = request.headers().get(AUTHORIZATION).unwrap();
        assert!(header.is_sensitive());
        let decoded = B64
            .decode(header.to_str().unwrap().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"svc%3A1:a%2Bb%2Fc%3Ad%25e+f");
        let body = request.body().unwrap().as_bytes().unwrap();
        assert_eq!(body, b"grant_type=client_credentials");
    }

    #[test]
    fn post_credentials_go_in_the_body() {
        let http = reqwest::Client::new();
        let secret = SecretString::from("s&t=u".to_owned());
        let request = post_form(
            &http,
            "http://127.0.0.1:9/token",
            ClientAuth::Post,
            "svc",
            &secret,
            &[("token", "x")],
        )
        .build()
        .unwrap();
        assert!(request.headers().get(AUTHORIZATION).is_none());
        assert_eq!(
            request.body().unwrap().as_bytes().unwrap(),
            b"token=x&client_id=svc&client_secret=s%26t%3Du"
        );
    }
}
