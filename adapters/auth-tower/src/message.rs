//! What a client is told about a failure, whatever the protocol.

use auth_core::{
    AuthorizationError, ConfigurationError, CredentialError, Error, InfrastructureError,
};

/// The generic text a client sees for `error` (a problem+json `detail`, a gRPC status
/// message). It never says which part of the credential was wrong or whether the user
/// exists; the real reason is in the audit log.
pub fn public_message(error: Error) -> &'static str {
    match error {
        Error::Credential(CredentialError::Missing | CredentialError::Unsupported)
        | Error::Authorization(AuthorizationError::Rejected) => "authentication is required",
        Error::Credential(CredentialError::Malformed) => "the credentials could not be read",
        Error::Credential(CredentialError::WeakPassword) => "the request was refused",
        Error::Authorization(AuthorizationError::RateLimited) => {
            "too many attempts; try again later"
        }
        Error::Infrastructure(InfrastructureError::Unavailable)
        | Error::Infrastructure(InfrastructureError::Timeout)
        | Error::Configuration(
            ConfigurationError::Invalid
            | ConfigurationError::Missing
            | ConfigurationError::Insecure,
        ) => "authentication is unavailable; try again later",
        Error::Authorization(
            AuthorizationError::MissingScope | AuthorizationError::MissingRole,
        ) => "the credentials do not grant access to this resource",
        _ => "the credentials were not accepted",
    }
}
