//! Audit events: one per attempt, one per chain step, one per lockout or policy reject.
//!
//! Events carry who, from where, how, how long and what happened, and never a secret: the
//! only free text is a [`Failure::detail`](crate::Failure::detail) written by the method.

use std::fmt::{self, Debug, Write as _};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::ser::Serializer;

use crate::connection::Peer;

mod file;

pub use file::{AuditFile, AuditFileSettings, DROPPED_METRIC};

/// What an audit event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEventKind {
    /// A whole attempt succeeded.
    AttemptSucceeded,
    /// A whole attempt failed.
    AttemptFailed,
    /// One link of a chain ran and the chain stopped or continued as its control says.
    Step,
    /// A link did not succeed and the chain went on to the next one.
    Fallback,
    /// The rate limiter refused the attempt: a user scope or address is locked.
    Lockout,
    /// The rate limiter refused the attempt as too busy (too many attempts running from
    /// the address, or no verification slot for the user within the wait); nothing was
    /// counted against anyone.
    Busy,
    /// The client left an exchange it had begun (hung up, broke the protocol, or let it
    /// time out); counted against its address only.
    Abandoned,
    /// No policy rule admits the connection, or the matching rule rejects it.
    PolicyReject,
    /// A stored secret was read, written or deleted (wallet backends).
    SecretAccess,
    /// A session opened after a successful attempt (the PAM session stage).
    SessionStarted,
    /// A session ended (connection or request over); the duration is the session's.
    SessionEnded,
    /// A session's backend could not extend it (an OAuth refresh was refused or failed);
    /// the session lasts until its current expiry.
    SessionRenewalFailed,
    /// An administrator changed an account (`authctl user disable`, `apikey revoke`).
    AccountChanged,
    /// A connection was refused before it could begin to authenticate: no place for an
    /// unauthenticated connection came free within the wait, or its address already
    /// holds as many connections as it may (see auth-listen's admission).
    ConnectionRefused,
    /// A new configuration was put in force without a restart (a reload); the detail has
    /// a digest of the file and the settings that wait for a restart.
    ConfigReloaded,
    /// A new configuration was refused, with its problems, and the one in force stays.
    ConfigRefused,
    /// A shared store the process depends on (the rate limiter's Redis) stopped
    /// answering; recorded once per interval while it lasts, with how many decisions it
    /// affected and what was decided without it.
    StoreUnavailable,
    /// A shared store answers again after an outage.
    StoreRecovered,
}

impl AuditEventKind {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AttemptSucceeded => "attempt_succeeded",
            Self::AttemptFailed => "attempt_failed",
            Self::Step => "step",
            Self::Fallback => "fallback",
            Self::Lockout => "lockout",
            Self::Busy => "busy",
            Self::Abandoned => "abandoned",
            Self::PolicyReject => "policy_reject",
            Self::SecretAccess => "secret_access",
            Self::SessionStarted => "session_started",
            Self::SessionEnded => "session_ended",
            Self::SessionRenewalFailed => "session_renewal_failed",
            Self::AccountChanged => "account_changed",
            Self::ConfigReloaded => "config_reloaded",
            Self::ConfigRefused => "config_refused",
            Self::ConnectionRefused => "connection_refused",
            Self::StoreUnavailable => "store_unavailable",
            Self::StoreRecovered => "store_recovered",
        }
    }
}

/// One audit event. Borrowed, so that emitting one on the hot path allocates nothing
/// until a sink decides to keep it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    /// When it happened (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: SystemTime,
    /// What it is about.
    pub event: AuditEventKind,
    /// The method (authenticator name), when one is involved.
    #[serde(serialize_with = "bounded_name")]
    pub method: Option<&'a str>,
    /// The user the attempt was about: as the client named it, and for a success the
    /// session's (mapped) user, which for bearer and Kerberos attempts is the only name.
    /// Written at most [`MAX_NAME_IN_EVENT`] bytes long, control characters escaped.
    #[serde(serialize_with = "bounded_name")]
    pub username: Option<&'a str>,
    /// Where the client connects from (behind a trusted proxy, the client it reported).
    #[serde(serialize_with = "display")]
    pub source: &'a Peer,
    /// The trusted proxy the client came through, if any.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_some"
    )]
    pub proxy: Option<&'a Peer>,
    /// The connection id.
    pub connection_id: u64,
    /// The protocol.
    pub protocol: &'static str,
    /// How long the step or attempt took, in microseconds.
    #[serde(rename = "duration_us", serialize_with = "micros")]
    pub duration: Duration,
    /// The outcome: `success`, `rejected`, `unavailable`, ...
    pub outcome: &'a str,
    /// The policy rule that decided (an attempt's events and policy rejects).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bounded_name"
    )]
    pub rule: Option<&'a str>,
    /// The chain's action for a step: `ok`, `done`, `bad`, `die`, `ignore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// The client-visible error code, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// What happened, for administrators. It quotes what clients sent (names in tokens
    /// and certificates), so it is written at most [`MAX_DETAIL_IN_EVENT`] bytes long,
    /// control characters escaped.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "bounded_detail"
    )]
    pub detail: Option<&'a str>,
}

/// The most bytes of a name (user, method, rule) an audit event writes: a client chooses
/// user names, and an event must not grow the log by what a client sent.
pub const MAX_NAME_IN_EVENT: usize = 256;

/// The most bytes of an audit event's detail.
pub const MAX_DETAIL_IN_EVENT: usize = 1024;

/// `text` as an audit event writes it: at most `max` bytes of it (cut at a character
/// boundary, with how much was left out), control characters escaped (`\n`, `\u{1b}`), so
/// a line-oriented log cannot be given a forged line.
#[derive(Debug, Clone, Copy)]
pub struct Bounded<'a>(pub &'a str, pub usize);

impl fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Bounded(text, max) = *self;
        let mut written = 0;
        for (i, c) in text.char_indices() {
            let width = if c.is_control() {
                c.escape_default().count()
            } else {
                c.len_utf8()
            };
            if written + width > max {
                return write!(f, "...[{} more bytes]", text.len() - i);
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
            written += width;
        }
        Ok(())
    }
}

fn bounded<S: Serializer>(text: &Option<&str>, max: usize, s: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => s.collect_str(&Bounded(text, max)),
        None => s.serialize_none(),
    }
}

fn bounded_name<S: Serializer>(text: &Option<&str>, s: S) -> Result<S::Ok, S::Error> {
    bounded(text, MAX_NAME_IN_EVENT, s)
}

fn bounded_detail<S: Serializer>(text: &Option<&str>, s: S) -> Result<S::Ok, S::Error> {
    bounded(text, MAX_DETAIL_IN_EVENT, s)
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

fn display<S: Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_some<S: Serializer, T: fmt::Display>(v: &Option<&T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Where a session is, for its `session_started` and `session_ended` events: the peer
/// (and the trusted proxy it came through), the connection id and the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlace {
    /// The client.
    pub peer: Peer,
    /// The trusted proxy the client came through, if any.
    pub proxy: Option<Peer>,
    /// The connection id.
    pub connection_id: u64,
    /// The protocol.
    pub protocol: &'static str,
}

impl SessionPlace {
    /// Where `connection`'s session is.
    pub fn of(connection: &crate::connection::ConnectionInfo) -> Self {
        Self {
            peer: connection.peer.clone(),
            proxy: connection.proxied.as_ref().map(|p| p.proxy.clone()),
            connection_id: connection.id,
            protocol: connection.protocol.as_str(),
        }
    }
}

/// The source of events that belong to no connection (wallet reads, `authctl`).
static NO_PEER: Peer = Peer::Unknown;

impl<'a> AuditEvent<'a> {
    /// An event about the connection of `source`, `connection_id` and `protocol`, with
    /// `outcome`; the rest is empty until the `with_` methods fill it. Every event is built
    /// here, so a new field has one place to be filled.
    pub fn new(
        event: AuditEventKind,
        timestamp: SystemTime,
        (source, connection_id, protocol): (&'a Peer, u64, &'static str),
        outcome: &'a str,
    ) -> Self {
        Self {
            timestamp,
            event,
            method: None,
            username: None,
            source,
            proxy: None,
            connection_id,
            protocol,
            duration: Duration::ZERO,
            outcome,
            rule: None,
            action: None,
            error: None,
            detail: None,
        }
    }

    /// An event about `connection`.
    pub fn on(
        event: AuditEventKind,
        timestamp: SystemTime,
        connection: &'a crate::connection::ConnectionInfo,
        outcome: &'a str,
    ) -> Self {
        let mut event = Self::new(
            event,
            timestamp,
            (
                &connection.peer,
                connection.id,
                connection.protocol.as_str(),
            ),
            outcome,
        );
        event.proxy = connection.proxied.as_ref().map(|p| &p.proxy);
        event
    }

    /// The same with the trusted proxy the client came through.
    pub fn with_proxy(mut self, proxy: Option<&'a Peer>) -> Self {
        self.proxy = proxy;
        self
    }

    /// An event of this process rather than of a client's connection (a wallet read, an
    /// administrator's command): `component` names the method and the protocol.
    pub fn local(
        event: AuditEventKind,
        timestamp: SystemTime,
        component: &'static str,
        outcome: &'a str,
    ) -> Self {
        Self::new(event, timestamp, (&NO_PEER, 0, component), outcome).with_method(Some(component))
    }

    /// Names the method.
    #[must_use]
    pub fn with_method(mut self, method: Option<&'a str>) -> Self {
        self.method = method;
        self
    }

    /// Names the policy rule that decided.
    #[must_use]
    pub fn with_rule(mut self, rule: Option<&'a str>) -> Self {
        self.rule = rule;
        self
    }

    /// Names the user.
    #[must_use]
    pub fn with_user(mut self, username: Option<&'a str>) -> Self {
        self.username = username;
        self
    }

    /// Sets how long it took.
    #[must_use]
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Sets a chain step's action.
    #[must_use]
    pub fn with_action(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// Sets the client-visible error code and the administrators' detail.
    #[must_use]
    pub fn with_failure(mut self, error: Option<&'static str>, detail: Option<&'a str>) -> Self {
        self.error = error;
        self.detail = detail;
        self
    }
}

/// Records a session-stage event for `session` at `place`: `session_started`,
/// `session_ended` (with the session's `duration`) or `session_renewal_failed` (with its
/// `failure`), whichever adapter runs the stage.
pub(crate) fn record_session_event(
    audit: &dyn AuditSink,
    kind: AuditEventKind,
    session: &dyn crate::session::Session,
    place: &SessionPlace,
    clock: &dyn crate::clock::Clock,
    duration: Duration,
    failure: Option<&crate::error::Failure>,
) {
    if !audit.enabled() {
        return;
    }
    let outcome = match kind {
        AuditEventKind::SessionEnded => "ended",
        AuditEventKind::SessionRenewalFailed => "failure",
        _ => "started",
    };
    let at = (&place.peer, place.connection_id, place.protocol);
    let mut event = AuditEvent::new(kind, clock.now(), at, outcome)
        .with_proxy(place.proxy.as_ref())
        .with_method(Some(session.method()))
        .with_user(Some(session.user()))
        .with_duration(duration);
    if let Some(f) = failure {
        event = event.with_failure(Some(f.error.code()), Some(&f.detail));
    }
    audit.record(&event);
}

impl AuditEvent<'_> {
    /// The event as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Where audit events go.
pub trait AuditSink: Send + Sync + Debug {
    /// Records one event. Must not block for long: it runs on the authentication path.
    fn record(&self, event: &AuditEvent<'_>);

    /// Whether events are wanted at all; when not, callers skip building them.
    fn enabled(&self) -> bool {
        true
    }
}

/// Emits each event as a `tracing` event with target `auth::audit` and one field per
/// attribute; a JSON subscriber (`tracing_subscriber::fmt().json()`) turns them into JSON
/// lines. The default sink.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn enabled(&self) -> bool {
        tracing::enabled!(target: "auth::audit", tracing::Level::INFO)
    }

    fn record(&self, e: &AuditEvent<'_>) {
        tracing::info!(
            target: "auth::audit",
            event = e.event.as_str(),
            method = e.method.map(|m| tracing::field::display(Bounded(m, MAX_NAME_IN_EVENT))),
            username = e.username.map(|u| tracing::field::display(Bounded(u, MAX_NAME_IN_EVENT))),
            source = %e.source,
            proxy = e.proxy.map(tracing::field::display),
            connection_id = e.connection_id,
            protocol = e.protocol,
            duration_us = u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX),
            outcome = e.outcome,
            rule = e.rule.map(|r| tracing::field::display(Bounded(r, MAX_NAME_IN_EVENT))),
            action = e.action,
            error = e.error,
            detail = e.detail.map(|d| tracing::field::display(Bounded(d, MAX_DETAIL_IN_EVENT))),
            timestamp = %humantime::format_rfc3339_micros(e.timestamp),
        );
    }
}

/// Writes each event as one JSON line to a writer (stdout, a pipe), on the caller's thread:
/// for a file, [`AuditFile`] keeps the disk off the login path.
pub struct JsonLinesAuditSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLinesAuditSink {
    /// A sink writing to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Mutex::new(Box::new(out)),
        }
    }
}

impl Debug for JsonLinesAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonLinesAuditSink")
    }
}

/// `event` as one JSON line (with its newline); `None`, said where operators look, when
/// it cannot be encoded.
fn json_line(event: &AuditEvent<'_>) -> Option<Vec<u8>> {
    match serde_json::to_vec(event) {
        Ok(mut line) => {
            line.push(b'\n');
            Some(line)
        }
        Err(e) => {
            tracing::error!(target: "auth::audit", error = %e, "audit event could not be encoded");
            None
        }
    }
}

impl AuditSink for JsonLinesAuditSink {
    fn record(&self, event: &AuditEvent<'_>) {
        // One write per event: a line is never interleaved with another writer's.
        let Some(line) = json_line(event) else {
            return;
        };
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
            // An audit sink must not fail the authentication; say so where operators look.
            tracing::error!(target: "auth::audit", error = %e, "audit event could not be written");
        }
    }
}

/// Keeps events in memory as JSON values; for tests and for hosts that forward them.
#[derive(Debug, Clone, Default)]
pub struct MemoryAuditSink {
    events: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The recorded events of one kind.
    pub fn of_kind(&self, kind: AuditEventKind) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind.as_str())
            .collect()
    }

    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent<'_>) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.to_json());
    }
}

/// Discards every event (benchmarks; hosts that audit elsewhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullAuditSink;

impl AuditSink for NullAuditSink {
    fn record(&self, _event: &AuditEvent<'_>) {}

    fn enabled(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn sample(peer: &Peer) -> AuditEvent<'_> {
        AuditEvent::new(
            AuditEventKind::AttemptFailed,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
            (peer, 7, "postgres"),
            "rejected",
        )
        .with_method(Some("password"))
        .with_user(Some("alice"))
        .with_duration(Duration::from_micros(1500))
        .with_failure(Some("invalid_credentials"), Some("wrong password"))
    }

    #[test]
    fn client_chosen_text_is_capped_and_cannot_forge_a_line() {
        let peer = Peer::Unknown;
        let huge = "x".repeat(9_800);
        let detail = format!("identity `{huge}` may not act as `bob`\n{{\"event\":\"forged\"}}");
        let buf = Buffer::default();
        let sink = JsonLinesAuditSink::new(buf.clone());
        sink.record(
            &sample(&peer)
                .with_user(Some(&huge))
                .with_failure(None, Some(&detail)),
        );
        let written = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 1, "{written}");
        assert!(written.len() < 2_000, "{} bytes", written.len());
        let event: serde_json::Value = serde_json::from_str(&written).unwrap();
        let user = event["username"].as_str().unwrap();
        assert!(
            user.starts_with("xxx") && user.ends_with("[9544 more bytes]"),
            "{user}"
        );
        let kept = event["detail"].as_str().unwrap();
        assert!(kept.ends_with("more bytes]"), "{kept}");
        // Control characters are escaped, in the tracing sink's text too.
        let shown = Bounded("a\nb\u{1b}[31m", 64).to_string();
        assert_eq!(shown, "a\\nb\\u{1b}[31m");
        assert_eq!(
            Bounded("\u{e9}t\u{e9}", 3).to_string(),
            "\u{e9}t...[2 more bytes]"
        );
    }

    #[test]
    fn json_lines_have_every_documented_field() {
        let buf = Buffer::default();
        let sink = JsonLinesAuditSink::new(buf.clone());
        let peer = Peer::Tcp("10.1.2.3:5555".parse().unwrap());
        sink.record(&sample(&peer));
        sink.record(&sample(&peer));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(v["event"], "attempt_failed");
        assert_eq!(v["method"], "password");
        assert_eq!(v["username"], "alice");
        assert_eq!(v["source"], "10.1.2.3:5555");
        assert_eq!(v["connection_id"], 7);
        assert_eq!(v["duration_us"], 1500);
        assert_eq!(v["outcome"], "rejected");
        assert_eq!(v["error"], "invalid_credentials");
        assert!(v.get("action").is_none());
    }

    #[test]
    fn memory_sink_filters_by_kind() {
        let sink = MemoryAuditSink::new();
        let peer = Peer::Unknown;
        sink.record(&sample(&peer));
        assert_eq!(sink.of_kind(AuditEventKind::AttemptFailed).len(), 1);
        assert!(sink.of_kind(AuditEventKind::Step).is_empty());
        sink.clear();
        assert!(sink.events().is_empty());
    }
}
