//! Shared state for several gateways on Redis: the rate limiter and its lockouts, and the
//! revocation list.
//!
//! Every gateway that uses the same store and key prefix counts failures, locks and known
//! networks together, so two instances behind a load balancer give an attacker no more
//! guesses than one, and a restart forgets no lockout. The semantics are auth-core's
//! ([`auth_core::rate_limit`]); the crate passes auth-core's published limiter contract.
//!
//! - **One script per step**: admission (with the first verification slot, one round trip
//!   for both), taking a slot after a wait or a round trip to the client, giving it back,
//!   and the ending. Times are the caller's clock, deadlines are values, and TTLs only
//!   collect garbage.
//! - **Ordered**: one task sends every step of a process in the order they were made,
//!   batching whatever queued into one pipeline; a slot given back and an ending are not
//!   awaited, but a later admission by the same process sees them.
//! - **Cluster**: every key of a decision carries the prefix as its hash tag, so one script
//!   reaches them all in one slot (the limiter's traffic goes to one primary; its data is
//!   small).
//! - **Outage**: a store that does not answer within the response timeout (default 40 ms)
//!   is down; attempts are then refused as unavailable (default), decided by this
//!   process's own limiter, or not limited (`danger_allow`), audited once per interval,
//!   until a probe finds the store again.
//! - **TLS and ACL**: `rediss://` verified against the CAs you give (or the Mozilla roots), an
//!   ACL user whose password comes from the environment or the wallet.
//!
//! See [`RedisRateLimiter`] and [`RedisSettings`].
#![forbid(unsafe_code)]

mod connect;
mod limiter;
mod outage;
mod revocations;
mod settings;
mod writer;

pub use limiter::{RedisRateLimiter, RedisRateLimiterBuilder, StartError, StepCounts};
pub use outage::{OUTAGE_DECISIONS_METRIC, OnOutage, STORE_UP_METRIC};
pub use revocations::{RedisRevocations, RedisRevocationsBuilder, ReplicatedRevocations};
pub use settings::{RedisOptions, RedisSettings};

// The README's Rust blocks as doctests: `cargo test --doc` compiles them, and runs those
// not marked `no_run`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
