//! HTTP Basic credentials (RFC 7617), parsed strictly.

use auth_core::Credential;
use auth_core::secrecy::SecretString;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroize;

/// The longest `Authorization` header value accepted.
pub const MAX_HEADER_LEN: usize = 4096;

/// Why an `Authorization: Basic` value was refused. Messages never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BasicError {
    /// The scheme is not `Basic`.
    #[error("not a Basic authorization")]
    NotBasic,
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("authorization header longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// No credentials after the scheme.
    #[error("Basic authorization without credentials")]
    Empty,
    /// Not canonical padded base64.
    #[error("Basic credentials are not valid base64")]
    Base64,
    /// Decoded bytes are not UTF-8.
    #[error("Basic credentials are not UTF-8")]
    Utf8,
    /// No colon between user and password.
    #[error("Basic credentials without a `:` between user and password")]
    NoColon,
    /// Empty user id.
    #[error("Basic credentials with an empty user name")]
    EmptyUser,
    /// A control character in the user or password (RFC 7617 section 2).
    #[error("Basic credentials contain a control character")]
    ControlCharacter,
    /// A user name longer than [`MAX_USER_LEN`]: refused before any limiter or audit
    /// event keeps it.
    #[error("Basic credentials with a user name longer than {MAX_USER_LEN} bytes")]
    UserTooLong,
}

/// The longest user name a Basic credential may carry (an e-mail address fits; a
/// client cannot make the limiter or the audit log keep more).
pub const MAX_USER_LEN: usize = 256;

impl BasicError {
    /// The client-visible error kind: `Malformed`, except a user name too long for anyone
    /// to have, which is refused like a wrong password (`Invalid`).
    pub fn error(self) -> auth_core::Error {
        use auth_core::CredentialError::{Invalid, Malformed};
        match self {
            // No user has such a name: the generic refusal, as for a wrong password.
            Self::UserTooLong => auth_core::Error::Credential(Invalid),
            _ => auth_core::Error::Credential(Malformed),
        }
    }
}

/// Parses an `Authorization` header value (`Basic dXNlcjpwYXNz`) into a
/// [`Credential::Password`]. The scheme is case-insensitive; the user id ends at the
/// first colon and the password may contain colons.
pub fn parse_basic(header: &str) -> Result<Credential, BasicError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(BasicError::TooLong);
    }
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::NotBasic);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(BasicError::Empty);
    }
    let mut decoded = B64.decode(token).map_err(|_| BasicError::Base64)?;
    let result = split(&decoded);
    decoded.zeroize();
    result
}

fn split(decoded: &[u8]) -> Result<Credential, BasicError> {
    let text = std::str::from_utf8(decoded).map_err(|_| BasicError::Utf8)?;
    let (user, password) = text.split_once(':').ok_or(BasicError::NoColon)?;
    if user.is_empty() {
        return Err(BasicError::EmptyUser);
    }
    if user.len() > MAX_USER_LEN {
        return Err(BasicError::UserTooLong);
    }
    if text.chars().any(char::is_control) {
        return Err(BasicError::ControlCharacter);
    }
    Ok(Credential::Password {
        user: user.to_owned(),
        password: SecretString::from(password.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::secrecy::ExposeSecret;

    fn basic(raw: &[u8]) -> String {
        format!("Basic {}", B64.encode(raw))
    }

    #[test]
    fn user_names_are_bounded_and_an_email_address_fits() {
        let email = format!(
            "{}@{}.example.com",
            "first.last".repeat(12),
            "dept".repeat(20)
        );
        assert!(
            email.len() > 200 && email.len() <= MAX_USER_LEN,
            "{}",
            email.len()
        );
        let ok = parse_basic(&basic(format!("{email}:pw").as_bytes())).unwrap();
        assert_eq!(ok.user(), Some(email.as_str()));
        let long = "u".repeat(MAX_USER_LEN + 1);
        let err = parse_basic(&basic(format!("{long}:pw").as_bytes())).unwrap_err();
        assert_eq!(err, BasicError::UserTooLong);
        assert_eq!(
            err.error(),
            auth_core::Error::Credential(auth_core::CredentialError::Invalid)
        );
        assert!(
            !err.to_string().contains(&long[..20]),
            "the name is not echoed"
        );
    }

    #[test]
    fn parses_user_and_password_with_colons_and_unicode() {
        let Credential::Password { user, password } =
            parse_basic(&basic("Aladdin:open sesame".as_bytes())).unwrap()
        else {
            panic!()
        };
        assert_eq!(user, "Aladdin");
        assert_eq!(password.expose_secret(), "open sesame");
        let Credential::Password { user, password } =
            parse_basic(&basic("tëst:pa:ss:".as_bytes())).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (user.as_str(), password.expose_secret()),
            ("tëst", "pa:ss:")
        );
        assert!(parse_basic(&format!("bAsIc {}", B64.encode("u:p"))).is_ok());
        assert!(
            parse_basic(&basic(b"u:")).is_ok(),
            "an empty password is the store's business"
        );
    }

    #[test]
    fn every_malformed_case_has_its_own_error() {
        let cases: Vec<(String, BasicError)> = vec![
            ("Bearer abc".into(), BasicError::NotBasic),
            ("Basicabc".into(), BasicError::NotBasic),
            ("Basic".into(), BasicError::Empty),
            ("Basic    ".into(), BasicError::Empty),
            ("Basic dXNlcjpwYXNz=".into(), BasicError::Base64),
            ("Basic dXNlcjpwYXN".into(), BasicError::Base64),
            ("Basic dXNl cjpw".into(), BasicError::Base64),
            ("Basic ****".into(), BasicError::Base64),
            (basic(b"\xff\xfe:pw"), BasicError::Utf8),
            (basic(b"no-colon"), BasicError::NoColon),
            (basic(b":pw"), BasicError::EmptyUser),
            (basic(b"user:p\nw"), BasicError::ControlCharacter),
            (basic(b"us\x00er:pw"), BasicError::ControlCharacter),
            (format!("Basic {}", "A".repeat(5000)), BasicError::TooLong),
        ];
        for (header, expected) in cases {
            assert_eq!(
                parse_basic(&header).map(|_| ()),
                Err(expected),
                "{header:.40}"
            );
        }
    }

    #[test]
    fn errors_do_not_echo_input() {
        let err = parse_basic(&basic(b"secret-without-colon")).unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert_eq!(
            err.error(),
            auth_core::Error::Credential(auth_core::CredentialError::Malformed)
        );
    }
}
