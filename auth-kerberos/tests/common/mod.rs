//! MIT's initiator (libgssapi's `ClientCtx`) as the client side of an auth-core
//! conversation, shared by the handshake test and bench.
#![allow(dead_code)]

use async_trait::async_trait;
use auth_core::{Conversation, ConversationError};
use libgssapi::context::{ClientCtx, SecurityContext};

/// MIT's initiator as the client side of the conversation.
pub(crate) struct Initiator(pub(crate) ClientCtx);

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initiator")
    }
}

#[async_trait]
impl Conversation for Initiator {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        let out = self
            .0
            .step(Some(&challenge), None)
            .map_err(|e| ConversationError::Protocol(e.to_string()))?;
        Ok(out.map(|b| b.to_vec()).unwrap_or_default())
    }
    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError> {
        self.0
            .step(Some(&data), None)
            .map_err(|e| ConversationError::Protocol(e.to_string()))?;
        if self.0.is_complete() {
            Ok(())
        } else {
            Err(ConversationError::Protocol(
                "mutual authentication did not complete".into(),
            ))
        }
    }
}
