//! The published contract suites (feature `contract`).
//!
//! A third party's [`Authenticator`](crate::Authenticator) or
//! [`CredentialStore`](crate::CredentialStore) runs the same properties every
//! implementation in this repository runs, in one call:
//!
//! ```text
//! auth_core::contract::authenticator::run_all(&my_auth, &fixture, &caps).await;
//! auth_core::contract::store::run_all(&my_store, &StoreFixture::new("contract-")).await;
//! auth_core::contract::rate_limiter::run_all(&my_limiter_factory).await;
//! ```
//!
//! Each property is also a `pub async fn` of its own. A broken property panics with a
//! message that starts `` contract property `NAME` broken: `` and says what was seen.

pub mod accounts;
pub mod authenticator;
pub mod rate_limiter;
pub mod revocations;
pub mod store;

/// Panics with the standard message for a broken property.
#[track_caller]
fn broken(property: &str, what: impl std::fmt::Display) -> ! {
    panic!("contract property `{property}` broken: {what}")
}

/// Asserts `condition`, else reports `property` broken with `what`.
#[track_caller]
fn check(condition: bool, property: &str, what: impl FnOnce() -> String) {
    if !condition {
        broken(property, what());
    }
}
