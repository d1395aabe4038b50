//! The error taxonomy.
//!
//! [`Error`] is what a client may learn, in the manner of rustls: one enum whose variants
//! name the stage that refused ([`Credential`](Error::Credential),
//! [`Account`](Error::Account), [`Authorization`](Error::Authorization),
//! [`Infrastructure`](Error::Infrastructure), [`Configuration`](Error::Configuration)),
//! each carrying a `#[non_exhaustive]` kind that says what happened. Every kind is a unit
//! variant, so an `Error` is `Copy` and costs nothing on the hot path.
//!
//! What actually happened (which user, which key, the backend's message) travels beside
//! it in [`Failure::detail`] and goes only to the audit log.
//!
//! auth-core knows no protocol: each adapter owns its protocol's column of the mapping
//! (SQLSTATE in auth-pgwire, HTTP status and RFC 6750 codes in auth-axum, gRPC codes in
//! auth-tonic), written as one exhaustive `match` over these kinds.
//!
//! ```
//! use auth_core::{AccountError, CredentialError, Error, Failure};
//!
//! let failure = Failure::new(CredentialError::Invalid, "alice: wrong password");
//! assert_eq!(failure.error, Error::Credential(CredentialError::Invalid));
//! // The client sees a generic message; the detail is for the audit log only.
//! assert_eq!(failure.to_string(), "authentication failed");
//! assert_eq!(failure.detail, "alice: wrong password");
//!
//! // A locked account looks like any other failure to the client.
//! let locked = Error::from(AccountError::Locked);
//! assert_eq!(locked.to_string(), "authentication failed");
//! assert_eq!(locked.code(), "account_locked");
//! ```

use std::borrow::Cow;
use std::fmt;

/// Why an attempt or an operation was refused: the stage that refused, and what happened.
///
/// `Display` is generic and never contains client input or secrets: "authentication
/// failed" for every kind that could reveal whether a user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The credential the client presented (or did not present) was refused.
    Credential(CredentialError),
    /// The identity is proven, but its account cannot be used now.
    Account(AccountError),
    /// The server's policy does not allow this connection, attempt or operation, whatever
    /// the credential.
    Authorization(AuthorizationError),
    /// A service the decision depends on did not answer in time or at all.
    Infrastructure(InfrastructureError),
    /// The server is configured in a way that cannot work, or that would be unsafe
    /// without an explicit `danger` opt-in.
    Configuration(ConfigurationError),
}

/// What was wrong with the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialError {
    /// The client presented no credentials at all.
    Missing,
    /// The credential could not be read (bad header, bad encoding, a garbled message).
    Malformed,
    /// Wrong secret or unknown principal: indistinguishable on purpose.
    Invalid,
    /// The credential (token, ticket, certificate) has expired.
    Expired,
    /// A signature over the credential did not verify.
    BadSignature,
    /// The credential's issuer (token issuer, certificate authority) is not trusted.
    UntrustedIssuer,
    /// A required claim is missing or has the wrong value (audience, type, subject).
    MissingClaim,
    /// A new password was refused by the password policy.
    WeakPassword,
    /// No method the rule runs accepts this kind of credential.
    Unsupported,
}

/// Why a proven identity's account cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccountError {
    /// Locked by an administrator or by lockout.
    Locked,
    /// Disabled, soft-deleted, or a system account that may not log in.
    Disabled,
    /// The account or its password has expired.
    Expired,
}

/// What the server's policy refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// No policy rule admits this connection, or its rule says `reject`, or the method
    /// cannot be used on this connection (`trust` from another machine, `peer` without a
    /// Unix-domain socket).
    Rejected,
    /// Too many failed attempts for this user or from this address; try again later.
    RateLimited,
    /// Authenticated, but the session lacks a role the operation needs.
    MissingRole,
    /// Authenticated, but the session lacks a scope the operation needs.
    MissingScope,
}

/// Which service failed the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InfrastructureError {
    /// A backend (identity provider, KDC, database, credential store) is unavailable or
    /// answered nonsense.
    Unavailable,
    /// A method did not finish within its time limit.
    Timeout,
}

/// What is wrong with the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigurationError {
    /// A setting has a value that cannot work (unparsable, out of range, conflicting).
    Invalid,
    /// A required setting, file or key is absent or unreadable.
    Missing,
    /// The setting would be unsafe, and its `danger` opt-in was not given.
    Insecure,
    /// The connection cannot meet what the rule requires (for example a mechanism that
    /// needs TLS on a connection without it).
    Unmet,
}

/// `From` each kind into the [`Error`] variant of its stage, and into a [`Failure`] with no
/// detail.
macro_rules! stage_kinds {
    ($($variant:ident($kind:ty)),* $(,)?) => {$(
        impl From<$kind> for Error {
            fn from(kind: $kind) -> Self {
                Self::$variant(kind)
            }
        }

        impl From<$kind> for Failure {
            fn from(kind: $kind) -> Self {
                Self::new(kind, "")
            }
        }
    )*};
}
stage_kinds!(
    Credential(CredentialError),
    Account(AccountError),
    Authorization(AuthorizationError),
    Infrastructure(InfrastructureError),
    Configuration(ConfigurationError),
);

impl Error {
    /// Every kind, in declaration order (for exhaustive tests and the adapters' mapping
    /// tables).
    pub const ALL: [Error; 22] = [
        Error::Credential(CredentialError::Missing),
        Error::Credential(CredentialError::Malformed),
        Error::Credential(CredentialError::Invalid),
        Error::Credential(CredentialError::Expired),
        Error::Credential(CredentialError::BadSignature),
        Error::Credential(CredentialError::UntrustedIssuer),
        Error::Credential(CredentialError::MissingClaim),
        Error::Credential(CredentialError::WeakPassword),
        Error::Credential(CredentialError::Unsupported),
        Error::Account(AccountError::Locked),
        Error::Account(AccountError::Disabled),
        Error::Account(AccountError::Expired),
        Error::Authorization(AuthorizationError::Rejected),
        Error::Authorization(AuthorizationError::RateLimited),
        Error::Authorization(AuthorizationError::MissingRole),
        Error::Authorization(AuthorizationError::MissingScope),
        Error::Infrastructure(InfrastructureError::Unavailable),
        Error::Infrastructure(InfrastructureError::Timeout),
        Error::Configuration(ConfigurationError::Invalid),
        Error::Configuration(ConfigurationError::Missing),
        Error::Configuration(ConfigurationError::Insecure),
        Error::Configuration(ConfigurationError::Unmet),
    ];

    /// A stable snake_case code for audit logs and metrics, unique per kind.
    pub fn code(self) -> &'static str {
        use AccountError as A;
        use AuthorizationError as Z;
        use ConfigurationError as G;
        use CredentialError as C;
        use InfrastructureError as I;
        match self {
            Self::Credential(C::Missing) => "missing_credentials",
            Self::Credential(C::Malformed) => "malformed",
            Self::Credential(C::Invalid) => "invalid_credentials",
            Self::Credential(C::Expired) => "expired",
            Self::Credential(C::BadSignature) => "invalid_signature",
            Self::Credential(C::UntrustedIssuer) => "untrusted_issuer",
            Self::Credential(C::MissingClaim) => "missing_claim",
            Self::Credential(C::WeakPassword) => "weak_password",
            Self::Credential(C::Unsupported) => "unsupported_credential",
            Self::Account(A::Locked) => "account_locked",
            Self::Account(A::Disabled) => "account_disabled",
            Self::Account(A::Expired) => "account_expired",
            Self::Authorization(Z::Rejected) => "denied",
            Self::Authorization(Z::RateLimited) => "rate_limited",
            Self::Authorization(Z::MissingRole) => "missing_role",
            Self::Authorization(Z::MissingScope) => "insufficient_scope",
            Self::Infrastructure(I::Unavailable) => "unavailable",
            Self::Infrastructure(I::Timeout) => "timeout",
            Self::Configuration(G::Invalid) => "invalid_configuration",
            Self::Configuration(G::Missing) => "missing_configuration",
            Self::Configuration(G::Insecure) => "insecure_configuration",
            Self::Configuration(G::Unmet) => "requirement_unmet",
        }
    }

    /// How specific this failure is, for choosing which one a chain reports: higher wins.
    ///
    /// | rank | kinds | why |
    /// |---|---|---|
    /// | 6 | rate limited | the attempt was refused before any method ran |
    /// | 5 | every account kind, an expired credential | the account or credential is known to be unusable |
    /// | 4 | the other credential kinds a method judged, missing role or scope | a method examined the credential and refused it |
    /// | 3 | malformed | the credential could not be read |
    /// | 2 | infrastructure, configuration | no decision could be made |
    /// | 1 | missing credentials | nothing was presented |
    /// | 0 | rejected by policy, unsupported credential | nothing applied |
    pub fn rank(self) -> u8 {
        use CredentialError as C;
        match self {
            Self::Authorization(AuthorizationError::RateLimited) => 6,
            Self::Account(_) | Self::Credential(C::Expired) => 5,
            Self::Credential(
                C::Invalid
                | C::BadSignature
                | C::UntrustedIssuer
                | C::MissingClaim
                | C::WeakPassword,
            )
            | Self::Authorization(
                AuthorizationError::MissingRole | AuthorizationError::MissingScope,
            ) => 4,
            Self::Credential(C::Malformed) => 3,
            Self::Infrastructure(_) | Self::Configuration(_) => 2,
            Self::Credential(C::Missing) => 1,
            Self::Credential(C::Unsupported)
            | Self::Authorization(AuthorizationError::Rejected) => 0,
        }
    }

    /// The credential kind, when the credential was refused.
    pub fn credential(self) -> Option<CredentialError> {
        match self {
            Self::Credential(e) => Some(e),
            _ => None,
        }
    }

    /// The account kind, when the account was refused.
    pub fn account(self) -> Option<AccountError> {
        match self {
            Self::Account(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AuthorizationError as Z;
        use CredentialError as C;
        f.write_str(match self {
            Self::Credential(C::Missing) => "authentication required",
            Self::Credential(C::Malformed) => "malformed credentials",
            Self::Credential(C::WeakPassword) => "password does not meet the password policy",
            Self::Credential(_)
            | Self::Account(_)
            | Self::Authorization(Z::Rejected)
            | Self::Configuration(ConfigurationError::Unmet) => "authentication failed",
            Self::Authorization(Z::RateLimited) => "too many failed attempts; try again later",
            Self::Authorization(Z::MissingRole | Z::MissingScope) => "permission denied",
            Self::Infrastructure(InfrastructureError::Timeout) => "authentication timed out",
            Self::Infrastructure(_) | Self::Configuration(_) => {
                "authentication service unavailable"
            }
        })
    }
}

impl std::error::Error for Error {}

/// A failure: the client-visible [`Error`] plus an audit-only detail.
///
/// `Display` shows only the error; the detail is for the audit log, and authors of
/// authenticators must keep secrets out of it (the contract suite checks this).
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the client may learn.
    pub error: Error,
    /// What happened, for the audit log only.
    pub detail: Cow<'static, str>,
}

impl Failure {
    /// A failure of kind `error` with an audit detail.
    pub fn new(error: impl Into<Error>, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error: error.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({}: {})", self.error.code(), self.detail)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::new(error, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_do_not_distinguish_unknown_user_from_wrong_secret() {
        let generic = Error::from(CredentialError::Invalid).to_string();
        for e in [
            Error::from(CredentialError::Expired),
            AccountError::Locked.into(),
            AccountError::Disabled.into(),
            AccountError::Expired.into(),
            CredentialError::UntrustedIssuer.into(),
            CredentialError::Unsupported.into(),
            AuthorizationError::Rejected.into(),
        ] {
            assert_eq!(e.to_string(), generic, "{e:?}");
        }
    }

    #[test]
    fn failure_display_hides_detail() {
        let f = Failure::new(CredentialError::Invalid, "user alice: wrong password");
        assert_eq!(f.to_string(), "authentication failed");
        assert!(format!("{f:?}").contains("wrong password"));
    }

    #[test]
    fn codes_are_unique_and_all_is_complete() {
        let mut codes: Vec<_> = Error::ALL.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Error::ALL.len());
    }

    #[test]
    fn domain_errors_convert_into_failures_of_their_stage() {
        let store = Failure::from(crate::StoreError::Unavailable("connection refused".into()));
        assert_eq!(store.error, InfrastructureError::Unavailable.into());
        assert!(store.detail.contains("connection refused"));
        let policy = Failure::from(crate::PolicyError::LocalOnlyMethod {
            rule: "all".into(),
            method: "trust".into(),
        });
        assert_eq!(policy.error, ConfigurationError::Insecure.into());
        assert_eq!(policy.to_string(), "authentication service unavailable");
    }

    #[test]
    fn rate_limit_outranks_everything_and_nothing_applied_ranks_last() {
        let max = Error::ALL.iter().map(|e| e.rank()).max();
        assert_eq!(
            max,
            Some(Error::from(AuthorizationError::RateLimited).rank())
        );
        assert_eq!(Error::from(AuthorizationError::Rejected).rank(), 0);
        assert!(
            Error::from(AccountError::Disabled).rank()
                > Error::from(CredentialError::Invalid).rank()
        );
    }
}
