//! The in-memory revocations keep the published revocations contract, and stay bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::clock::SharedClock;
use auth_core::contract::revocations::{RevocationsFactory, run_all};
use auth_core::revocation::TokenId;
use auth_core::{Clock, ManualClock, MemoryRevocations, Revocations};

struct Memory;

#[async_trait]
impl RevocationsFactory for Memory {
    async fn revocations(&self, keep_for: Duration, clock: SharedClock) -> Arc<dyn Revocations> {
        Arc::new(MemoryRevocations::with_clock(keep_for, clock))
    }
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    run_all(&Memory).await;
}

#[tokio::test]
async fn expired_revocations_are_forgotten_as_new_ones_come() {
    let clock = ManualClock::at_fixed_epoch();
    let store = MemoryRevocations::with_clock(Duration::from_secs(3600), Arc::new(clock.clone()));
    let now: SystemTime = clock.now();
    for i in 0..10_000 {
        store
            .revoke_token(
                &TokenId::Jti(format!("t-{i}")),
                now + Duration::from_secs(60),
            )
            .await
            .unwrap();
        store.revoke_user(&format!("u-{i}"), now).await.unwrap();
        if i % 1000 == 999 {
            // Every thousand revocations, the earlier ones have run out.
            clock.advance(Duration::from_secs(3601));
        }
    }
    let (tokens, users, _) = store.len();
    assert!(
        tokens <= 2000 && users <= 2000,
        "{tokens} tokens, {users} users held"
    );
}

/// A store with a classic bug: a user's revocation also refuses the tokens issued after
/// it, so a user who logs in again after "log out everywhere" is locked out.
#[derive(Debug)]
struct IgnoresIssuedAt(MemoryRevocations);

#[async_trait]
impl Revocations for IgnoresIssuedAt {
    async fn revoke_token(
        &self,
        id: &TokenId,
        expires: SystemTime,
    ) -> Result<(), auth_core::revocation::RevocationError> {
        self.0.revoke_token(id, expires).await
    }
    async fn revoke_user(
        &self,
        user: &str,
        _at: SystemTime,
    ) -> Result<(), auth_core::revocation::RevocationError> {
        self.0
            .revoke_user(user, SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40))
            .await
    }
    async fn revoke_grant(
        &self,
        grant: &str,
        at: SystemTime,
    ) -> Result<(), auth_core::revocation::RevocationError> {
        self.0.revoke_grant(grant, at).await
    }
    async fn is_revoked(
        &self,
        facts: &auth_core::revocation::TokenFacts<'_>,
    ) -> Result<bool, auth_core::revocation::RevocationError> {
        self.0.is_revoked(facts).await
    }
}

struct Broken;

#[async_trait]
impl RevocationsFactory for Broken {
    async fn revocations(&self, keep_for: Duration, clock: SharedClock) -> Arc<dyn Revocations> {
        Arc::new(IgnoresIssuedAt(MemoryRevocations::with_clock(
            keep_for, clock,
        )))
    }
}

#[tokio::test]
#[should_panic(
    expected = "contract property `a_users_revocation_covers_what_was_issued_up_to_it` broken"
)]
async fn the_contract_catches_a_revocation_that_refuses_later_tokens() {
    run_all(&Broken).await;
}

#[test]
fn a_token_ids_key_reads_back() {
    for id in [
        TokenId::Jti("a:b|c".into()),
        TokenId::digest_of("an opaque token"),
    ] {
        assert_eq!(TokenId::from_key(&id.key()), Some(id));
    }
    assert_eq!(TokenId::from_key("sha256:zz"), None);
    assert_eq!(TokenId::from_key("other"), None);
}
