//! The authenticated identity, as handlers read it from a request.

use std::sync::Arc;

use auth_core::authz::ScopeRules;
use auth_core::{CredentialError, Error, Role, Session};
use tonic::Status;

use crate::status::status_for;

/// The session [`AuthLayer`](crate::AuthLayer) established for this call. It dereferences
/// to the [`Session`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    session: Arc<dyn Session>,
    scopes: Arc<ScopeRules>,
}

impl std::ops::Deref for Authenticated {
    type Target = dyn Session;
    fn deref(&self) -> &Self::Target {
        self.session.as_ref()
    }
}

impl Authenticated {
    pub(crate) fn new(session: Arc<dyn Session>, scopes: Arc<ScopeRules>) -> Self {
        Self { session, scopes }
    }

    /// The session, to keep beyond the call.
    pub fn session(&self) -> &Arc<dyn Session> {
        &self.session
    }

    /// Passes when the session's scopes grant `scope` under the layer's
    /// [`ScopeRules`] (`kms:admin` grants `kms:encrypt`); otherwise `PERMISSION_DENIED`.
    pub fn require_scope(&self, scope: &str) -> Result<(), Status> {
        self.session
            .require_scopes(&self.scopes, &[scope])
            .map_err(|f| status_for(f.error))
    }

    /// Passes when the session's roles grant `role` (roles imply the ones below them);
    /// otherwise `PERMISSION_DENIED`.
    pub fn require_role(&self, role: Role) -> Result<(), Status> {
        self.session
            .require_role(role)
            .map_err(|f| status_for(f.error))
    }
}

/// Reading the identity from a tonic request.
pub trait RequestExt {
    /// The caller's identity, or `UNAUTHENTICATED` when the call has none (the service is
    /// not behind the layer, or the layer let an anonymous call through).
    fn authenticated(&self) -> Result<&Authenticated, Status>;

    /// The caller's identity when there is one (routes that serve anonymous callers too).
    fn maybe_authenticated(&self) -> Option<&Authenticated>;
}

impl<T> RequestExt for tonic::Request<T> {
    fn authenticated(&self) -> Result<&Authenticated, Status> {
        self.maybe_authenticated()
            .ok_or_else(|| status_for(Error::Credential(CredentialError::Missing)))
    }

    fn maybe_authenticated(&self) -> Option<&Authenticated> {
        self.extensions().get::<Authenticated>()
    }
}
