//! Shared helpers: user set-up, attempts, and the independent SCRAM client from the
//! test harness.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use auth_core::{Attempt, ConnectionInfo, Credential, MemoryStore, Protocol};
use auth_password::{Argon2Settings, Hasher, HashingPool, PasswordPolicy, Users};
#[allow(unused_imports)]
pub use auth_tests::scram_client::{Binding, scram_attempt};
use secrecy::SecretString;

/// Cheap argon2 parameters for tests that are not about hashing cost.
pub fn cheap() -> Argon2Settings {
    Argon2Settings {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    }
}

/// A hasher with a two-thread pool.
pub fn hasher(settings: Argon2Settings) -> Hasher {
    Hasher::with_pool(HashingPool::new(2, &settings), settings).unwrap()
}

/// Users in a fresh memory store, with these passwords set.
pub async fn users_with(pairs: &[(&str, &str)], settings: Argon2Settings) -> (Users, Hasher) {
    let users = Users::new(Arc::new(MemoryStore::new()));
    let hasher = hasher(settings);
    for (user, password) in pairs {
        users
            .set_password(
                &hasher,
                &PasswordPolicy::length_only(),
                user,
                &SecretString::from((*password).to_owned()),
            )
            .await
            .unwrap();
    }
    (users, hasher)
}

/// A cleartext-password attempt from a remote pgwire client.
pub fn password_attempt(user: &str, password: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:40000".parse().unwrap()).with_user(user),
        Credential::password(user, password),
    )
}

/// A secret string.
pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}
