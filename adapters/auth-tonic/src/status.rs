//! A failure as a gRPC status, from auth-core's mapping table.

use auth_core::{Error, GrpcCode};
use tonic::{Code, Status};

/// The status for `error`: its code from auth-core's table and a generic message (the
/// reason is in the audit log, never in the status).
pub fn status_for(error: Error) -> Status {
    let code = match error.mapping().grpc {
        GrpcCode::InvalidArgument => Code::InvalidArgument,
        GrpcCode::DeadlineExceeded => Code::DeadlineExceeded,
        GrpcCode::PermissionDenied => Code::PermissionDenied,
        GrpcCode::ResourceExhausted => Code::ResourceExhausted,
        GrpcCode::Unavailable => Code::Unavailable,
        // Unauthenticated, and any code a later auth-core adds: refusing is the safe side.
        _ => Code::Unauthenticated,
    };
    Status::new(code, auth_tower::public_message(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code_and_a_generic_message() {
        for error in Error::ALL {
            let status = status_for(error);
            assert_eq!(
                status.code() as i32,
                error.mapping().grpc as i32,
                "{error:?}"
            );
            assert_eq!(status.message(), auth_tower::public_message(error));
        }
        assert_eq!(status_for(Error::Forbidden).code(), Code::PermissionDenied);
        assert_eq!(
            status_for(Error::InvalidCredentials).code(),
            Code::Unauthenticated
        );
    }
}
