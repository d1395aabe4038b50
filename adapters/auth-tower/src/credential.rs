//! The request's credential, read from its headers.

use auth_core::{Credential, CredentialError, Failure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The default header an API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Whether `token` is an RFC 6750 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`. The character check is written without early exit so the compiler
/// vectorizes it: every request's token (often 500+ bytes) passes through here.
fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty()
        && body.iter().fold(true, |ok, &b| {
            let letter = (b | 0x20).wrapping_sub(b'a') < 26;
            let digit = b.wrapping_sub(b'0') < 10;
            let other = matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            ok & (letter | digit | other)
        })
}

fn trim_spaces(mut bytes: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' '] = bytes {
        bytes = rest;
    }
    bytes
}

/// The token of an `Authorization: Bearer` value, `None` for another scheme.
fn bearer_token(value: &[u8]) -> Option<Result<&str, Failure>> {
    let space = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = trim_spaces(&value[space..]);
    if !is_b64token(token) {
        return Some(Err(Failure::new(
            CredentialError::Malformed,
            "Bearer token empty or not a b64token",
        )));
    }
    // b64token characters are ASCII, so this cannot fail.
    Some(
        std::str::from_utf8(token)
            .map_err(|_| Failure::new(CredentialError::Malformed, "Bearer token is not ASCII")),
    )
}

/// The bearer token of a request whose only credential is a well-formed
/// `Authorization: Bearer`, read without copying it; `None` for anything else.
pub(crate) fn presented_bearer(headers: &HeaderMap) -> Option<&str> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let value = authorization.next()?;
    if authorization.next().is_some() {
        return None;
    }
    bearer_token(value.as_bytes())?.ok()
}

/// The largest Negotiate (SPNEGO) token accepted, decoded. Kerberos tickets with a PAC
/// reach a few KiB; 64 KiB is what Windows servers allow in a header.
pub const MAX_NEGOTIATE_TOKEN: usize = 64 * 1024;

/// The credential in `headers`: `Authorization: Bearer`, `Basic` or `Negotiate` (RFC
/// 4559, a GSS-API token), else the API-key header, else [`Credential::Absent`].
///
/// A header that is present but unreadable (two `Authorization` or API-key headers,
/// non-ASCII, an empty token, broken Basic encoding) is an [`CredentialError::Malformed`] failure.
/// An `Authorization` scheme no method here understands (`Digest`) is an
/// [`CredentialError::Missing`] failure: the client is challenged with the schemes that
/// work, and a route open to anonymous callers does not treat it as no credential.
pub fn credential_from_headers(
    headers: &HeaderMap,
    api_key_header: &str,
) -> Result<Credential, Failure> {
    let malformed = |detail: &'static str| Failure::new(CredentialError::Malformed, detail);
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Err(malformed("more than one Authorization header"));
        }
        if let Some(token) = bearer_token(value.as_bytes()) {
            return token.map(Credential::bearer);
        }
        let value = value
            .to_str()
            .map_err(|_| malformed("Authorization header is not visible ASCII"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("negotiate") {
            let token = rest.trim_matches(' ');
            if token.is_empty() || token.len() > MAX_NEGOTIATE_TOKEN.div_ceil(3) * 4 {
                return Err(malformed("Negotiate token empty or too long"));
            }
            let bytes = B64
                .decode(token)
                .map_err(|_| malformed("Negotiate token is not base64"))?;
            return Ok(Credential::GssToken(bytes));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return crate::basic::parse_basic(value)
                .map_err(|e| Failure::new(e.error(), e.to_string()));
        }
        return Err(Failure::new(
            CredentialError::Missing,
            "unsupported Authorization scheme",
        ));
    }
    let mut keys = headers.get_all(api_key_header).iter();
    let Some(key) = keys.next() else {
        return Ok(Credential::Absent);
    };
    if keys.next().is_some() {
        return Err(malformed("more than one API key header"));
    }
    let key = key
        .to_str()
        .map_err(|_| malformed("API key header is not visible ASCII"))?;
    if key.is_empty() {
        return Err(malformed("empty API key header"));
    }
    Ok(Credential::api_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::CredentialKind;
    use auth_core::Error;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn kind(pairs: &[(&str, &str)]) -> Result<CredentialKind, Error> {
        credential_from_headers(&headers(pairs), API_KEY_HEADER)
            .map(|c| c.kind())
            .map_err(|f| f.error)
    }

    #[test]
    fn schemes() {
        assert_eq!(kind(&[]), Ok(CredentialKind::Absent));
        assert_eq!(
            kind(&[("authorization", "Bearer abc.def-_~+/=")]),
            Ok(CredentialKind::Bearer)
        );
        assert_eq!(
            kind(&[("authorization", "bearer x")]),
            Ok(CredentialKind::Bearer)
        );
        assert_eq!(
            kind(&[("authorization", "Basic YWxpY2U6cHc=")]),
            Ok(CredentialKind::Password)
        );
        assert_eq!(
            kind(&[("authorization", "Negotiate YWJj")]),
            Ok(CredentialKind::Gss)
        );
        assert_eq!(kind(&[("x-api-key", "k")]), Ok(CredentialKind::ApiKey));
        assert_eq!(
            kind(&[("authorization", "Digest x")]),
            Err(Error::Credential(CredentialError::Missing)),
            "an unknown scheme is not the absence of a credential"
        );
        assert_eq!(
            kind(&[("authorization", "Bearer  abc ")]),
            Ok(CredentialKind::Bearer)
        );
        for token in [
            "abc\u{e9}",
            "a b",
            "a,b",
            "a@b",
            "a[b",
            "a=b",
            "=abc",
            "===",
            "",
        ] {
            assert!(!is_b64token(token.as_bytes()), "{token}");
        }
        assert!(is_b64token(b"abc=="));
        assert!(is_b64token(b"ABCXYZabcxyz0189-._~+/="));
        for bad in [
            &[("authorization", "Bearer ")][..],
            &[("authorization", "Bearer a b")],
            &[("authorization", "Bearer a\"b")],
            &[("authorization", "Basic !!!")],
            &[("authorization", "Negotiate")],
            &[("authorization", "Negotiate !!!")],
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
            &[("x-api-key", "")],
            &[("x-api-key", "a"), ("x-api-key", "b")],
        ] {
            assert_eq!(
                kind(bad),
                Err(Error::Credential(CredentialError::Malformed)),
                "{bad:?}"
            );
        }
    }
}
