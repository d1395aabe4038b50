//! What a client is told about a failure, whatever the protocol.

use auth_core::Error;

/// The generic text a client sees for `error` (a problem+json `detail`, a gRPC status
/// message). It never says which part of the credential was wrong or whether the user
/// exists; the real reason is in the audit log.
pub fn public_message(error: Error) -> &'static str {
    match error {
        Error::MissingCredentials | Error::Denied => "authentication is required",
        Error::Malformed => "the credentials could not be read",
        Error::WeakPassword => "the request was refused",
        Error::RateLimited => "too many attempts; try again later",
        Error::Unavailable | Error::Timeout => "authentication is unavailable; try again later",
        Error::Forbidden => "the credentials do not grant access to this resource",
        _ => "the credentials were not accepted",
    }
}
