//! Failures as PostgreSQL ErrorResponses: the SQLSTATE column of the error mapping,
//! messages as generic as PostgreSQL's own, details only in the audit log.

use auth_core::{
    AccountError, AuthorizationError, ConfigurationError, CredentialError, Error, Failure,
    InfrastructureError,
};
use pgwire::error::{ErrorInfo, PgWireError};

/// The SQLSTATE a FATAL ErrorResponse carries for `error`.
///
/// | kind | SQLSTATE | why |
/// |---|---|---|
/// | credential: invalid, expired; account expired | 28P01 | what PostgreSQL sends for a wrong or expired password |
/// | credential: malformed | 08P01 | PostgreSQL's protocol violation for a garbled authentication message |
/// | credential: weak password | 22023 | invalid parameter value |
/// | other credential kinds, account locked or disabled, authorization refused, requirement unmet | 28000 | invalid authorization specification: looks like any other refusal, so a lockout does not reveal that an account exists |
/// | rate limited | 08004 | the server rejected the connection |
/// | infrastructure | 08006 | connection failure: the client may retry |
/// | configuration invalid, missing, insecure | XX000 | internal error: nothing the client can fix |
///
/// ```
/// use auth_core::{AccountError, CredentialError, Error};
///
/// assert_eq!(auth_pgwire::sqlstate(CredentialError::Invalid.into()), "28P01");
/// assert_eq!(auth_pgwire::sqlstate(AccountError::Disabled.into()), "28000");
/// ```
pub fn sqlstate(error: Error) -> &'static str {
    use AuthorizationError as Z;
    use ConfigurationError as G;
    use CredentialError as C;
    match error {
        Error::Credential(C::Invalid | C::Expired) | Error::Account(AccountError::Expired) => {
            "28P01"
        }
        Error::Credential(C::Malformed) => "08P01",
        Error::Credential(C::WeakPassword) => "22023",
        Error::Authorization(Z::RateLimited) => "08004",
        Error::Infrastructure(_) => "08006",
        Error::Configuration(G::Invalid | G::Missing | G::Insecure) => "XX000",
        // Every other refusal, and any kind a later auth-core adds: the generic one.
        _ => "28000",
    }
}

/// A FATAL error with `code` and `message`.
pub(crate) fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// The ErrorResponse for a failed authentication of `user` by `method`.
pub(crate) fn auth_failed(failure: &Failure, user: &str, method: &str) -> PgWireError {
    let code = sqlstate(failure.error);
    let message = match failure.error {
        Error::Credential(CredentialError::Invalid)
        | Error::Credential(CredentialError::Expired)
        | Error::Account(_)
        | Error::Authorization(AuthorizationError::Rejected)
        | Error::Credential(CredentialError::Unsupported)
        | Error::Credential(CredentialError::Missing) => {
            format!("{method} authentication failed for user \"{user}\"")
        }
        Error::Credential(CredentialError::Malformed) => {
            "invalid authentication message".to_owned()
        }
        other => other.to_string(),
    };
    fatal(code, message)
}

/// The ErrorResponse for a failed authentication by a method that is not a password
/// (GSSAPI, peer, trust): PostgreSQL reports these with 28000, never the password
/// SQLSTATE, unless the failure is the service's (unavailable, timed out, rate limited) or
/// the client's malformed input.
pub(crate) fn method_failed(failure: &Failure, user: &str, method: &str) -> PgWireError {
    match failure.error {
        Error::Infrastructure(InfrastructureError::Unavailable)
        | Error::Infrastructure(InfrastructureError::Timeout)
        | Error::Authorization(AuthorizationError::RateLimited)
        | Error::Credential(CredentialError::Malformed) => auth_failed(failure, user, method),
        _ => fatal(
            "28000",
            format!("{method} authentication failed for user \"{user}\""),
        ),
    }
}

/// The message PostgreSQL sends when pg_hba.conf has no entry (policy reject); a Unix
/// socket client (no `host` address) is `[local]`, with no encryption clause.
pub(crate) fn policy_reject(
    host: Option<std::net::IpAddr>,
    user: &str,
    database: &str,
    tls: bool,
) -> PgWireError {
    let Some(host) = host else {
        return fatal(
            "28000",
            format!(
                "no pg_hba.conf entry for host \"[local]\", user \"{user}\", database \"{database}\""
            ),
        );
    };
    let encryption = if tls {
        "SSL encryption"
    } else {
        "no encryption"
    };
    fatal(
        "28000",
        format!(
            "no pg_hba.conf entry for host \"{host}\", user \"{user}\", database \"{database}\", {encryption}"
        ),
    )
}

/// A protocol violation.
pub(crate) fn protocol(message: &str) -> PgWireError {
    fatal("08P01", message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_sqlstate_postgresql_clients_know() {
        for e in Error::ALL {
            assert!(
                [
                    "28000", "28P01", "08004", "08006", "08P01", "22023", "XX000"
                ]
                .contains(&sqlstate(e)),
                "{e:?}"
            );
        }
        assert_eq!(sqlstate(CredentialError::Invalid.into()), "28P01");
        assert_eq!(sqlstate(AuthorizationError::Rejected.into()), "28000");
        assert_eq!(sqlstate(CredentialError::Unsupported.into()), "28000");
        assert_eq!(sqlstate(AccountError::Locked.into()), "28000");
        assert_eq!(sqlstate(AccountError::Expired.into()), "28P01");
        assert_eq!(sqlstate(AuthorizationError::RateLimited.into()), "08004");
        assert_eq!(sqlstate(InfrastructureError::Timeout.into()), "08006");
        assert_eq!(sqlstate(ConfigurationError::Unmet.into()), "28000");
    }
}
