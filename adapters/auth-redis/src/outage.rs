//! What is decided while the store does not answer, and how an outage is reported: an
//! audit event when it begins, one per interval while it lasts, one when it ends, and two
//! metrics.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use auth_core::audit::{AuditEvent, AuditEventKind, AuditSink};
use auth_core::clock::SharedClock;
use serde::{Deserialize, Serialize};

/// `auth_limiter_store_up`: 1 while the limiter's store answers, 0 while it does not.
pub const STORE_UP_METRIC: &str = "auth_limiter_store_up";
/// `auth_limiter_store_outage_decisions_total{on_outage}`: decisions made without the store.
pub const OUTAGE_DECISIONS_METRIC: &str = "auth_limiter_store_outage_decisions_total";

/// What decides while the store does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnOutage {
    /// Every attempt is refused as unavailable (fail closed): no guess goes uncounted.
    #[default]
    Refuse,
    /// This process's own in-memory limiter decides: limits hold per instance, not shared.
    Local,
    /// Nothing is limited while the store is down (fail open): an attacker who can take
    /// Redis down guesses without limit.
    DangerAllow,
}

impl OnOutage {
    /// The name the file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::Local => "local",
            Self::DangerAllow => "danger_allow",
        }
    }
}

impl fmt::Display for OnOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which client of the store an outage is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Component {
    /// The rate limiter (its metrics are the `auth_limiter_store_*` series).
    RateLimiter,
    /// The revocation list.
    Revocations,
}

impl Component {
    /// How messages name it.
    fn name(self) -> &'static str {
        match self {
            Self::RateLimiter => "rate limiter",
            Self::Revocations => "revocation list",
        }
    }

    /// The audit events' component.
    fn audit_name(self) -> &'static str {
        match self {
            Self::RateLimiter => "rate_limiter",
            Self::Revocations => "revocations",
        }
    }

    /// What is decided without the store.
    fn decided(self) -> &'static str {
        match self {
            Self::RateLimiter => "attempts",
            Self::Revocations => "token checks",
        }
    }
}

/// Whether the store answers, and the outage's accounting.
#[derive(Debug)]
pub(crate) struct Health {
    up: AtomicBool,
    /// Decisions made without the store since the last report.
    unreported: AtomicU64,
    /// Decisions made without the store in this outage.
    in_outage: AtomicU64,
    since: Mutex<Option<Instant>>,
    on_outage: OnOutage,
    component: Component,
    store: String,
    audit: Option<Arc<dyn AuditSink>>,
    clock: SharedClock,
    /// Follows `up`, for whoever waits for a change.
    changes: tokio::sync::watch::Sender<bool>,
}

impl Health {
    pub(crate) fn new(
        component: Component,
        on_outage: OnOutage,
        store: String,
        audit: Option<Arc<dyn AuditSink>>,
        clock: SharedClock,
    ) -> Self {
        if component == Component::RateLimiter {
            metrics::gauge!(STORE_UP_METRIC).set(1.0);
        }
        Self {
            component,
            up: AtomicBool::new(true),
            unreported: AtomicU64::new(0),
            in_outage: AtomicU64::new(0),
            since: Mutex::new(None),
            on_outage,
            store,
            audit,
            clock,
            changes: tokio::sync::watch::Sender::new(true),
        }
    }

    /// Waits until the store is up (`true`) or down (`false`).
    pub(crate) async fn until(&self, up: bool) {
        let mut rx = self.changes.subscribe();
        let _ = rx.wait_for(|now| *now == up).await;
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub(crate) fn on_outage(&self) -> OnOutage {
        self.on_outage
    }

    /// One decision made without the store.
    pub(crate) fn decided_without(&self) {
        self.unreported.fetch_add(1, Ordering::Relaxed);
        self.in_outage.fetch_add(1, Ordering::Relaxed);
        if self.component == Component::RateLimiter {
            metrics::counter!(OUTAGE_DECISIONS_METRIC, "on_outage" => self.on_outage.as_str())
                .increment(1);
        }
    }

    /// The store stopped answering (`why`); true if it was up until now.
    pub(crate) fn went_down(&self, why: &str) -> bool {
        if !self.up.swap(false, Ordering::AcqRel) {
            return false;
        }
        *self.since.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.in_outage.store(0, Ordering::Relaxed);
        if self.component == Component::RateLimiter {
            metrics::gauge!(STORE_UP_METRIC).set(0.0);
        }
        let (name, decided) = (self.component.name(), self.component.decided());
        tracing::warn!(store = %self.store, on_outage = %self.on_outage, "{name} store down: {why}");
        self.record(
            AuditEventKind::StoreUnavailable,
            "down",
            &format!(
                "the {name}'s store {} did not answer ({why}); {decided} are decided \
                 with on_outage = {} until it does",
                self.store, self.on_outage
            ),
        );
        // After the record: whoever waits for the change finds it audited.
        self.changes.send_replace(false);
        true
    }

    /// The periodic report while down: how many decisions the last interval made
    /// without the store.
    pub(crate) fn report(&self) {
        let n = self.unreported.swap(0, Ordering::Relaxed);
        if n == 0 || self.is_up() {
            return;
        }
        let (name, decided) = (self.component.name(), self.component.decided());
        self.record(
            AuditEventKind::StoreUnavailable,
            "still_down",
            &format!(
                "the {name}'s store {} still does not answer; {n} {decided} were \
                 decided with on_outage = {} since the last report",
                self.store, self.on_outage
            ),
        );
    }

    /// The store answers again.
    pub(crate) fn came_back(&self) {
        if self.up.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.component == Component::RateLimiter {
            metrics::gauge!(STORE_UP_METRIC).set(1.0);
        }
        let (name, decided) = (self.component.name(), self.component.decided());
        let lasted = self
            .since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or_default();
        self.unreported.store(0, Ordering::Relaxed);
        let n = self.in_outage.swap(0, Ordering::Relaxed);
        tracing::warn!(store = %self.store, "{name} store answers again after {lasted:.1} s");
        self.record(
            AuditEventKind::StoreRecovered,
            "up",
            &format!(
                "the {name}'s store {} answers again after {lasted:.1} s; {n} {decided} \
                 were decided with on_outage = {} meanwhile",
                self.store, self.on_outage
            ),
        );
        self.changes.send_replace(true);
    }

    fn record(&self, kind: AuditEventKind, outcome: &str, detail: &str) {
        if let Some(audit) = &self.audit {
            audit.record(
                &AuditEvent::local(kind, self.clock.now(), self.component.audit_name(), outcome)
                    .with_failure(None, Some(detail)),
            );
        }
    }
}
