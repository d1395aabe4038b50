//! The error taxonomy and its protocol mappings.
//!
//! [`Error`] is what a client may learn: coarse kinds with generic messages. What actually
//! happened (which user, which key, the backend's message) travels beside it in
//! [`Failure::detail`] and goes only to the audit log. Each adapter maps kinds to its
//! protocol exactly once, through the plain-data tables here.

use std::borrow::Cow;
use std::fmt;

/// A client-visible authentication or authorization error kind.
///
/// `Display` is generic and never contains client input or secrets: "authentication failed"
/// for every kind that could reveal whether a user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client presented no credentials at all.
    #[error("authentication required")]
    MissingCredentials,
    /// The credentials were syntactically malformed (bad header, bad token encoding).
    #[error("malformed credentials")]
    Malformed,
    /// Wrong secret or unknown principal (indistinguishable on purpose).
    #[error("authentication failed")]
    InvalidCredentials,
    /// The credential (token, ticket, password) has expired.
    #[error("authentication failed")]
    Expired,
    /// A signature did not verify.
    #[error("authentication failed")]
    InvalidSignature,
    /// The token's issuer is not trusted.
    #[error("authentication failed")]
    UntrustedIssuer,
    /// A required claim is missing or has the wrong value (audience, type, subject).
    #[error("authentication failed")]
    MissingClaim,
    /// A new password was refused by the password policy.
    #[error("password does not meet the password policy")]
    WeakPassword,
    /// The account is locked or disabled.
    #[error("authentication failed")]
    Locked,
    /// Too many failed attempts from this user or address; try again later.
    #[error("too many failed attempts; try again later")]
    RateLimited,
    /// A backend the decision depends on (OAuth server, KDC, database) is unavailable.
    #[error("authentication service unavailable")]
    Unavailable,
    /// A method did not finish within its time limit.
    #[error("authentication timed out")]
    Timeout,
    /// Authenticated, but not allowed to do this (missing role or scope).
    #[error("permission denied")]
    Forbidden,
    /// No policy rule or method admits this connection.
    #[error("authentication failed")]
    Denied,
}

/// gRPC status codes used by the mapping (numeric values as in `google.rpc.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 3
    InvalidArgument = 3,
    /// 4
    DeadlineExceeded = 4,
    /// 7
    PermissionDenied = 7,
    /// 8
    ResourceExhausted = 8,
    /// 14
    Unavailable = 14,
    /// 16
    Unauthenticated = 16,
}

/// How one [`Error`] kind appears in each protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolMapping {
    /// PostgreSQL SQLSTATE sent in a FATAL ErrorResponse.
    pub sqlstate: &'static str,
    /// HTTP status code.
    pub http_status: u16,
    /// RFC 6750 `error` parameter for `WWW-Authenticate: Bearer`, when one applies. A
    /// request without credentials gets no error code (RFC 6750 section 3.1).
    pub bearer_error: Option<&'static str>,
    /// gRPC status code.
    pub grpc: GrpcCode,
}

impl Error {
    /// Every kind, in declaration order (for exhaustive tests and documentation tables).
    pub const ALL: [Error; 14] = [
        Error::MissingCredentials,
        Error::Malformed,
        Error::InvalidCredentials,
        Error::Expired,
        Error::InvalidSignature,
        Error::UntrustedIssuer,
        Error::MissingClaim,
        Error::WeakPassword,
        Error::Locked,
        Error::RateLimited,
        Error::Unavailable,
        Error::Timeout,
        Error::Forbidden,
        Error::Denied,
    ];

    /// A stable snake_case code for audit logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::Malformed => "malformed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Expired => "expired",
            Self::InvalidSignature => "invalid_signature",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::MissingClaim => "missing_claim",
            Self::WeakPassword => "weak_password",
            Self::Locked => "locked",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Forbidden => "forbidden",
            Self::Denied => "denied",
        }
    }

    /// The protocol mapping table:
    ///
    /// | kind | SQLSTATE | HTTP | Bearer `error` | gRPC |
    /// |---|---|---|---|---|
    /// | MissingCredentials | 28000 | 401 | (none) | UNAUTHENTICATED |
    /// | Malformed | 08P01 | 400 | invalid_request | UNAUTHENTICATED |
    /// | InvalidCredentials | 28P01 | 401 | invalid_token | UNAUTHENTICATED |
    /// | Expired | 28P01 | 401 | invalid_token | UNAUTHENTICATED |
    /// | InvalidSignature | 28000 | 401 | invalid_token | UNAUTHENTICATED |
    /// | UntrustedIssuer | 28000 | 401 | invalid_token | UNAUTHENTICATED |
    /// | MissingClaim | 28000 | 401 | invalid_token | UNAUTHENTICATED |
    /// | WeakPassword | 22023 | 400 | invalid_request | INVALID_ARGUMENT |
    /// | Locked | 28000 | 401 | invalid_token | UNAUTHENTICATED |
    /// | RateLimited | 08004 | 429 | (none) | RESOURCE_EXHAUSTED |
    /// | Unavailable | 08006 | 503 | (none) | UNAVAILABLE |
    /// | Timeout | 08006 | 503 | (none) | UNAVAILABLE |
    /// | Forbidden | 28000 | 403 | insufficient_scope | PERMISSION_DENIED |
    /// | Denied | 28000 | 401 | (none) | UNAUTHENTICATED |
    ///
    /// `Malformed` maps to 08P01 (protocol violation) as PostgreSQL does for garbled
    /// authentication messages. `Locked` looks like any other failure so that lockout does
    /// not reveal that an account exists.
    pub fn mapping(self) -> ProtocolMapping {
        use GrpcCode::*;
        let (sqlstate, http_status, bearer_error, grpc) = match self {
            Self::MissingCredentials => ("28000", 401, None, Unauthenticated),
            Self::Malformed => ("08P01", 400, Some("invalid_request"), Unauthenticated),
            Self::InvalidCredentials | Self::Expired => {
                ("28P01", 401, Some("invalid_token"), Unauthenticated)
            }
            Self::InvalidSignature | Self::UntrustedIssuer | Self::MissingClaim | Self::Locked => {
                ("28000", 401, Some("invalid_token"), Unauthenticated)
            }
            Self::WeakPassword => ("22023", 400, Some("invalid_request"), InvalidArgument),
            Self::RateLimited => ("08004", 429, None, ResourceExhausted),
            Self::Unavailable | Self::Timeout => ("08006", 503, None, Unavailable),
            Self::Forbidden => ("28000", 403, Some("insufficient_scope"), PermissionDenied),
            Self::Denied => ("28000", 401, None, Unauthenticated),
        };
        ProtocolMapping {
            sqlstate,
            http_status,
            bearer_error,
            grpc,
        }
    }

    /// How specific this failure is, for choosing which one a chain reports: higher wins.
    ///
    /// | rank | kinds | why |
    /// |---|---|---|
    /// | 6 | RateLimited | the attempt was refused before any method ran |
    /// | 5 | Locked, Expired | the account or credential is known to be unusable |
    /// | 4 | InvalidCredentials, InvalidSignature, UntrustedIssuer, MissingClaim, WeakPassword, Forbidden | a method examined the credential and refused it |
    /// | 3 | Malformed | the credential could not be read |
    /// | 2 | Unavailable, Timeout | no decision could be made |
    /// | 1 | MissingCredentials | nothing was presented |
    /// | 0 | Denied | nothing applied |
    pub fn rank(self) -> u8 {
        match self {
            Self::RateLimited => 6,
            Self::Locked | Self::Expired => 5,
            Self::InvalidCredentials
            | Self::InvalidSignature
            | Self::UntrustedIssuer
            | Self::MissingClaim
            | Self::WeakPassword
            | Self::Forbidden => 4,
            Self::Malformed => 3,
            Self::Unavailable | Self::Timeout => 2,
            Self::MissingCredentials => 1,
            Self::Denied => 0,
        }
    }
}

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
    pub fn new(error: Error, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error,
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
    fn sqlstates_are_the_documented_ones() {
        for e in Error::ALL {
            let m = e.mapping();
            assert!(
                ["28000", "28P01", "08004", "08006", "08P01", "22023"].contains(&m.sqlstate),
                "{e:?} -> {}",
                m.sqlstate
            );
            assert_eq!(m.sqlstate.len(), 5);
        }
        assert_eq!(Error::InvalidCredentials.mapping().sqlstate, "28P01");
        assert_eq!(Error::Denied.mapping().sqlstate, "28000");
        assert_eq!(Error::RateLimited.mapping().sqlstate, "08004");
        assert_eq!(Error::Unavailable.mapping().sqlstate, "08006");
    }

    #[test]
    fn http_split_401_403_and_bearer_codes() {
        assert_eq!(Error::MissingCredentials.mapping().http_status, 401);
        assert_eq!(Error::MissingCredentials.mapping().bearer_error, None);
        assert_eq!(
            Error::InvalidSignature.mapping().bearer_error,
            Some("invalid_token")
        );
        assert_eq!(Error::Forbidden.mapping().http_status, 403);
        assert_eq!(
            Error::Forbidden.mapping().bearer_error,
            Some("insufficient_scope")
        );
        assert_eq!(Error::Malformed.mapping().http_status, 400);
        assert_eq!(Error::Unavailable.mapping().http_status, 503);
        assert_eq!(Error::Forbidden.mapping().grpc, GrpcCode::PermissionDenied);
        assert_eq!(Error::Expired.mapping().grpc, GrpcCode::Unauthenticated);
        assert_eq!(GrpcCode::Unauthenticated as i32, 16);
    }

    #[test]
    fn client_messages_do_not_distinguish_unknown_user_from_wrong_secret() {
        let generic = Error::InvalidCredentials.to_string();
        for e in [
            Error::Expired,
            Error::Locked,
            Error::UntrustedIssuer,
            Error::Denied,
        ] {
            assert_eq!(e.to_string(), generic);
        }
    }

    #[test]
    fn failure_display_hides_detail() {
        let f = Failure::new(Error::InvalidCredentials, "user alice: wrong password");
        assert_eq!(f.to_string(), "authentication failed");
        assert!(format!("{f:?}").contains("wrong password"));
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = Error::ALL.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Error::ALL.len());
    }
}
