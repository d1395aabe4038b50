//! The request's credential, read from its headers.

use auth_core::{Credential, Error, Failure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The default header an API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// RFC 6750 2.1's b64token characters, as a table: every request's token passes through
/// this check, and a lookup per byte is several times cheaper than a chain of comparisons.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    table
};

/// The largest Negotiate (SPNEGO) token accepted, decoded. Kerberos tickets with a PAC
/// reach a few KiB; 64 KiB is what Windows servers allow in a header.
pub const MAX_NEGOTIATE_TOKEN: usize = 64 * 1024;

/// The credential in `headers`: `Authorization: Bearer`, `Basic` or `Negotiate` (RFC
/// 4559, a GSS-API token), else the API-key header, else [`Credential::Absent`] (also for a scheme no method here understands, so
/// the client is challenged rather than told its request is broken).
///
/// A header that is present but unreadable (two `Authorization` headers, non-ASCII, an
/// empty token, broken Basic encoding) is a [`Error::Malformed`] failure.
pub fn credential_from_headers(
    headers: &HeaderMap,
    api_key_header: &str,
) -> Result<Credential, Failure> {
    let malformed = |detail: &'static str| Failure::new(Error::Malformed, detail);
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Err(malformed("more than one Authorization header"));
        }
        let value = value
            .to_str()
            .map_err(|_| malformed("Authorization header is not visible ASCII"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim_matches(' ');
            if token.is_empty() || !token.bytes().all(|b| B64TOKEN[usize::from(b)]) {
                return Err(malformed("Bearer token empty or not a b64token"));
            }
            return Ok(Credential::bearer(token));
        }
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
            return auth_password::parse_basic(value)
                .map_err(|e| Failure::new(e.error(), e.to_string()));
        }
        return Ok(Credential::Absent);
    }
    match headers.get(api_key_header) {
        None => Ok(Credential::Absent),
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| malformed("API key header is not visible ASCII"))?;
            if key.is_empty() {
                return Err(malformed("empty API key header"));
            }
            Ok(Credential::api_key(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::CredentialKind;
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
            Ok(CredentialKind::Absent)
        );
        for bad in [
            &[("authorization", "Bearer ")][..],
            &[("authorization", "Bearer a b")],
            &[("authorization", "Bearer a\"b")],
            &[("authorization", "Basic !!!")],
            &[("authorization", "Negotiate")],
            &[("authorization", "Negotiate !!!")],
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
            &[("x-api-key", "")],
        ] {
            assert_eq!(kind(bad), Err(Error::Malformed), "{bad:?}");
        }
    }
}
