//! What auth-core records through the [`metrics`] facade. No exporter is installed here:
//! a server installs its own recorder (metrics-exporter-prometheus, say) before the first
//! attempt; without one every call is a no-op.
//!
//! Labels are bounded codes only, never a user name, an address, a token or free text, so
//! the number of series does not grow with the clients:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `auth_attempts_total` | counter | `protocol`, `method`, `outcome`, `error` | every attempt judged (the limiter's refusals are counted apart) |
//! | `auth_decision_seconds` | histogram | `protocol`, `method` | an attempt's decision, limiter and account stage included |
//! | `auth_policy_rejects_total` | counter | `protocol` | connections no rule admits, or whose rule rejects |
//! | `auth_limiter_refusals_total` | counter | `protocol`, `kind`, `scope` | attempts the rate limiter refused |
//! | `auth_abandoned_total` | counter | `protocol` | attempts dropped before an outcome |
//! | `auth_sessions_open` | gauge | `protocol` | sessions open (connection-long: pgwire, gRPC streams) |
//! | `auth_sessions_started_total` | counter | `protocol` | sessions opened |
//! | `auth_session_renewals_total` | counter | `protocol` | renewals (OAuth refreshes) run |
//! | `auth_session_renewal_failures_total` | counter | `protocol` | renewals that failed |
//! | `auth_config_reloads_total` | counter | `result` | reloads put in force (`reloaded`) or refused (`refused`) |
//! | `auth_audit_dropped_total` | counter | | audit events dropped by a full queue ([`AuditFile`](crate::audit::AuditFile)) |
//!
//! The values: `protocol` is [`Protocol::as_str`] (`postgres`, `http`, `grpc`, ...);
//! `method` the name of the authenticator that decided (`scram`, `password`, `jwt`, ...,
//! `none` when none did); `outcome` is [`OutcomeClass::as_str`] (`success`, `rejected`,
//! `unavailable`, ...) or `abandoned`; `error` is [`Error::code`] (`none` for a success);
//! `kind` is `lockout` or `busy`; `scope` is `user`, `address`, `user_at_address` (a
//! lockout) or `address`, `user` (busy). Account-stage and certificate refusals are
//! attempts like any other: their kind is the `error` label (`account_disabled`,
//! `account_expired`, `untrusted_issuer`, ...) of the method that decided (`cert` for a
//! certificate).
//!
//! The other crates add their own, each documented where it is recorded: auth-listen's
//! refused connections and failed handshakes (`auth_listen::metrics`), auth-tower's
//! session reuse (`SESSION_REUSE_METRIC`), auth-oauth's JWKS fetches and key age, token
//! caches and OAUTHBEARER discovery rounds, auth-kerberos's handshakes, auth-wallet's
//! operations.
//!
//! Histograms are meant to be rendered with the explicit buckets of [`DECISION_BUCKETS`],
//! so that they add up across instances (a summary does not).

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Histogram};

use crate::connection::Protocol;
use crate::error::Error;
use crate::outcome::OutcomeClass;
use crate::rate_limit::{Busy, LockScope, Refusal};

/// `auth_attempts_total`.
pub const ATTEMPTS: &str = "auth_attempts_total";
/// `auth_decision_seconds`.
pub const DECISION_SECONDS: &str = "auth_decision_seconds";
/// `auth_policy_rejects_total`.
pub const POLICY_REJECTS: &str = "auth_policy_rejects_total";
/// `auth_limiter_refusals_total`.
pub const LIMITER_REFUSALS: &str = "auth_limiter_refusals_total";
/// `auth_abandoned_total`.
pub const ABANDONED: &str = "auth_abandoned_total";
/// `auth_sessions_open`.
pub const SESSIONS_OPEN: &str = "auth_sessions_open";
/// `auth_sessions_started_total`.
pub const SESSIONS_STARTED: &str = "auth_sessions_started_total";
/// `auth_session_renewals_total`.
pub const SESSION_RENEWALS: &str = "auth_session_renewals_total";
/// `auth_session_renewal_failures_total`.
pub const SESSION_RENEWAL_FAILURES: &str = "auth_session_renewal_failures_total";
/// `auth_config_reloads_total`.
pub const CONFIG_RELOADS: &str = "auth_config_reloads_total";
/// `auth_audit_dropped_total`.
pub const AUDIT_DROPPED: &str = crate::audit::DROPPED_METRIC;

/// The buckets (seconds) to render [`DECISION_SECONDS`] with: from a cached token's
/// fraction of a millisecond to an identity provider's timeout.
pub const DECISION_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// The labels of one attempt's series.
#[derive(Clone, PartialEq, Eq, Hash)]
struct AttemptKey {
    protocol: &'static str,
    method: String,
    outcome: &'static str,
    error: &'static str,
}

/// The same, borrowed: what an attempt looks its handles up by, allocating nothing.
#[derive(Hash)]
struct AttemptKeyRef<'a> {
    protocol: &'static str,
    method: &'a str,
    outcome: &'static str,
    error: &'static str,
}

impl quick_cache::Equivalent<AttemptKey> for AttemptKeyRef<'_> {
    fn equivalent(&self, key: &AttemptKey) -> bool {
        self.protocol == key.protocol
            && self.method == key.method
            && self.outcome == key.outcome
            && self.error == key.error
    }
}

/// The handles an attempt records into.
#[derive(Clone)]
struct AttemptHandles {
    attempts: Counter,
    seconds: Histogram,
}

/// Far more than any process has (methods x protocols x outcomes x errors); a key that
/// falls out is registered again on its next use, which costs time, not correctness.
const HANDLE_CACHE: usize = 4096;

/// The engine's metrics: the handles of its attempts' series, looked up once per set of
/// labels, so an attempt pays for two atomic updates and a lookup, not for building and
/// hashing a key in the recorder's registry.
pub(crate) struct EngineMetrics {
    handles: quick_cache::sync::Cache<AttemptKey, Arc<AttemptHandles>>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            handles: quick_cache::sync::Cache::new(HANDLE_CACHE),
        }
    }
}

impl EngineMetrics {
    /// An attempt decided on `protocol` by `method` (`None`: no method decided).
    pub(crate) fn attempt(
        &self,
        protocol: Protocol,
        method: Option<&str>,
        outcome: &'static str,
        error: Option<Error>,
        took: Duration,
    ) {
        let key = AttemptKeyRef {
            protocol: protocol.as_str(),
            method: method.unwrap_or("none"),
            outcome,
            error: error.map_or("none", Error::code),
        };
        let handles = match self.handles.get(&key) {
            Some(handles) => handles,
            None => {
                let labels = [
                    ("protocol", key.protocol.to_owned()),
                    ("method", bounded_method(key.method)),
                    ("outcome", key.outcome.to_owned()),
                    ("error", key.error.to_owned()),
                ];
                let handles = Arc::new(AttemptHandles {
                    attempts: metrics::counter!(ATTEMPTS, &labels),
                    seconds: metrics::histogram!(DECISION_SECONDS, &labels[..2]),
                });
                self.handles.insert(
                    AttemptKey {
                        protocol: key.protocol,
                        method: key.method.to_owned(),
                        outcome: key.outcome,
                        error: key.error,
                    },
                    handles.clone(),
                );
                handles
            }
        };
        handles.attempts.increment(1);
        handles.seconds.record(took.as_secs_f64());
    }
}

/// An authenticator's name as a label: names are chosen in code, but a custom
/// authenticator could return anything, so it is cut to a sane length.
fn bounded_method(name: &str) -> String {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// A connection refused by the policy on `protocol`.
pub(crate) fn policy_reject(protocol: Protocol) {
    metrics::counter!(POLICY_REJECTS, "protocol" => protocol.as_str()).increment(1);
}

/// An attempt the limiter refused.
pub(crate) fn limiter_refusal(protocol: Protocol, refusal: &Refusal) {
    let (kind, scope) = match refusal {
        Refusal::Locked { scope, .. } => (
            "lockout",
            match scope {
                LockScope::User => "user",
                LockScope::Address => "address",
                LockScope::UserAtAddress => "user_at_address",
            },
        ),
        Refusal::Busy(Busy::Address) => ("busy", "address"),
        Refusal::Busy(Busy::User) => ("busy", "user"),
        Refusal::Unavailable => ("unavailable", "store"),
    };
    metrics::counter!(
        LIMITER_REFUSALS,
        "protocol" => protocol.as_str(),
        "kind" => kind,
        "scope" => scope
    )
    .increment(1);
}

/// An attempt dropped before its outcome.
pub(crate) fn abandoned(protocol: &'static str) {
    metrics::counter!(ABANDONED, "protocol" => protocol).increment(1);
}

/// A session opened (`+1`) or closed (`-1`) on `protocol`.
pub(crate) fn session_open(protocol: &'static str, opened: bool) {
    let gauge = metrics::gauge!(SESSIONS_OPEN, "protocol" => protocol);
    if opened {
        gauge.increment(1.0);
        metrics::counter!(SESSIONS_STARTED, "protocol" => protocol).increment(1);
    } else {
        gauge.decrement(1.0);
    }
}

/// A session renewal run.
pub(crate) fn renewal(protocol: &'static str) {
    metrics::counter!(SESSION_RENEWALS, "protocol" => protocol).increment(1);
}

/// A session renewal that failed.
pub(crate) fn renewal_failed(protocol: &'static str) {
    metrics::counter!(SESSION_RENEWAL_FAILURES, "protocol" => protocol).increment(1);
}

/// A configuration reload put in force (`true`) or refused.
pub fn config_reload(reloaded: bool) {
    let result = if reloaded { "reloaded" } else { "refused" };
    metrics::counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// The `hit` and `miss` counters of a cache (`name{labels..., result}`), registered at
/// first use (so with the recorder the process installed at start) and then one atomic
/// increment per lookup: for the caches on hot paths (validated tokens, session reuse).
#[derive(Debug)]
pub struct HitCounters {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    handles: std::sync::OnceLock<[metrics::Counter; 2]>,
}

impl HitCounters {
    /// Counters of `name` with `labels` besides `result`.
    pub const fn new(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            labels,
            handles: std::sync::OnceLock::new(),
        }
    }

    /// Counts one lookup.
    pub fn count(&self, hit: bool) {
        let [hits, misses] = self.handles.get_or_init(|| {
            let with = |result: &'static str| {
                let mut labels: Vec<metrics::Label> = self
                    .labels
                    .iter()
                    .map(|(k, v)| metrics::Label::from_static_parts(k, v))
                    .collect();
                labels.push(metrics::Label::from_static_parts("result", result));
                metrics::counter!(self.name, labels)
            };
            [with("hit"), with("miss")]
        });
        if hit { hits } else { misses }.increment(1);
    }
}

/// The `outcome` label of an attempt of `class`, or `abandoned`.
pub(crate) fn outcome_label(class: OutcomeClass, abandoned: bool) -> &'static str {
    if abandoned {
        "abandoned"
    } else {
        class.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn the_borrowed_key_hashes_as_the_owned_one() {
        let owned = AttemptKey {
            protocol: "postgres",
            method: "scram".into(),
            outcome: "success",
            error: "none",
        };
        let borrowed = AttemptKeyRef {
            protocol: "postgres",
            method: "scram",
            outcome: "success",
            error: "none",
        };
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&owned), state.hash_one(&borrowed));
    }

    #[test]
    fn a_method_label_is_bounded() {
        assert_eq!(bounded_method(&"é".repeat(100)).len(), 64);
        assert_eq!(bounded_method("scram"), "scram");
    }
}
