//! Helpers shared by auth-core's integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::engine::EngineBuilder;
use auth_core::{
    AccountError, Attempt, Authenticator, AuthorizationError, Chain, ConnectionInfo, Credential,
    CredentialError, CredentialKind, Engine, Error, InfrastructureError, Outcome, OutcomeClass,
    Policy, Protocol, StandardSession,
};

/// An authenticator that answers every supported attempt with a fixed outcome class and
/// counts its calls.
#[derive(Debug)]
pub struct Scripted {
    pub name: &'static str,
    pub class: OutcomeClass,
    pub error: Error,
    pub delay: Option<Duration>,
    pub calls: AtomicUsize,
}

impl Scripted {
    pub fn new(name: &'static str, class: OutcomeClass) -> Arc<Self> {
        Arc::new(Self {
            name,
            class,
            error: default_error(class),
            delay: None,
            calls: AtomicUsize::new(0),
        })
    }

    pub fn failing(name: &'static str, class: OutcomeClass, error: Error) -> Arc<Self> {
        Arc::new(Self {
            name,
            class,
            error,
            delay: None,
            calls: AtomicUsize::new(0),
        })
    }

    pub fn slow(name: &'static str, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            name,
            class: OutcomeClass::Success,
            error: Error::Authorization(AuthorizationError::Rejected),
            delay: Some(delay),
            calls: AtomicUsize::new(0),
        })
    }

    /// Answers `class` (with its default error) after `delay`.
    pub fn delayed(name: &'static str, class: OutcomeClass, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            name,
            class,
            error: default_error(class),
            delay: Some(delay),
            calls: AtomicUsize::new(0),
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn default_error(class: OutcomeClass) -> Error {
    match class {
        OutcomeClass::Rejected => Error::Credential(CredentialError::Invalid),
        OutcomeClass::AccountRefused => Error::Account(AccountError::Locked),
        OutcomeClass::Unavailable => Error::Infrastructure(InfrastructureError::Unavailable),
        _ => Error::Authorization(AuthorizationError::Rejected),
    }
}

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

#[async_trait]
impl Authenticator for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let user = attempt.user().unwrap_or("nobody").to_owned();
        match self.class {
            OutcomeClass::Success => {
                Outcome::Authenticated(StandardSession::new(user, self.name, t0()).boxed())
            }
            OutcomeClass::NotApplicable => Outcome::NotApplicable,
            OutcomeClass::Rejected => {
                Outcome::rejected(self.error, format!("{} rejected {user}", self.name))
            }
            OutcomeClass::AccountRefused => Outcome::AccountRefused {
                error: AccountError::Locked,
                detail: format!("{} says {user} is locked", self.name).into(),
            },
            OutcomeClass::Unavailable => Outcome::Unavailable(auth_core::Failure::new(
                self.error,
                format!("{} is down", self.name),
            )),
        }
    }
}

pub fn remote_password(user: &str, password: &str) -> Attempt {
    Attempt::new(
        ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.7:50000".parse().unwrap())
            .with_tls(auth_core::TlsInfo::default())
            .with_user(user)
            .with_id(42),
        Credential::password(user, password),
    )
}

/// An engine builder for a policy that runs `chain` for every connection.
pub fn engine(chain: Chain) -> EngineBuilder {
    Engine::builder(Policy::single(chain).unwrap())
}

/// The outcome an adapter gets for `attempt`: the engine's offer for its connection, then
/// the engine's decision (a policy refusal is the rejection).
pub async fn decide(engine: &Engine, attempt: &mut Attempt) -> Outcome {
    match engine.offer(&attempt.connection, attempt.credential.user()) {
        Ok(offer) => engine.decide(&offer, attempt).await,
        Err(failure) => Outcome::Rejected(failure),
    }
}
