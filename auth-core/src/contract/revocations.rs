//! The contract every [`Revocations`] store keeps: the table in [`crate::revocation`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use auth_core::clock::SharedClock;
//! use auth_core::contract::revocations::{RevocationsFactory, run_all};
//! use auth_core::{MemoryRevocations, Revocations};
//!
//! struct Fresh;
//!
//! #[async_trait]
//! impl RevocationsFactory for Fresh {
//!     async fn revocations(&self, keep_for: Duration, clock: SharedClock) -> Arc<dyn Revocations> {
//!         Arc::new(MemoryRevocations::with_clock(keep_for, clock))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! run_all(&Fresh).await;
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::check;
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::revocation::{Revocations, TokenFacts, TokenId};

/// Makes the stores the properties run against.
#[async_trait]
pub trait RevocationsFactory: Send + Sync {
    /// A store sharing nothing with those made before, keeping user and grant revocations
    /// `keep_for`, reading time from `clock`.
    async fn revocations(&self, keep_for: Duration, clock: SharedClock) -> Arc<dyn Revocations>;
}

const DAY: Duration = Duration::from_secs(86_400);

async fn fresh(factory: &dyn RevocationsFactory) -> (Arc<dyn Revocations>, ManualClock) {
    let clock = ManualClock::at_fixed_epoch();
    (
        factory.revocations(DAY, Arc::new(clock.clone())).await,
        clock,
    )
}

fn token<'a>(
    jti: &str,
    user: &'a str,
    grant: Option<&'a str>,
    iat: Option<SystemTime>,
) -> TokenFacts<'a> {
    TokenFacts {
        id: TokenId::Jti(jti.to_owned()),
        user: Some(user),
        grant,
        issued_at: iat,
    }
}

async fn revoked(store: &dyn Revocations, facts: &TokenFacts<'_>, property: &str) -> bool {
    match store.is_revoked(facts).await {
        Ok(r) => r,
        Err(e) => super::broken(property, format!("is_revoked failed: {e}")),
    }
}

/// Runs every property.
pub async fn run_all(factory: &dyn RevocationsFactory) {
    a_revoked_token_is_refused_and_no_other(factory).await;
    an_opaque_token_is_revoked_by_its_digest(factory).await;
    a_users_revocation_covers_what_was_issued_up_to_it(factory).await;
    a_grants_revocation_covers_what_was_issued_up_to_it(factory).await;
    a_revocation_never_moves_back(factory).await;
    users_and_grants_do_not_share_names(factory).await;
}

/// One token, by `jti`: refused; another token of the same user is not.
pub async fn a_revoked_token_is_refused_and_no_other(factory: &dyn RevocationsFactory) {
    const P: &str = "a_revoked_token_is_refused_and_no_other";
    let (store, clock) = fresh(factory).await;
    let now = clock.now();
    let t1 = token("t-1", "alice", None, Some(now));
    let t2 = token("t-2", "alice", None, Some(now));
    check(!revoked(&*store, &t1, P).await, P, || {
        "a token nobody revoked is revoked".into()
    });
    store
        .revoke_token(&t1.id, now + Duration::from_secs(3600))
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    check(revoked(&*store, &t1, P).await, P, || {
        "the revoked token is not refused".into()
    });
    check(!revoked(&*store, &t2, P).await, P, || {
        "another token of the user is refused".into()
    });
    clock.advance(Duration::from_secs(1800));
    check(revoked(&*store, &t1, P).await, P, || {
        "the revocation lapsed before the token's expiry".into()
    });
}

/// An opaque token, by the SHA-256 of its text.
pub async fn an_opaque_token_is_revoked_by_its_digest(factory: &dyn RevocationsFactory) {
    const P: &str = "an_opaque_token_is_revoked_by_its_digest";
    let (store, clock) = fresh(factory).await;
    let now = clock.now();
    let opaque = |text: &str| TokenFacts {
        id: TokenId::digest_of(text),
        user: None,
        grant: None,
        issued_at: None,
    };
    store
        .revoke_token(
            &TokenId::digest_of("opaque-token-1"),
            now + Duration::from_secs(600),
        )
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    check(
        revoked(&*store, &opaque("opaque-token-1"), P).await,
        P,
        || "the revoked opaque token is not refused".into(),
    );
    check(
        !revoked(&*store, &opaque("opaque-token-2"), P).await,
        P,
        || "another opaque token is refused".into(),
    );
}

/// Every token of a user issued at or before the revocation, or without `iat`; not one
/// issued after it, and not another user's.
pub async fn a_users_revocation_covers_what_was_issued_up_to_it(factory: &dyn RevocationsFactory) {
    const P: &str = "a_users_revocation_covers_what_was_issued_up_to_it";
    let (store, clock) = fresh(factory).await;
    let before = clock.now();
    clock.advance(Duration::from_secs(10));
    let at = clock.now();
    store
        .revoke_user("alice", at)
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    for (what, facts, want) in [
        (
            "issued before",
            token("a", "alice", None, Some(before)),
            true,
        ),
        (
            "issued at the revocation",
            token("b", "alice", None, Some(at)),
            true,
        ),
        ("without iat", token("c", "alice", None, None), true),
        (
            "issued after",
            token("d", "alice", None, Some(at + Duration::from_secs(1))),
            false,
        ),
        (
            "another user's",
            token("e", "bob", None, Some(before)),
            false,
        ),
    ] {
        let got = revoked(&*store, &facts, P).await;
        check(got == want, P, || {
            format!("a token {what} the user's revocation: revoked {got}, expected {want}")
        });
    }
}

/// As for a user, for the grant id a token carries.
pub async fn a_grants_revocation_covers_what_was_issued_up_to_it(factory: &dyn RevocationsFactory) {
    const P: &str = "a_grants_revocation_covers_what_was_issued_up_to_it";
    let (store, clock) = fresh(factory).await;
    let at = clock.now();
    store
        .revoke_grant("grant-7", at)
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    for (what, facts, want) in [
        (
            "of the grant, issued before",
            token(
                "a",
                "alice",
                Some("grant-7"),
                Some(at - Duration::from_secs(5)),
            ),
            true,
        ),
        (
            "of the grant, issued after",
            token(
                "b",
                "alice",
                Some("grant-7"),
                Some(at + Duration::from_secs(5)),
            ),
            false,
        ),
        (
            "of another grant",
            token("c", "alice", Some("grant-8"), Some(at)),
            false,
        ),
        ("of no grant", token("d", "alice", None, Some(at)), false),
    ] {
        let got = revoked(&*store, &facts, P).await;
        check(got == want, P, || {
            format!("a token {what}: revoked {got}, expected {want}")
        });
    }
}

/// A later revocation of a user stands when an earlier time is revoked again.
pub async fn a_revocation_never_moves_back(factory: &dyn RevocationsFactory) {
    const P: &str = "a_revocation_never_moves_back";
    let (store, clock) = fresh(factory).await;
    let early = clock.now();
    let late = early + Duration::from_secs(60);
    store
        .revoke_user("alice", late)
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    store
        .revoke_user("alice", early)
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    let between = token("a", "alice", None, Some(early + Duration::from_secs(30)));
    check(revoked(&*store, &between, P).await, P, || {
        "an earlier revocation undid a later one".into()
    });
}

/// A user and a grant of the same name are different things.
pub async fn users_and_grants_do_not_share_names(factory: &dyn RevocationsFactory) {
    const P: &str = "users_and_grants_do_not_share_names";
    let (store, clock) = fresh(factory).await;
    let at = clock.now();
    store
        .revoke_user("shared-name", at)
        .await
        .unwrap_or_else(|e| super::broken(P, e));
    let facts = token("a", "bob", Some("shared-name"), Some(at));
    check(!revoked(&*store, &facts, P).await, P, || {
        "a user's revocation refused a grant of that name".into()
    });
}
