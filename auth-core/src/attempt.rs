//! One authentication attempt: the connection, the credential, and a way to talk back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::SharedClock;
use crate::connection::ConnectionInfo;
use crate::conversation::{Conversation, Paced};
use crate::credential::Credential;
use crate::rate_limit::reservation::Shared;

/// Everything an authenticator gets to decide: the [`ConnectionInfo`], the [`Credential`]
/// the client offered, for multi-round mechanisms a [`Conversation`], and the clock the
/// attempt is judged by (the [`Engine`](crate::Engine)'s, which it sets before any method
/// runs: methods read [`Attempt::now`] rather than keeping a clock of their own).
pub struct Attempt {
    /// The connection.
    pub connection: ConnectionInfo,
    /// The credential the client offered.
    pub credential: Credential,
    conversation: Option<Paced>,
    /// `None`: the system clock (no handle is cloned for an attempt the engine will set).
    clock: Option<SharedClock>,
}

impl Attempt {
    /// An attempt without a conversation.
    pub fn new(connection: ConnectionInfo, credential: Credential) -> Self {
        Self {
            connection,
            credential,
            conversation: None,
            clock: None,
        }
    }

    /// Judges the attempt by `clock` instead of the system clock. The engine sets its own;
    /// this is for running an authenticator on its own (tests, contract suites).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    pub(crate) fn set_clock(&mut self, clock: &SharedClock) {
        self.clock = Some(clock.clone());
    }

    /// The time now, by the attempt's clock: for session start times, expiry and
    /// validity checks.
    pub fn now(&self) -> SystemTime {
        self.clock
            .as_ref()
            .map_or_else(SystemTime::now, |c| c.now())
    }

    /// Adds a conversation for multi-round mechanisms.
    #[must_use]
    pub fn with_conversation(mut self, conversation: Box<dyn Conversation>) -> Self {
        self.conversation = Some(Paced::new(conversation));
        self
    }

    /// The conversation, if the adapter provided one.
    pub fn conversation(&mut self) -> Option<&mut (dyn Conversation + 'static)> {
        self.conversation
            .as_mut()
            .map(|c| c as &mut (dyn Conversation + 'static))
    }

    /// Before the next link of a chain: the slot a round trip gave back is taken again
    /// (and a stale "awaiting the client" cleared), so every link verifies under a slot.
    pub(crate) async fn retake_slot(&mut self) -> Result<(), crate::rate_limit::Refusal> {
        match &mut self.conversation {
            Some(c) => c.retake().await,
            None => Ok(()),
        }
    }

    /// Lets the rate limiter pace the conversation's rounds (see [`Paced`]).
    pub(crate) fn pace(&mut self, pacing: Option<(Arc<Shared>, Duration)>) {
        if let Some(c) = &mut self.conversation {
            c.pace(pacing);
        }
    }

    /// The user this attempt is about: the credential's own user name (HTTP Basic,
    /// cleartext password) or else the user the connection asked for.
    pub fn user(&self) -> Option<&str> {
        self.credential.user().or(self.connection.user.as_deref())
    }
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("connection", &self.connection)
            .field("credential", &self.credential)
            .field("conversation", &self.conversation.is_some())
            .finish()
    }
}
