//! The authenticated session, available to the host's query handlers.

use std::sync::Arc;

use auth_core::{OpenSession, Session, SessionOver};
use pgwire::api::ClientInfo;

/// The session of an authenticated connection, kept in pgwire's per-connection
/// extensions: open from AuthenticationOk until the connection ends (the session stage),
/// touched by the serve loop on every message.
#[derive(Debug)]
pub struct AuthenticatedSession(pub(crate) OpenSession);

impl AuthenticatedSession {
    /// Runs `f` with the session.
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Session) -> R) -> R {
        self.0.with(f)
    }

    /// The mapped local user (what `CURRENT_USER` and `SESSION_USER` answer).
    pub fn user(&self) -> String {
        self.with(|s| s.user().to_owned())
    }

    /// The authenticated identity (`alice@TEST.REALM`, a token's subject).
    pub fn principal(&self) -> String {
        self.with(|s| s.principal().to_owned())
    }

    /// The method that authenticated the connection.
    pub fn method(&self) -> String {
        self.with(|s| s.method().to_owned())
    }

    /// Extends the session when its backend wants to (an OAuth token refresh that is
    /// due); the serve loop calls it before [`Self::touch`] on every message.
    pub async fn renew(&self) {
        self.0.renew().await;
    }

    /// Marks activity; refused once the session has expired or ended.
    pub fn touch(&self) -> Result<(), SessionOver> {
        self.0.touch()
    }

    /// Ends the session and waits for its backend (a revocation); the serve loop calls
    /// it when the connection ends.
    pub async fn close(&self) {
        self.0.close_and_wait().await;
    }
}

/// The session of the connection `client` belongs to, once it has authenticated.
pub fn session<C: ClientInfo + ?Sized>(client: &C) -> Option<Arc<AuthenticatedSession>> {
    client.session_extensions().get::<AuthenticatedSession>()
}
