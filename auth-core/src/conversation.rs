//! Multi-round exchanges (SCRAM, GSSAPI, SPNEGO): what an adapter lends an authenticator to
//! talk to the client, like PAM's conversation function.

use async_trait::async_trait;

/// A channel to the client for the rounds of a multi-round mechanism.
///
/// The adapter implements it for its protocol: pgwire sends `AuthenticationSASLContinue`
/// or `AuthenticationGSSContinue` and reads the client's next message. An HTTP adapter
/// cannot hold a request open for another round; its `exchange` returns
/// [`ConversationError::NotInteractive`] and the adapter sends the challenge in
/// `WWW-Authenticate`. Channel-binding data lives in
/// [`ConnectionInfo::channel_binding`](crate::ConnectionInfo::channel_binding).
#[async_trait]
pub trait Conversation: Send + std::fmt::Debug {
    /// Sends `challenge` and waits for the client's answer.
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError>;

    /// Sends the mechanism's final server message, which expects no answer (SCRAM
    /// server-final, the GSSAPI mutual-authentication token).
    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError>;
}

/// Why a conversation round failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversationError {
    /// The transport cannot do another round; the adapter should send `challenge` to the
    /// client in its own way (HTTP `WWW-Authenticate`).
    #[error("the transport cannot carry another authentication round")]
    NotInteractive {
        /// The challenge that could not be delivered.
        challenge: Vec<u8>,
    },
    /// The client went away.
    #[error("the client closed the connection")]
    Closed,
    /// The client's answer was larger than the adapter accepts.
    #[error("the client's answer exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client answered with something other than the expected message.
    #[error("protocol violation: {0}")]
    Protocol(String),
}
