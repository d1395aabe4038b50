//! The revocation list on Redis: a revocation at one instance holds at every instance
//! on the same store and key prefix.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::audit::AuditSink;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::revocation::{RevocationError, Revocations, TokenFacts, TokenId};
use redis::{Cmd, Value};

use crate::limiter::{StartError, millis};
use crate::outage::Component;
use crate::settings::RedisOptions;
use crate::writer::{NoAnswer, Writer};

mod replica;
pub use replica::ReplicatedRevocations;

/// The Lua source of every step.
const SCRIPT: &str = include_str!("revocations.lua");

/// [`Revocations`] on Redis. Each step is one call of one Lua script, sent in order by one
/// task; an ask is one round trip. While the store does not answer within the response
/// timeout, every call fails at once with a [`RevocationError`], and the caller decides
/// by its policy.
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use auth_core::revocation::{Revocations, TokenId};
/// use auth_redis::{RedisOptions, RedisRevocations};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let options = RedisOptions::new("rediss://redis.internal:6380")?;
/// let revocations = RedisRevocations::connect(options, Duration::from_secs(86_400)).await?;
/// let expires = SystemTime::now() + Duration::from_secs(3600);
/// revocations.revoke_token(&TokenId::Jti("a1b2".into()), expires).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisRevocations {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: Writer,
    prefix: String,
    keep_for: Duration,
    clock: SharedClock,
    /// For a replica's connection of its own.
    options: RedisOptions,
}

/// Builds a [`RedisRevocations`].
#[derive(Debug)]
pub struct RedisRevocationsBuilder {
    options: RedisOptions,
    keep_for: Duration,
    clock: SharedClock,
    audit: Option<Arc<dyn AuditSink>>,
}

impl RedisRevocations {
    /// Revocations on the store `options` names, keeping a user's or a grant's revocation
    /// `keep_for` (the longest lifetime of a token it could refuse).
    pub async fn connect(options: RedisOptions, keep_for: Duration) -> Result<Self, StartError> {
        Self::builder(options, keep_for).connect().await
    }

    /// A builder, for the clock and the audit sink.
    pub fn builder(options: RedisOptions, keep_for: Duration) -> RedisRevocationsBuilder {
        RedisRevocationsBuilder {
            options,
            keep_for,
            clock: system_clock(),
            audit: None,
        }
    }

    /// Whether the store answered the last step.
    pub fn store_up(&self) -> bool {
        self.inner.writer.health.is_up()
    }

    async fn call(&self, step: Step<'_>) -> Result<i64, RevocationError> {
        let i = &self.inner;
        let tag = format!("{{{}}}", i.prefix);
        let none = format!("{tag}:-");
        let key = |kind: &str, name: Option<&str>| match name {
            Some(n) => format!("{tag}:rv:{kind}:{n}"),
            None => none.clone(),
        };
        let (op, token, user, grant, at, iat) = match step {
            Step::Token(id, expires) => ("token", Some(id.key()), None, None, expires, None),
            Step::User(u, at) => ("user", None, Some(u), None, at, None),
            Step::Grant(g, at) => ("grant", None, None, Some(g), at, None),
            Step::Ask(f) => (
                "ask",
                Some(f.id.key()),
                f.user,
                f.grant,
                SystemTime::UNIX_EPOCH,
                f.issued_at,
            ),
        };
        let name = token
            .clone()
            .or(user.map(str::to_owned))
            .or(grant.map(str::to_owned));
        let mut cmd = Cmd::new();
        cmd.arg(4)
            .arg(key("t", token.as_deref()))
            .arg(key("u", user))
            .arg(key("g", grant))
            .arg(log_key(&i.prefix))
            .arg(op)
            .arg(millis(i.clock.now()))
            .arg(millis(at))
            .arg(u64::try_from(i.keep_for.as_millis()).unwrap_or(u64::MAX / 4))
            .arg(iat.map(|t| millis(t).to_string()).unwrap_or_default())
            .arg(name.unwrap_or_default());
        match i.writer.call(cmd).await {
            Ok(Value::Int(n)) => Ok(n),
            Ok(other) => Err(RevocationError(format!("unexpected answer {other:?}"))),
            Err(NoAnswer::Down) => Err(RevocationError("the Redis store does not answer".into())),
            Err(NoAnswer::Error(e)) => Err(RevocationError(e)),
        }
    }
}

enum Step<'a> {
    Token(&'a TokenId, SystemTime),
    User(&'a str, SystemTime),
    Grant(&'a str, SystemTime),
    Ask(&'a TokenFacts<'a>),
}

/// The log of revocations every replica reads.
pub(crate) fn log_key(prefix: &str) -> String {
    format!("{{{prefix}}}:rv:log")
}

impl RedisRevocationsBuilder {
    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Records outages in `audit`.
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Starts the task on the current runtime and tries the store once, within the
    /// connect timeout.
    pub async fn connect(self) -> Result<RedisRevocations, StartError> {
        let o = &self.options;
        let writer = Writer::open(
            o,
            Component::Revocations,
            self.audit,
            self.clock.clone(),
            SCRIPT,
        )?;
        let revocations = RedisRevocations {
            inner: Arc::new(Inner {
                writer,
                prefix: o.key_prefix.clone(),
                keep_for: self.keep_for,
                clock: self.clock,
                options: self.options.clone(),
            }),
        };
        // Warms the connection and loads the script: asks about a token nobody revoked.
        let warm = TokenFacts {
            id: TokenId::Jti(String::new()),
            user: None,
            grant: None,
            issued_at: None,
        };
        let _ = tokio::time::timeout(o.connect_timeout, revocations.is_revoked(&warm)).await;
        Ok(revocations)
    }
}

#[async_trait]
impl Revocations for RedisRevocations {
    async fn revoke_token(&self, id: &TokenId, expires: SystemTime) -> Result<(), RevocationError> {
        self.call(Step::Token(id, expires)).await.map(drop)
    }

    async fn revoke_user(&self, user: &str, at: SystemTime) -> Result<(), RevocationError> {
        self.call(Step::User(user, at)).await.map(drop)
    }

    async fn revoke_grant(&self, grant: &str, at: SystemTime) -> Result<(), RevocationError> {
        self.call(Step::Grant(grant, at)).await.map(drop)
    }

    async fn is_revoked(&self, facts: &TokenFacts<'_>) -> Result<bool, RevocationError> {
        self.call(Step::Ask(facts)).await.map(|n| n == 1)
    }
}
