//! The authenticated session, available to the host's query handlers.

use std::sync::{Arc, Mutex, PoisonError};

use auth_core::Session;
use pgwire::api::ClientInfo;

/// The session of an authenticated connection, kept in pgwire's per-connection
/// extensions.
#[derive(Debug)]
pub struct AuthenticatedSession(pub(crate) Mutex<Box<dyn Session>>);

impl AuthenticatedSession {
    /// Runs `f` with the session.
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Session) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.as_mut())
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
}

/// The session of the connection `client` belongs to, once it has authenticated.
pub fn session<C: ClientInfo + ?Sized>(client: &C) -> Option<Arc<AuthenticatedSession>> {
    client.session_extensions().get::<AuthenticatedSession>()
}
