//! The authenticated session, as handlers take it.

use std::sync::Arc;

use auth_core::{CredentialError, Error, Failure, Role, Session};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::layer::HttpContext;

/// The session [`AuthLayer`](crate::AuthLayer) established for this request. It
/// dereferences to the [`Session`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    session: Arc<dyn Session>,
    context: Arc<HttpContext>,
}

impl std::ops::Deref for Authenticated {
    type Target = dyn Session;
    fn deref(&self) -> &Self::Target {
        self.session.as_ref()
    }
}

/// Why a handler refused the request.
#[derive(Debug, Clone)]
pub struct AuthRejection {
    error: Error,
    scope: Option<String>,
    context: Arc<HttpContext>,
}

impl AuthRejection {
    /// The error kind.
    pub fn error(&self) -> Error {
        self.error
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.context.refuse(self.error, self.scope.as_deref())
    }
}

impl Authenticated {
    pub(crate) fn new(session: Arc<dyn Session>, context: Arc<HttpContext>) -> Self {
        Self { session, context }
    }

    /// The session, to keep beyond the request.
    pub fn session(&self) -> &Arc<dyn Session> {
        &self.session
    }

    fn forbidden(&self, failure: Failure, scope: Option<String>) -> AuthRejection {
        AuthRejection {
            error: failure.error,
            scope,
            context: self.context.clone(),
        }
    }

    /// Passes when the session's scopes grant `scope` under the layer's
    /// [`ScopeRules`](auth_core::authz::ScopeRules) (`kms:admin` grants `kms:encrypt`);
    /// otherwise a 403 `insufficient_scope` naming it.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthRejection> {
        self.session
            .require_scopes(&self.context.scopes, &[scope])
            .map_err(|f| self.forbidden(f, Some(scope.to_owned())))
    }

    /// Passes when the session's roles grant `role` (roles imply the ones below them).
    pub fn require_role(&self, role: Role) -> Result<(), AuthRejection> {
        self.session
            .require_role(role)
            .map_err(|f| self.forbidden(f, None))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| AuthRejection {
                // The route is not behind the layer, or the layer let an anonymous request
                // through: either way the handler needs an identity it does not have.
                error: Error::Credential(CredentialError::Missing),
                scope: None,
                context: parts
                    .extensions
                    .get::<Arc<HttpContext>>()
                    .cloned()
                    .unwrap_or_default(),
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Authenticated>().cloned())
    }
}
