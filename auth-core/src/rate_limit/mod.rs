//! Rate limiting and lockout that no stranger can turn against a user.
//!
//! The chain asks its [`RateLimiter`] to [`admit`](RateLimiter::admit) every attempt
//! before any method runs, and gets a [`Reservation`]: a guard that whatever ends the
//! attempt (an outcome, a timeout, an abort, a dropped future, a panic) gives back
//! exactly once. A shared store (Redis) implements each step in one round trip.
//!
//! # What is counted, and what it does
//!
//! | event | counts against | effect |
//! |---|---|---|
//! | attempt admitted (before any method runs) | the address's running attempts | over [`max_running_per_address`](LimitSettings::max_running_per_address): refused at once as `busy`; never a failure |
//! | the secret or proof arrives | a verification slot of the user's scope | at most `user_failures` minus that scope's recent failures verify at once; others wait in a bounded queue (up to the link timeout), and are refused as `busy` when it is full or they waited too long |
//! | a round trip to the client (SCRAM, GSS) | nothing | the verification slot is given back while the client is awaited |
//! | wrong secret, unknown user, unusable account | the user's scope and the address | `user_failures` in `window` lock the scope; `address_failures` lock the address |
//! | exchange abandoned by the client (hang-up, aborted task, timeout while awaiting the client, a frame out of turn) | the address only, kind `abandoned` | the client proved nothing, so the user is untouched |
//! | malformed credential | the address only, kind `malformed` | as abandoned |
//! | outage, nothing applied, refused by the limiter | nothing | the reservation is released |
//! | the limiter's own store does not answer | nothing | refused as [`Refusal::Unavailable`] (fail closed), or decided as the limiter is configured (a local fallback, or a `danger_` fail-open) |
//! | success | resets the user's scope | and makes the address's network (IPv4 /24, IPv6 /64) *known* for the user for [`known_for`](LimitSettings::known_for) |
//!
//! # Scopes: smart lockout
//!
//! A user's failures are counted per scope, chosen when the attempt is admitted:
//!
//! | the client's network is | scope | a lockout there blocks |
//! |---|---|---|
//! | known for the user (a success from it within `known_for`) | user at that network | the user at that network only |
//! | not known (or the user never logged in) | user at unknown addresses | the user everywhere except at known networks |
//!
//! So a guesser elsewhere still stops after `user_failures` wrong secrets, while the user
//! keeps logging in from where they always do. Addresses are counted on their own (IPv4
//! exactly, IPv6 by /64) and a locked address refuses every user.
//!
//! Each further lockout of the same key doubles its length up to `max_lockout`; a quiet
//! period of `max_lockout` forgives earlier lockouts. Localhost clients are exempt unless
//! [`exempt_localhost`](LimitSettings::exempt_localhost) is off. Memory is bounded by
//! [`max_tracked`](LimitSettings::max_tracked) keys per table and
//! [`max_known_per_user`](LimitSettings::max_known_per_user) networks per user.
//!
//! # A shared store
//!
//! Each step is one round trip for a store such as Redis (a Lua script per step):
//! [`admit`](RateLimiter::admit) checks the address and scope locks, looks the network up
//! among the user's known ones and counts the attempt running; [`Hold::acquire`] takes a
//! slot when `failures + verifying < limit` (waiting on a notification or a short poll
//! otherwise); [`Hold::release`] gives it back; [`Hold::end`] counts the ending, frees the
//! slot and the running count, and may be sent without awaiting the answer, since it also
//! runs when a future is dropped. In-process limiters answer through the synchronous
//! [`RateLimiter::try_admit`] and [`Hold::try_acquire`] and skip the boxed futures.
//!
//! # Audit
//!
//! The chain reports a refusal as a `lockout` event whose detail gives the scope (`user`
//! at unknown addresses, `address`, `user at address`) and the real remaining time, a
//! full queue or address as `busy`, an exchange the client left as `abandoned`, and a
//! refusal for want of the limiter's store as a failed attempt with the `unavailable`
//! error (never as a lockout).
//!
//! # A limiter of your own
//!
//! [`contract::rate_limiter`](crate::contract::rate_limiter) (feature `contract`) holds one
//! property per row of the tables above; a third party's limiter runs them all in one call.

mod counter;
mod memory;
pub(crate) mod reservation;

use std::fmt::{self, Debug};
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

pub use memory::{MemoryRateLimiter, Running};
pub use reservation::Reservation;

/// Who an attempt is from, as far as limiting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The user named in the attempt.
    pub user: Option<&'a str>,
    /// The client's IP address.
    pub address: Option<IpAddr>,
    /// Whether the client is on this machine.
    pub localhost: bool,
}

/// What a lockout blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockScope {
    /// The user, from every network not known for them.
    User,
    /// The client address, for every user.
    Address,
    /// The user at one network known for them.
    UserAtAddress,
}

impl LockScope {
    /// How the audit log names the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user at unknown addresses",
            Self::Address => "address",
            Self::UserAtAddress => "user at address",
        }
    }
}

/// What is too busy to take the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Busy {
    /// Too many unfinished attempts from this address.
    Address,
    /// The user's verification queue is full, or the wait for a slot ran out.
    User,
}

/// Why the limiter refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Locked after repeated failures.
    Locked {
        /// How long until the lock lifts.
        retry_after: Duration,
        /// What is locked.
        scope: LockScope,
    },
    /// Too busy right now; no failure was counted.
    Busy(Busy),
    /// The limiter's shared store did not answer in time, and the limiter is configured
    /// to refuse rather than decide without it (fail closed). Nothing was counted.
    Unavailable,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked { retry_after, scope } => {
                // Rounded up: "0 s" left would read as "not locked".
                let ms = retry_after.as_millis();
                let secs = ms.div_ceil(1000).max(1);
                write!(
                    f,
                    "{} locked for another {secs} s after repeated failures",
                    scope.as_str()
                )
            }
            Self::Busy(Busy::Address) => {
                f.write_str("busy: too many unfinished attempts from this address")
            }
            Self::Busy(Busy::User) => {
                f.write_str("busy: no verification slot for this user within the wait")
            }
            Self::Unavailable => f.write_str(
                "the rate limiter's store did not answer; attempts are refused until it does",
            ),
        }
    }
}

/// How an attempt ended, as the limiter counts it (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ending {
    /// Authenticated.
    Succeeded,
    /// A wrong secret, an unknown user or an unusable account: counts against the user's
    /// scope and the address.
    Failed,
    /// The client left an exchange it had begun: counts against the address only.
    Abandoned,
    /// The client's credential could not be read: counts against the address only.
    Malformed,
    /// Counts neither way (an outage, nothing applied, refused by the limiter).
    Neutral,
}

impl Ending {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
            Self::Malformed => "malformed",
            Self::Neutral => "neutral",
        }
    }
}

/// A rate limiter and lockout store. The in-memory [`MemoryRateLimiter`] serves one
/// process; a shared store (Redis) lets several instances count together.
///
/// An implementation answers [`admit`](Self::admit) with a [`Reservation`] around its own
/// [`Hold`]; the reservation enforces the call order on the hold.
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug {
    /// Admits or refuses without waiting when the answer is at hand (an in-process
    /// limiter); `None` sends the caller to [`admit`](Self::admit). The default always
    /// answers `None`.
    fn try_admit(&self, _subject: &Subject<'_>) -> Option<Result<Reservation, Refusal>> {
        None
    }

    /// Admits an attempt from `subject` before any method runs, or refuses it: a locked
    /// address or user scope, or too many attempts running from the address.
    ///
    /// Must be cancel-safe: the future may be dropped at any await (the client hung
    /// up), and what it had counted by then must be given back (a shared store's script
    /// that admitted must be undone, for example by a short expiry on the running count).
    async fn admit(&self, subject: &Subject<'_>) -> Result<Reservation, Refusal>;
}

/// A limiter's side of one admitted attempt, driven by its [`Reservation`], which
/// guarantees the order: [`acquire`](Self::acquire) and [`release`](Self::release)
/// alternate (starting with acquire), and [`end`](Self::end) comes exactly once, last.
#[async_trait]
pub trait Hold: Send + Sync + Debug {
    /// Takes a verification slot without waiting when the answer is at hand: `Some` with
    /// the slot taken or the refusal, `None` when it has to wait or ask a shared store
    /// (then [`acquire`](Self::acquire) follows). The default always answers `None`.
    fn try_acquire(&self) -> Option<Result<(), Refusal>> {
        None
    }

    /// Takes a verification slot in the user's scope, waiting at most `wait` for one.
    /// An attempt naming no user needs no slot and gets `Ok` at once. Must be cancel-safe
    /// like [`RateLimiter::admit`]: a slot granted to a dropped future must not stay taken.
    async fn acquire(&self, wait: Duration) -> Result<(), Refusal>;

    /// Gives the verification slot back (a round trip to the client begins).
    fn release(&self);

    /// Ends the attempt: counts `ending`, gives the slot back if `holding` and frees the
    /// address's running count. It must not block: it also runs when a future is
    /// dropped. A shared store sends it without awaiting the answer.
    fn end(&self, ending: Ending, holding: bool);
}

/// Limits and lockout durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Failures per user scope within `window` that lock the scope; also the number of
    /// verifications one scope runs at once.
    pub user_failures: u32,
    /// Failures per address within `window` that lock the address.
    pub address_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// The first lockout's length; each further lockout doubles it.
    pub lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// Whether localhost clients are never limited.
    pub exempt_localhost: bool,
    /// How many keys each table (user scopes, addresses, users with known networks)
    /// holds at most. Beyond it, keys with nothing to remember are dropped first, then
    /// the longest-quiet ones, so a spray of made-up user names cannot grow memory.
    pub max_tracked: usize,
    /// How many attempts may run at once from one address (the pre-authentication
    /// concurrency cap); beyond it, attempts are refused as busy.
    pub max_running_per_address: u32,
    /// How many attempts may wait for a verification slot of one user scope.
    pub max_waiting_per_user: u32,
    /// How long a success makes its network known for the user (smart lockout).
    pub known_for: Duration,
    /// How many networks are remembered per user; the least recent goes first.
    pub max_known_per_user: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            user_failures: 5,
            address_failures: 20,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            exempt_localhost: true,
            max_tracked: 100_000,
            max_running_per_address: 64,
            max_waiting_per_user: 256,
            known_for: Duration::from_secs(30 * 86_400),
            max_known_per_user: 8,
        }
    }
}

/// The key an address is counted under: IPv6 clients by their /64, since one host
/// usually holds a whole /64; IPv4-mapped addresses as IPv4; `::1` as itself (its /64 is
/// `::`, which is not loopback). Adapters counting per address (connection caps) use the
/// same key.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if v6.is_loopback() => ip,
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

/// The network a success makes known for its user (smart lockout): IPv4 /24, IPv6 /64.
/// A shared store keys known networks the same way.
pub fn network_key(ip: IpAddr) -> IpAddr {
    match address_key(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4([a, b, c, 0].into())
        }
        v6 => v6,
    }
}
