//! What one authenticator concluded about one attempt.

use std::borrow::Cow;
use std::fmt;

use crate::error::{AccountError, Error, Failure, InfrastructureError};
use crate::session::Session;

/// The result of [`Authenticator::authenticate`](crate::Authenticator::authenticate).
///
/// Unknown principal and wrong secret are both [`Outcome::Rejected`] with
/// [`CredentialError::Invalid`](crate::CredentialError::Invalid); they differ only in the audit detail.
#[non_exhaustive]
pub enum Outcome {
    /// The credential proved an identity.
    Authenticated(Box<dyn Session>),
    /// This method cannot judge this credential (not its kind, or "no such entry" in a
    /// store that is only one of several sources). The chain moves on.
    NotApplicable,
    /// The method examined the credential and refused it.
    Rejected(Failure),
    /// The identity is proven but its account cannot be used.
    AccountRefused {
        /// Why.
        error: AccountError,
        /// Audit-only detail.
        detail: Cow<'static, str>,
    },
    /// No decision could be made: the backend is down or the method timed out.
    Unavailable(Failure),
}

/// The class of an [`Outcome`], the row index of a [`Control`](crate::Control) table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    /// [`Outcome::Authenticated`].
    Success,
    /// [`Outcome::NotApplicable`], or a link whose `supports()` declined.
    NotApplicable,
    /// [`Outcome::Rejected`].
    Rejected,
    /// [`Outcome::AccountRefused`].
    AccountRefused,
    /// [`Outcome::Unavailable`], including a link timeout.
    Unavailable,
}

impl OutcomeClass {
    /// Every class, for exhaustive tests.
    pub const ALL: [OutcomeClass; 5] = [
        Self::Success,
        Self::NotApplicable,
        Self::Rejected,
        Self::AccountRefused,
        Self::Unavailable,
    ];

    /// A lower-case name for audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::NotApplicable => "not_applicable",
            Self::Rejected => "rejected",
            Self::AccountRefused => "account_refused",
            Self::Unavailable => "unavailable",
        }
    }
}

impl Outcome {
    /// A rejection with error `error` and an audit detail.
    pub fn rejected(error: impl Into<Error>, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Rejected(Failure::new(error, detail))
    }

    /// An unavailable outcome with an audit detail.
    pub fn unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable(Failure::new(InfrastructureError::Unavailable, detail))
    }

    /// The class of this outcome.
    pub fn class(&self) -> OutcomeClass {
        match self {
            Self::Authenticated(_) => OutcomeClass::Success,
            Self::NotApplicable => OutcomeClass::NotApplicable,
            Self::Rejected(_) => OutcomeClass::Rejected,
            Self::AccountRefused { .. } => OutcomeClass::AccountRefused,
            Self::Unavailable(_) => OutcomeClass::Unavailable,
        }
    }

    /// The failure this outcome represents, if it is one (not for success or
    /// not-applicable).
    pub fn failure(&self) -> Option<Failure> {
        match self {
            Self::Rejected(f) | Self::Unavailable(f) => Some(f.clone()),
            Self::AccountRefused { error, detail } => Some(Failure::new(*error, detail.clone())),
            Self::Authenticated(_) | Self::NotApplicable => None,
        }
    }

    /// The client-visible error and the audit detail of a failure, without copying.
    pub fn error_and_detail(&self) -> Option<(Error, &str)> {
        match self {
            Self::Rejected(f) | Self::Unavailable(f) => Some((f.error, f.detail.as_ref())),
            Self::AccountRefused { error, detail } => Some(((*error).into(), detail.as_ref())),
            Self::Authenticated(_) | Self::NotApplicable => None,
        }
    }

    /// Whether this is a success.
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Self::Authenticated(_))
    }

    /// The session, if this is a success.
    pub fn session(&self) -> Option<&dyn Session> {
        match self {
            Self::Authenticated(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// The session, if this is a success, by value.
    pub fn into_session(self) -> Option<Box<dyn Session>> {
        match self {
            Self::Authenticated(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authenticated(s) => f.debug_tuple("Authenticated").field(s).finish(),
            Self::NotApplicable => f.write_str("NotApplicable"),
            Self::Rejected(x) => f.debug_tuple("Rejected").field(x).finish(),
            Self::AccountRefused { error, detail } => f
                .debug_struct("AccountRefused")
                .field("error", error)
                .field("detail", detail)
                .finish(),
            Self::Unavailable(x) => f.debug_tuple("Unavailable").field(x).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CredentialError;

    #[test]
    fn classes_and_failures() {
        let r = Outcome::rejected(CredentialError::Invalid, "wrong password for alice");
        assert_eq!(r.class(), OutcomeClass::Rejected);
        assert_eq!(
            r.failure().map(|f| f.error),
            Some(Error::Credential(CredentialError::Invalid))
        );
        let a = Outcome::AccountRefused {
            error: AccountError::Disabled,
            detail: "disabled".into(),
        };
        assert_eq!(
            a.failure().map(|f| f.error),
            Some(Error::Account(AccountError::Disabled))
        );
        assert_eq!(
            Outcome::unavailable("down").class(),
            OutcomeClass::Unavailable
        );
        assert!(Outcome::NotApplicable.failure().is_none());
        assert!(!Outcome::NotApplicable.is_authenticated());
    }
}
