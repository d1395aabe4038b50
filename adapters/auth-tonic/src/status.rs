//! A failure as a gRPC status: the gRPC column of the error mapping.

use auth_core::{AuthorizationError, ConfigurationError, CredentialError, Error};
use tonic::{Code, Status};

/// The gRPC code for `error`.
///
/// | kind | code |
/// |---|---|
/// | credential: weak password | `INVALID_ARGUMENT` |
/// | missing role or scope | `PERMISSION_DENIED` |
/// | rate limited | `RESOURCE_EXHAUSTED` |
/// | infrastructure | `UNAVAILABLE` |
/// | configuration invalid, missing, insecure | `INTERNAL` |
/// | every other credential, account and authorization kind, requirement unmet | `UNAUTHENTICATED` |
///
/// ```
/// use auth_core::{AuthorizationError, CredentialError};
/// use tonic::Code;
///
/// assert_eq!(auth_tonic::grpc_code(CredentialError::Invalid.into()), Code::Unauthenticated);
/// assert_eq!(auth_tonic::grpc_code(AuthorizationError::MissingScope.into()), Code::PermissionDenied);
/// ```
pub fn grpc_code(error: Error) -> Code {
    use AuthorizationError as Z;
    match error {
        Error::Credential(CredentialError::WeakPassword) => Code::InvalidArgument,
        Error::Authorization(Z::MissingRole | Z::MissingScope) => Code::PermissionDenied,
        Error::Authorization(Z::RateLimited) => Code::ResourceExhausted,
        Error::Infrastructure(_) => Code::Unavailable,
        Error::Configuration(
            ConfigurationError::Invalid
            | ConfigurationError::Missing
            | ConfigurationError::Insecure,
        ) => Code::Internal,
        // Every other refusal, and any kind a later auth-core adds: refusing is the safe side.
        _ => Code::Unauthenticated,
    }
}

/// The status for `error`: its [`grpc_code`] and a generic message (the reason is in the
/// audit log, never in the status).
pub fn status_for(error: Error) -> Status {
    Status::new(grpc_code(error), auth_tower::public_message(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::{AccountError, InfrastructureError};

    #[test]
    fn every_kind_has_its_code_and_a_generic_message() {
        for error in Error::ALL {
            let status = status_for(error);
            assert_eq!(status.code(), grpc_code(error), "{error:?}");
            assert_eq!(status.message(), auth_tower::public_message(error));
        }
        assert_eq!(
            grpc_code(AuthorizationError::MissingScope.into()),
            Code::PermissionDenied
        );
        assert_eq!(
            grpc_code(AuthorizationError::MissingRole.into()),
            Code::PermissionDenied
        );
        assert_eq!(
            grpc_code(CredentialError::Invalid.into()),
            Code::Unauthenticated
        );
        assert_eq!(
            grpc_code(AccountError::Disabled.into()),
            Code::Unauthenticated
        );
        assert_eq!(
            grpc_code(AuthorizationError::RateLimited.into()),
            Code::ResourceExhausted
        );
        assert_eq!(
            grpc_code(InfrastructureError::Timeout.into()),
            Code::Unavailable
        );
    }
}
