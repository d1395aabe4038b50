//! What a client can present.

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// A credential offered by a client.
///
/// One shared type is what lets a heterogeneous chain exist: each link's
/// [`Authenticator::supports`](crate::Authenticator::supports) looks at the variant and
/// declines what it cannot handle. Secret material is held in `secrecy` types and the
/// hand-written `Debug` redacts it.
#[non_exhaustive]
pub enum Credential {
    /// The client presented nothing (an HTTP request without `Authorization`).
    Absent,
    /// A user name and a password (pgwire cleartext password, HTTP Basic).
    Password {
        /// The user name as the client sent it.
        user: String,
        /// The password.
        password: SecretString,
    },
    /// An OAuth bearer token (a JWT or an opaque token).
    Bearer(SecretString),
    /// An API key (`X-API-Key` or similar).
    ApiKey(SecretString),
    /// The start of a SASL exchange: the mechanism the client chose and its initial response.
    /// Later rounds go through the attempt's [`Conversation`](crate::Conversation).
    Sasl {
        /// The mechanism name, such as `SCRAM-SHA-256`.
        mechanism: String,
        /// The client's initial response, if it sent one.
        initial: Option<SecretSlice<u8>>,
    },
    /// The first GSSAPI (Kerberos) or SPNEGO token from the client.
    GssToken(Vec<u8>),
    /// "Judge me by the certificate I presented in the TLS handshake": the chain itself is
    /// in the connection's [`TlsInfo`](crate::TlsInfo), where only an adapter puts it, from
    /// the handshake that proved the client holds its key. Carries nothing itself, so a
    /// client cannot forge what it stands for.
    ClientCertificate,
    /// "Judge me by what the operating system says about my process": on a Unix-domain
    /// socket, the peer credentials the adapter read from the socket
    /// ([`Peer::credentials`](crate::Peer::credentials)). Carries nothing itself, so a
    /// client cannot forge what it stands for.
    Peer,
}

/// The kind of a [`Credential`], without its content: what an authenticator accepts and
/// what an adapter should ask the client for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// [`Credential::Absent`].
    Absent,
    /// [`Credential::Password`].
    Password,
    /// [`Credential::Bearer`].
    Bearer,
    /// [`Credential::ApiKey`].
    ApiKey,
    /// [`Credential::Sasl`] with the named mechanism.
    Sasl(&'static str),
    /// [`Credential::GssToken`].
    Gss,
    /// [`Credential::ClientCertificate`].
    ClientCertificate,
    /// [`Credential::Peer`].
    Peer,
}

impl CredentialKind {
    /// Whether a credential of this kind is a secret that whoever reads it off the wire can
    /// replay (a password, a bearer token, an API key), so it must not cross a network
    /// unencrypted.
    pub fn is_reusable_secret(self) -> bool {
        matches!(self, Self::Password | Self::Bearer | Self::ApiKey)
    }
}

impl Credential {
    /// A password credential.
    pub fn password(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Password {
            user: user.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// A bearer-token credential.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Bearer(SecretString::from(token.into()))
    }

    /// An API-key credential.
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::ApiKey(SecretString::from(key.into()))
    }

    /// The kind of this credential. For SASL, the mechanism is reported as
    /// [`CredentialKind::Sasl`] with an empty name; compare mechanisms with
    /// [`Credential::sasl_mechanism`].
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Absent => CredentialKind::Absent,
            Self::Password { .. } => CredentialKind::Password,
            Self::Bearer(_) => CredentialKind::Bearer,
            Self::ApiKey(_) => CredentialKind::ApiKey,
            Self::Sasl { .. } => CredentialKind::Sasl(""),
            Self::GssToken(_) => CredentialKind::Gss,
            Self::ClientCertificate => CredentialKind::ClientCertificate,
            Self::Peer => CredentialKind::Peer,
        }
    }

    /// The SASL mechanism, when this is a SASL credential.
    pub fn sasl_mechanism(&self) -> Option<&str> {
        match self {
            Self::Sasl { mechanism, .. } => Some(mechanism),
            _ => None,
        }
    }

    /// The user name carried by the credential itself, if any (password credentials).
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Password { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Whether the credential carries the given secret text anywhere. Used by tests and the
    /// contract suite to prove that secrets do not leak into other strings.
    pub fn contains_secret(&self, needle: &str) -> bool {
        match self {
            Self::Password { password, .. } => password.expose_secret().contains(needle),
            Self::Bearer(s) | Self::ApiKey(s) => s.expose_secret().contains(needle),
            _ => false,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("Absent"),
            Self::Peer => f.write_str("Peer"),
            Self::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &"[REDACTED]")
                .finish(),
            Self::Bearer(_) => f.write_str("Bearer([REDACTED])"),
            Self::ApiKey(_) => f.write_str("ApiKey([REDACTED])"),
            Self::Sasl { mechanism, initial } => f
                .debug_struct("Sasl")
                .field("mechanism", mechanism)
                .field(
                    "initial",
                    &initial.as_ref().map(|i| Redacted(i.expose_secret().len())),
                )
                .finish(),
            Self::GssToken(token) => write!(f, "GssToken({} bytes)", token.len()),
            Self::ClientCertificate => f.write_str("ClientCertificate"),
        }
    }
}

/// Shows the length of a redacted value.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED {} bytes]", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let secret = "hunter2-very-secret";
        let creds = [
            Credential::password("alice", secret),
            Credential::bearer(secret),
            Credential::api_key(secret),
            Credential::Sasl {
                mechanism: "PLAIN".into(),
                initial: Some(secret.as_bytes().to_vec().into()),
            },
        ];
        for c in &creds {
            let shown = format!("{c:?} {c:#?}");
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("REDACTED"), "{shown}");
        }
        assert!(creds[0].contains_secret(secret));
        assert_eq!(creds[0].user(), Some("alice"));
    }

    #[test]
    fn kinds_match_variants() {
        assert_eq!(Credential::Absent.kind(), CredentialKind::Absent);
        assert_eq!(Credential::bearer("t").kind(), CredentialKind::Bearer);
        assert_eq!(Credential::GssToken(vec![1]).kind(), CredentialKind::Gss);
        let sasl = Credential::Sasl {
            mechanism: "SCRAM-SHA-256".into(),
            initial: None,
        };
        assert_eq!(sasl.sasl_mechanism(), Some("SCRAM-SHA-256"));
    }
}
