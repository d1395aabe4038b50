//! Hashing on the bounded pool: what the authenticators and `set_password` call.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::hash::{self, Argon2Settings, HashError, Scratch, Verification};
use crate::pool::{HashingPool, PoolClosed};
use crate::scram::ScramVerifier;

/// The SCRAM iteration count for new verifiers (PostgreSQL's default).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;

/// Why hashing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashFailure {
    /// The pool is not running.
    #[error(transparent)]
    Pool(#[from] PoolClosed),
    /// The stored hash cannot be used.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Hashes and verifies passwords on a [`HashingPool`] with fixed parameters.
#[derive(Debug, Clone)]
pub struct Hasher {
    pool: HashingPool,
    settings: Argon2Settings,
    scram_iterations: u32,
    /// A hash of a random password with `settings`, verified against for unknown users so
    /// that they cost what a wrong password costs.
    dummy: Arc<str>,
}

impl Hasher {
    /// A hasher with one thread per core and `settings` for new hashes.
    pub fn new(settings: Argon2Settings) -> Result<Self, HashFailure> {
        Self::with_pool(HashingPool::per_core(&settings), settings)
    }

    /// A hasher on an existing pool.
    pub fn with_pool(pool: HashingPool, settings: Argon2Settings) -> Result<Self, HashFailure> {
        let mut random = [0u8; 24];
        getrandom::fill(&mut random)
            .map_err(|e| HashError::Corrupt(format!("no randomness: {e}")))?;
        let mut scratch = Scratch::default();
        let dummy = hash::hash_argon2id(&random, &settings, &mut scratch)?;
        Ok(Self {
            pool,
            settings,
            scram_iterations: DEFAULT_SCRAM_ITERATIONS,
            dummy: dummy.into(),
        })
    }

    /// Uses `iterations` for new SCRAM verifiers (at least 4096).
    #[must_use]
    pub fn with_scram_iterations(mut self, iterations: u32) -> Self {
        self.scram_iterations = iterations.max(DEFAULT_SCRAM_ITERATIONS);
        self
    }

    /// The argon2id parameters for new hashes.
    pub fn settings(&self) -> &Argon2Settings {
        &self.settings
    }

    /// The pool.
    pub fn pool(&self) -> &HashingPool {
        &self.pool
    }

    /// A new argon2id PHC string for `password`.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashFailure> {
        let settings = self.settings;
        Ok(self
            .pool
            .run(move |scratch| {
                hash::hash_argon2id(password.expose_secret().as_bytes(), &settings, scratch)
            })
            .await??)
    }

    /// Checks `password` against `stored`.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: String,
    ) -> Result<Verification, HashFailure> {
        let settings = self.settings;
        Ok(self
            .pool
            .run(move |scratch| {
                hash::verify(
                    password.expose_secret().as_bytes(),
                    &stored,
                    &settings,
                    scratch,
                )
            })
            .await??)
    }

    /// Verifies `password` against the dummy hash and discards the answer: what an unknown
    /// user costs.
    pub async fn verify_dummy(&self, password: SecretString) {
        let _ = self.verify(password, self.dummy.to_string()).await;
    }

    /// A SCRAM-SHA-256 verifier for `password` with a fresh salt.
    pub async fn scram_verifier(
        &self,
        password: SecretString,
    ) -> Result<ScramVerifier, HashFailure> {
        let iterations = self.scram_iterations;
        Ok(self
            .pool
            .run(move |_| ScramVerifier::generate(password.expose_secret(), iterations))
            .await??)
    }
}

#[async_trait::async_trait]
impl auth_core::EqualCost for Hasher {
    async fn verify_dummy(&self, password: SecretString) {
        Hasher::verify_dummy(self, password).await;
    }
}
