//! The guard around one admitted attempt.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{Ending, Hold, Refusal};

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
/// during round trips; one allocation with the limiter's hold.
pub(crate) struct Shared<H: ?Sized = dyn Hold> {
    /// [`HOLDING`], [`AWAITING`], [`LEFT`], [`REFUSED`], [`ENDED`]. One attempt's steps
    /// run one after another (the wrapper runs inside the chain's await), so plain
    /// read-modify-writes suffice; atomics only make the state shareable.
    flags: AtomicU8,
    refusal: Mutex<Option<Refusal>>,
    hold: H,
}

/// A verification slot is held.
const HOLDING: u8 = 1;
/// The client is being awaited (a round trip is under way).
const AWAITING: u8 = 2;
/// The client went away or broke the exchange.
const LEFT: u8 = 4;
/// The limiter refused a slot; the refusal is in `refusal`.
const REFUSED: u8 = 8;
/// Ended: nothing more reaches the hold.
const ENDED: u8 = 16;

impl Reservation {
    /// A reservation around `hold`.
    pub fn new(hold: impl Hold + 'static) -> Self {
        let shared: Arc<Shared> = Arc::new(Shared {
            flags: AtomicU8::new(0),
            refusal: Mutex::new(None),
            hold,
        });
        Self {
            shared: Some(shared),
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

    /// A round trip to the client begins: the verification slot goes back until
    /// [`resume`](Self::resume). The engine's conversation does this between messages; a
    /// front door that drives an exchange itself calls it too.
    pub fn pause(&self) {
        if let Some(shared) = &self.shared {
            shared.pause();
        }
    }

    /// The client answered a round: takes a slot again to verify the answer, waiting at
    /// most `wait`.
    pub async fn resume(&self, wait: Duration) -> Result<(), Refusal> {
        match &self.shared {
            Some(shared) => shared.resume(wait).await,
            None => Ok(()),
        }
    }

    /// The refusal met while waiting for a slot, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.shared.as_ref().and_then(|s| s.refusal())
    }

    /// Whether the client went away, or was being awaited when the attempt stopped.
    pub fn client_left(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.flags() & (LEFT | AWAITING) != 0)
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
        if let Some(shared) = self.shared.take() {
            shared.end(Ending::Abandoned);
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shared {
            Some(s) => f
                .debug_struct("Reservation")
                .field("hold", &&s.hold)
                .field("flags", &s.flags())
                .finish(),
            None => f.write_str("Reservation(unlimited)"),
        }
    }
}

impl Shared {
    fn flags(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    fn set(&self, bits: u8) -> u8 {
        self.flags.fetch_or(bits, Ordering::AcqRel)
    }

    fn clear(&self, bits: u8) -> u8 {
        self.flags.fetch_and(!bits, Ordering::AcqRel)
    }

    fn refusal(&self) -> Option<Refusal> {
        if self.flags() & REFUSED == 0 {
            return None;
        }
        *self.refusal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn acquire(&self, wait: Duration) -> Result<(), Refusal> {
        let f = self.flags();
        if f & (HOLDING | ENDED) != 0 {
            return Ok(());
        }
        if let Some(r) = self.refusal() {
            return Err(r);
        }
        // Nothing between the hold's answer and the flag below can drop this future, so
        // a slot taken is always a slot recorded.
        let taken = match self.hold.try_acquire() {
            Some(answer) => answer,
            None => self.hold.acquire(wait).await,
        };
        match taken {
            Ok(()) => {
                self.set(HOLDING);
            }
            Err(r) => {
                *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
                self.set(REFUSED);
            }
        }
        taken
    }

    /// A round trip to the client begins: the slot goes back.
    pub(crate) fn pause(&self) {
        if self.flags() & ENDED != 0 {
            return;
        }
        self.set(AWAITING);
        if self.clear(HOLDING) & HOLDING != 0 {
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
        self.clear(AWAITING);
    }

    /// The client went away or broke the exchange.
    pub(crate) fn left(&self) {
        self.clear(AWAITING);
        self.set(LEFT);
    }

    /// Ends once.
    fn end(&self, ending: Ending) {
        let before = self.set(ENDED);
        if before & ENDED != 0 {
            return;
        }
        self.hold.end(ending, before & HOLDING != 0);
    }
}
