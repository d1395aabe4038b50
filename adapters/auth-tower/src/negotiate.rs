//! The conversation an HTTP request lends a GSS-API authenticator: one round only.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auth_core::{Conversation, ConversationError};

/// Keeps the acceptor's final (mutual-authentication) token for the response.
///
/// A request cannot carry another round: a mechanism that needs one gets
/// [`ConversationError::NotInteractive`] and the attempt fails, as RFC 4559 allows for
/// Kerberos, which completes in one round trip.
#[derive(Debug, Default, Clone)]
pub(crate) struct MutualToken(Arc<Mutex<Option<Vec<u8>>>>);

impl MutualToken {
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[async_trait]
impl Conversation for MutualToken {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        Err(ConversationError::NotInteractive { challenge })
    }

    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(data);
        Ok(())
    }
}

/// The `WWW-Authenticate` value that carries the server's final GSS-API `token` back to
/// the client (RFC 4559 section 5).
pub fn negotiate_header(token: &[u8]) -> String {
    use base64::Engine;
    format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}
