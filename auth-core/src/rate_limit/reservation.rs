//! The guard around one admitted attempt.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{Ending, Hold, Refusal};

/// What is called when an attempt ends without an outcome (the audit's `abandoned`).
type OnAbandon = Box<dyn FnOnce() + Send>;

/// One admitted attempt's claim on the limiter.
///
/// Whatever ends the attempt gives the claim back exactly once: [`finish`](Self::finish)
/// with the outcome, or dropping the reservation (a timeout, an aborted task, a client
/// that hung up, a panic), which counts as [`Ending::Abandoned`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use auth_core::rate_limit::{Ending, LimitSettings, Subject};
/// use auth_core::{MemoryRateLimiter, RateLimiter};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let limiter = MemoryRateLimiter::new(LimitSettings::default());
/// let from = Subject { user: Some("alice"), address: Some("192.0.2.7".parse().unwrap()), localhost: false };
/// let reservation = limiter.admit(&from).await.unwrap();
/// reservation.verify(Duration::from_secs(5)).await.unwrap(); // the password arrived
/// reservation.finish(Ending::Succeeded);
/// assert_eq!(limiter.running().attempts, 0);
/// # });
/// ```
pub struct Reservation {
    shared: Option<Arc<Shared>>,
}

/// The reservation's state, shared with the conversation wrapper that gives the slot back
/// during round trips.
pub(crate) struct Shared {
    hold: Box<dyn Hold>,
    flags: Mutex<Flags>,
    on_abandon: Mutex<Option<OnAbandon>>,
}

#[derive(Debug, Default)]
struct Flags {
    holding: bool,
    awaiting_client: bool,
    client_left: bool,
    refused: Option<Refusal>,
    ended: bool,
}

impl Reservation {
    /// A reservation around `hold`.
    pub fn new(hold: impl Hold + 'static) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                hold: Box::new(hold),
                flags: Mutex::new(Flags::default()),
                on_abandon: Mutex::new(None),
            })),
        }
    }

    /// A reservation that limits nothing (an exempt client).
    pub fn unlimited() -> Self {
        Self { shared: None }
    }

    /// Whether anything is limited.
    pub fn is_limited(&self) -> bool {
        self.shared.is_some()
    }

    /// Takes a verification slot: the secret or proof has arrived. Waits at most `wait`;
    /// a refusal is also remembered for [`refusal`](Self::refusal).
    pub async fn verify(&self, wait: Duration) -> Result<(), Refusal> {
        match &self.shared {
            Some(shared) => shared.acquire(wait).await,
            None => Ok(()),
        }
    }

    /// The refusal met while waiting for a slot, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.shared.as_ref().and_then(|s| s.flags().refused)
    }

    /// Whether the client went away, or was being awaited when the attempt stopped.
    pub fn client_left(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| {
            let f = s.flags();
            f.client_left || f.awaiting_client
        })
    }

    /// Calls `f` if the attempt ends by being dropped rather than finished.
    pub fn on_abandon(&self, f: impl FnOnce() + Send + 'static) {
        if let Some(s) = &self.shared {
            *s.on_abandon.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(f));
        }
    }

    /// Ends the attempt with `ending`.
    pub fn finish(mut self, ending: Ending) {
        if let Some(shared) = self.shared.take() {
            shared.end(ending);
        }
    }

    /// The state the conversation wrapper shares.
    pub(crate) fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.clone()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take()
            && shared.end(Ending::Abandoned)
        {
            let note = shared
                .on_abandon
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(note) = note {
                note();
            }
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shared {
            Some(s) => f
                .debug_struct("Reservation")
                .field("hold", &s.hold)
                .field("flags", &*s.flags())
                .finish(),
            None => f.write_str("Reservation(unlimited)"),
        }
    }
}

impl Shared {
    fn flags(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn acquire(&self, wait: Duration) -> Result<(), Refusal> {
        {
            let f = self.flags();
            if f.holding || f.ended {
                return Ok(());
            }
            if let Some(r) = f.refused {
                return Err(r);
            }
        }
        // Nothing between the hold's answer and the flag below can drop this future, so
        // a slot taken is always a slot recorded.
        let taken = self.hold.acquire(wait).await;
        let mut f = self.flags();
        match taken {
            Ok(()) => f.holding = true,
            Err(r) => f.refused = Some(r),
        }
        taken
    }

    /// A round trip to the client begins: the slot goes back.
    pub(crate) fn pause(&self) {
        let mut f = self.flags();
        if f.ended {
            return;
        }
        f.awaiting_client = true;
        if std::mem::take(&mut f.holding) {
            self.hold.release();
        }
    }

    /// The client answered: take a slot again to verify the answer.
    pub(crate) async fn resume(&self, wait: Duration) -> Result<(), Refusal> {
        self.answered();
        self.acquire(wait).await
    }

    /// The round ended without the client being awaited any longer.
    pub(crate) fn answered(&self) {
        self.flags().awaiting_client = false;
    }

    /// The client went away or broke the exchange.
    pub(crate) fn left(&self) {
        let mut f = self.flags();
        f.awaiting_client = false;
        f.client_left = true;
    }

    /// Ends once; whether this call was the one that ended it.
    fn end(&self, ending: Ending) -> bool {
        let mut f = self.flags();
        if std::mem::replace(&mut f.ended, true) {
            return false;
        }
        let holding = std::mem::take(&mut f.holding);
        drop(f);
        self.hold.end(ending, holding);
        true
    }
}
