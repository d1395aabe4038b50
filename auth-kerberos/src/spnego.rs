//! HTTP Negotiate (SPNEGO, RFC 4559) framing: what an HTTP adapter needs around the
//! [`GssAuthenticator`](crate::GssAuthenticator).

use auth_core::Credential;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The `WWW-Authenticate` challenge when a client sent no Negotiate token.
pub const CHALLENGE: &str = "Negotiate";

/// Why an `Authorization: Negotiate` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiateError {
    /// Another scheme.
    #[error("not a Negotiate authorization")]
    NotNegotiate,
    /// No token, bad base64, or over 64 KiB.
    #[error("malformed Negotiate token")]
    Malformed,
}

/// Parses `Negotiate <base64 token>` into a [`Credential::GssToken`].
pub fn parse_negotiate(header: &str) -> Result<Credential, NegotiateError> {
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("negotiate") {
        return Err(NegotiateError::NotNegotiate);
    }
    let token = token.trim();
    if token.is_empty() || token.len() > crate::authenticator::MAX_TOKEN_LEN / 3 * 4 + 4 {
        return Err(NegotiateError::Malformed);
    }
    let bytes = B64.decode(token).map_err(|_| NegotiateError::Malformed)?;
    if bytes.is_empty() {
        return Err(NegotiateError::Malformed);
    }
    Ok(Credential::GssToken(bytes))
}

/// The `WWW-Authenticate` value carrying the server's mutual-authentication token.
pub fn response_header(token: &[u8]) -> String {
    format!("Negotiate {}", B64.encode(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_headers() {
        let Ok(Credential::GssToken(t)) = parse_negotiate("Negotiate YWJj") else {
            panic!("a Negotiate token")
        };
        assert_eq!(t, b"abc");
        assert!(parse_negotiate("negotiate YWJj").is_ok());
        assert_eq!(
            parse_negotiate("Basic YWJj").unwrap_err(),
            NegotiateError::NotNegotiate
        );
        for bad in ["Negotiate", "Negotiate !!!", "Negotiate  "] {
            assert_eq!(
                parse_negotiate(bad).unwrap_err(),
                NegotiateError::Malformed,
                "{bad}"
            );
        }
        assert_eq!(response_header(b"abc"), "Negotiate YWJj");
    }
}
