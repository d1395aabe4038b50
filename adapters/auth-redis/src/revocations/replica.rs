//! A local replica of the revocation list: asks answered from this process's memory,
//! kept up to date by following the store's log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::MemoryRevocations;
use auth_core::revocation::{Revocation, RevocationError, Revocations, TokenFacts, TokenId};
use redis::Value;
use tokio::time::Instant;

use super::{RedisRevocations, log_key};
use crate::connect::Store;
use crate::limiter::StartError;

/// How long one read of the log waits for news: a healthy replica proves itself current
/// at least this often.
const BLOCK: Duration = Duration::from_millis(250);

/// [`Revocations`] answered from a replica in this process's memory (a lock and a hash
/// lookup on the hot path), written through to Redis. A task follows the store's log of
/// revocations (`XREAD BLOCK` on a connection of its own), so a revocation made at any
/// instance reaches every replica within milliseconds. A replica that has not heard from
/// the store for `stale_after` (give or take a quarter of it) answers asks with an
/// error, never with a stale "not revoked", and the caller's outage policy decides.
#[derive(Debug, Clone)]
pub struct ReplicatedRevocations {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    remote: RedisRevocations,
    local: MemoryRevocations,
    /// When the log was last read to its end, as nanoseconds since `base` plus one; 0 for
    /// never.
    current_at: AtomicU64,
    base: Instant,
    stale_after: Duration,
    /// Whether the log was read within `stale_after`, kept by the follower and a
    /// watchdog, so an ask reads one flag instead of the time.
    current: AtomicBool,
}

impl Shared {
    fn mark_current(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.current_at.store(nanos + 1, Ordering::Release);
        self.current.store(true, Ordering::Release);
    }

    /// What the watchdog checks: whether the last read to the end is recent enough.
    fn read_recently(&self) -> bool {
        match self.current_at.load(Ordering::Acquire) {
            0 => false,
            at => {
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at - 1))
                    < self.stale_after
            }
        }
    }
}

impl RedisRevocations {
    /// A replica of this list in this process, current once it has read the whole log
    /// (awaited, within the connect timeout); asks fail while it has not heard from the
    /// store for `stale_after` (1 s is the usual bound).
    pub async fn replica(
        &self,
        stale_after: Duration,
    ) -> Result<ReplicatedRevocations, StartError> {
        let i = &self.inner;
        let store = Store::open(&i.options).map_err(|e| StartError(e.to_string()))?;
        let shared = Arc::new(Shared {
            remote: self.clone(),
            local: MemoryRevocations::with_clock(i.keep_for, i.clock.clone()),
            current_at: AtomicU64::new(0),
            base: Instant::now(),
            stale_after,
            current: AtomicBool::new(false),
        });
        tokio::spawn(watch(Arc::downgrade(&shared)));
        let (first, caught_up) = tokio::sync::oneshot::channel();
        tokio::spawn(follow(
            store,
            log_key(&i.prefix),
            Arc::downgrade(&shared),
            i.options.retry_interval,
            Some(first),
        ));
        let _ = tokio::time::timeout(i.options.connect_timeout, caught_up).await;
        Ok(ReplicatedRevocations { shared })
    }
}

impl ReplicatedRevocations {
    /// Whether the replica has read the store's log within `stale_after` (checked every
    /// quarter of it).
    pub fn is_current(&self) -> bool {
        self.shared.current.load(Ordering::Acquire)
    }
}

/// Clears the replica's `current` flag once the follower has not read the log to its end
/// for `stale_after`, looking every quarter of it, for as long as the replica lives.
async fn watch(replica: Weak<Shared>) {
    let every = match replica.upgrade() {
        Some(shared) => shared.stale_after / 4,
        None => return,
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    loop {
        tick.tick().await;
        let Some(shared) = replica.upgrade() else {
            return;
        };
        if !shared.read_recently() {
            shared.current.store(false, Ordering::Release);
        }
    }
}

/// Reads the log from its start, then waits for what follows, for as long as the replica
/// lives; after an error, again from where it stopped, every retry interval.
async fn follow(
    store: Store,
    log: String,
    replica: Weak<Shared>,
    retry: Duration,
    mut first: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut last = "0-0".to_owned();
    loop {
        let mut pipe = redis::pipe();
        pipe.cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(250))
            .arg("STREAMS")
            .arg(&log)
            .arg(&last);
        let read = tokio::time::timeout(BLOCK + retry, store.query(&pipe)).await;
        let Some(shared) = replica.upgrade() else {
            return;
        };
        match read {
            Ok(Ok(values)) => {
                let entries = entries(values.first().unwrap_or(&Value::Nil));
                let complete = entries.len() < 1000;
                for (id, revocation) in entries {
                    if let Some(r) = revocation {
                        shared.local.apply(&r);
                    }
                    last = id;
                }
                if complete {
                    shared.mark_current();
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }
            }
            _ => {
                drop(shared);
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// The entries of an XREAD answer: (id, the revocation if the entry is one).
fn entries(answer: &Value) -> Vec<(String, Option<Revocation>)> {
    let Value::Array(streams) = answer else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(parts) = stream else {
            continue;
        };
        let Some(Value::Array(items)) = parts.get(1) else {
            continue;
        };
        for item in items {
            let Value::Array(pair) = item else { continue };
            let (Some(id), Some(Value::Array(fields))) = (pair.first().and_then(text), pair.get(1))
            else {
                continue;
            };
            out.push((id, revocation(fields)));
        }
    }
    out
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// An entry's fields (`k` kind, `n` name, `t` time in ms) as a revocation.
fn revocation(fields: &[Value]) -> Option<Revocation> {
    let mut kind = None;
    let mut name = None;
    let mut ms = None;
    for pair in fields.chunks(2) {
        match (
            pair.first().and_then(text).as_deref(),
            pair.get(1).and_then(text),
        ) {
            (Some("k"), v) => kind = v,
            (Some("n"), v) => name = v,
            (Some("t"), v) => ms = v.and_then(|t| t.parse::<u64>().ok()),
            _ => {}
        }
    }
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms?);
    let name = name?;
    Some(match kind?.as_str() {
        "token" => Revocation::Token {
            id: TokenId::from_key(&name)?,
            expires: t,
        },
        "user" => Revocation::User { user: name, at: t },
        "grant" => Revocation::Grant { grant: name, at: t },
        _ => return None,
    })
}

#[async_trait]
impl Revocations for ReplicatedRevocations {
    async fn revoke_token(&self, id: &TokenId, expires: SystemTime) -> Result<(), RevocationError> {
        self.shared.remote.revoke_token(id, expires).await?;
        self.shared.local.apply(&Revocation::Token {
            id: id.clone(),
            expires,
        });
        Ok(())
    }

    async fn revoke_user(&self, user: &str, at: SystemTime) -> Result<(), RevocationError> {
        self.shared.remote.revoke_user(user, at).await?;
        self.shared.local.apply(&Revocation::User {
            user: user.to_owned(),
            at,
        });
        Ok(())
    }

    async fn revoke_grant(&self, grant: &str, at: SystemTime) -> Result<(), RevocationError> {
        self.shared.remote.revoke_grant(grant, at).await?;
        self.shared.local.apply(&Revocation::Grant {
            grant: grant.to_owned(),
            at,
        });
        Ok(())
    }

    async fn is_revoked(&self, facts: &TokenFacts<'_>) -> Result<bool, RevocationError> {
        if !self.shared.current.load(Ordering::Acquire) {
            return Err(RevocationError(format!(
                "the local replica has not heard from the revocation store for {:?}",
                self.shared.stale_after
            )));
        }
        Ok(self.shared.local.is_revoked_now(facts))
    }
}
