//! Failures as PostgreSQL ErrorResponses: SQLSTATE from auth-core's mapping, messages as
//! generic as PostgreSQL's own, details only in the audit log.

use auth_core::{Error, Failure};
use pgwire::error::{ErrorInfo, PgWireError};

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
    let code = failure.error.mapping().sqlstate;
    let message = match failure.error {
        Error::InvalidCredentials
        | Error::Expired
        | Error::Locked
        | Error::Denied
        | Error::MissingCredentials => {
            format!("{method} authentication failed for user \"{user}\"")
        }
        Error::Malformed => "invalid authentication message".to_owned(),
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
        Error::Unavailable | Error::Timeout | Error::RateLimited | Error::Malformed => {
            auth_failed(failure, user, method)
        }
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
