//! Multi-round exchanges (SCRAM, GSSAPI, SPNEGO): what an adapter lends an authenticator to
//! talk to the client, like PAM's conversation function.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::rate_limit::reservation::Shared;

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
    /// The rate limiter refused to verify the client's answer (the user was locked, or
    /// no verification slot freed up in time) while the client was being awaited.
    #[error("the answer was not verified: too many attempts")]
    RateLimited,
}

/// The conversation an [`Attempt`](crate::Attempt) lends its authenticators: the
/// adapter's, plus, when the chain is rate limited, the pacing that gives the user's
/// verification slot back while the client is awaited and takes one again for its answer.
pub(crate) struct Paced {
    inner: Box<dyn Conversation>,
    pacing: Option<(Arc<Shared>, Duration)>,
}

impl Paced {
    pub(crate) fn new(inner: Box<dyn Conversation>) -> Self {
        Self {
            inner,
            pacing: None,
        }
    }

    /// Takes the slot again if a round gave it back; see `Attempt::retake_slot`.
    pub(crate) async fn retake(&mut self) -> Result<(), crate::rate_limit::Refusal> {
        match &self.pacing {
            Some((shared, wait)) => shared.resume(*wait).await,
            None => Ok(()),
        }
    }

    /// Paces the rounds by `shared`, waiting at most `wait` for a slot; `None` stops.
    pub(crate) fn pace(&mut self, pacing: Option<(Arc<Shared>, Duration)>) {
        self.pacing = pacing;
    }
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("inner", &self.inner)
            .field("paced", &self.pacing.is_some())
            .finish()
    }
}

#[async_trait]
impl Conversation for Paced {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        let Some((shared, wait)) = &self.pacing else {
            return self.inner.exchange(challenge).await;
        };
        shared.pause();
        match self.inner.exchange(challenge).await {
            Ok(answer) => match shared.resume(*wait).await {
                Ok(()) => Ok(answer),
                Err(_) => Err(ConversationError::RateLimited),
            },
            // No client is waiting for another round: nothing was abandoned.
            Err(e @ ConversationError::NotInteractive { .. }) => {
                shared.answered();
                Err(e)
            }
            Err(e) => {
                shared.left();
                Err(e)
            }
        }
    }

    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError> {
        let done = self.inner.complete(data).await;
        if let (Err(_), Some((shared, _))) = (&done, &self.pacing) {
            shared.left();
        }
        done
    }
}

/// What the authenticator side sends the client through a [`channel`] conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// A challenge; the client must answer with [`ConversationPeer::answer`].
    Challenge(Vec<u8>),
    /// The mechanism's final message; no answer is expected.
    Final(Vec<u8>),
}

/// The authenticator's end of a [`channel`] conversation.
#[derive(Debug)]
pub struct ChannelConversation {
    to_client: tokio::sync::mpsc::Sender<ServerMessage>,
    from_client: tokio::sync::mpsc::Receiver<Vec<u8>>,
    max_answer: usize,
}

/// The adapter's end of a [`channel`] conversation: it forwards each [`ServerMessage`] to
/// the client in its protocol's framing and passes the client's answers back.
#[derive(Debug)]
pub struct ConversationPeer {
    from_server: tokio::sync::mpsc::Receiver<ServerMessage>,
    to_server: tokio::sync::mpsc::Sender<Vec<u8>>,
}

/// A conversation over two channels, for adapters whose connection loop is push-style:
/// the authentication runs in its own task holding the [`ChannelConversation`], and the
/// connection loop holds the [`ConversationPeer`]. Answers longer than `max_answer`
/// bytes fail the round with [`ConversationError::TooLarge`].
pub fn channel(max_answer: usize) -> (ChannelConversation, ConversationPeer) {
    let (to_client, from_server) = tokio::sync::mpsc::channel(1);
    let (to_server, from_client) = tokio::sync::mpsc::channel(1);
    (
        ChannelConversation {
            to_client,
            from_client,
            max_answer,
        },
        ConversationPeer {
            from_server,
            to_server,
        },
    )
}

#[async_trait]
impl Conversation for ChannelConversation {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        self.to_client
            .send(ServerMessage::Challenge(challenge))
            .await
            .map_err(|_| ConversationError::Closed)?;
        let answer = self
            .from_client
            .recv()
            .await
            .ok_or(ConversationError::Closed)?;
        if answer.len() > self.max_answer {
            return Err(ConversationError::TooLarge {
                limit: self.max_answer,
            });
        }
        Ok(answer)
    }

    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError> {
        self.to_client
            .send(ServerMessage::Final(data))
            .await
            .map_err(|_| ConversationError::Closed)
    }
}

impl ConversationPeer {
    /// The next message for the client; `None` once the authentication has finished and
    /// dropped its end.
    pub async fn next(&mut self) -> Option<ServerMessage> {
        self.from_server.recv().await
    }

    /// Passes the client's answer to the pending challenge.
    pub async fn answer(&self, answer: Vec<u8>) -> Result<(), ConversationError> {
        self.to_server
            .send(answer)
            .await
            .map_err(|_| ConversationError::Closed)
    }
}
