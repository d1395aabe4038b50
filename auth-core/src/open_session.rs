//! The session stage (Linux-PAM's "session"): a session opened after OK, touched on use
//! and closed when its connection or request ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::audit::{AuditEventKind, AuditSink, SessionPlace, record_session_event};
use crate::clock::SharedClock;
use crate::connection::ConnectionInfo;
use crate::error::Failure;
use crate::session::{Session, SessionEnd, SessionState};

/// Why a session can no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionOver {
    /// Its expiry (a token's `exp`, the account's validity) has passed.
    #[error("the session has expired")]
    Expired,
    /// It was closed, or its state does not allow use.
    #[error("the session has ended")]
    Ended,
}

/// An authenticated session in use: opened (audited `session_started`) when the adapter
/// says OK, [`touch`](Self::touch)ed on every query or request, and
/// [`close`](Self::close)d (audited `session_ended`, with its duration) when the
/// connection or request ends, which lets the backend act ([`Session::end`]). Dropped
/// without a close, it closes itself and spawns the backend's work.
///
/// ```
/// use std::sync::Arc;
/// use auth_core::{ConnectionInfo, MemoryAuditSink, OpenSession, Protocol, StandardSession};
/// use auth_core::clock::system_clock;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let audit = Arc::new(MemoryAuditSink::default());
/// let connection = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.5:40000".parse().unwrap());
/// let mut proved = StandardSession::new("alice", "scram", std::time::SystemTime::now());
/// auth_core::Session::transition(&mut proved, auth_core::SessionState::Active).unwrap();
/// let open = OpenSession::open(Box::new(proved), &connection, audit.clone(), system_clock());
/// open.touch().unwrap();
/// open.close_and_wait().await;
/// assert!(open.touch().is_err());
/// let kinds: Vec<_> = audit.events().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect();
/// assert_eq!(kinds, ["session_started", "session_ended"]);
/// # }
/// ```
pub struct OpenSession {
    session: Mutex<Box<dyn Session>>,
    closed: AtomicBool,
    audit: Arc<dyn AuditSink>,
    clock: SharedClock,
    place: SessionPlace,
    started: Instant,
    /// Where the backend's end work runs when the session is dropped.
    ends: Option<tokio_util::task::TaskTracker>,
}

impl std::fmt::Debug for OpenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSession")
            .field("session", &self.session)
            .field("closed", &self.closed)
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

impl OpenSession {
    /// Opens `session` for `connection`, auditing `session_started` to `audit`.
    pub fn open(
        session: Box<dyn Session>,
        connection: &ConnectionInfo,
        audit: Arc<dyn AuditSink>,
        clock: SharedClock,
    ) -> Self {
        let open = Self {
            session: Mutex::new(session),
            closed: AtomicBool::new(false),
            audit,
            clock,
            place: SessionPlace::of(connection),
            started: Instant::now(),
            ends: None,
        };
        open.record(AuditEventKind::SessionStarted, Duration::ZERO, None);
        crate::metrics::session_open(open.place.protocol, true);
        open
    }

    /// Runs the backend's end work, when the session is dropped, on `tracker`, so that
    /// whoever holds the tracker can wait for it (the engine's
    /// [`drain_sessions`](crate::Engine::drain_sessions)).
    #[must_use]
    pub fn with_end_tracker(mut self, tracker: tokio_util::task::TaskTracker) -> Self {
        self.ends = Some(tracker);
        self
    }

    fn record(&self, kind: AuditEventKind, duration: Duration, failure: Option<&Failure>) {
        let clock = self.clock.as_ref();
        self.with(|s| {
            record_session_event(
                self.audit.as_ref(),
                kind,
                s,
                &self.place,
                clock,
                duration,
                failure,
            );
        });
    }

    /// Runs `f` with the session.
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Session) -> R) -> R {
        let mut guard = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.as_mut())
    }

    /// Marks activity now; refused once the session has expired or ended, when the
    /// adapter should end the connection.
    pub fn touch(&self) -> Result<(), SessionOver> {
        let now = self.clock.now();
        self.with(|s| {
            if s.is_expired(now) {
                return Err(SessionOver::Expired);
            }
            s.touch(now).map_err(|_| SessionOver::Ended)
        })
    }

    /// Runs the session's [renewal](Session::renewal) when one is due (an OAuth token
    /// refresh), before the adapter [`touch`](Self::touch)es it for the next use. A
    /// renewal that fails is audited (`session_renewal_failed`); the session then stands
    /// or falls by its expiry.
    pub async fn renew(&self) {
        let now = self.clock.now();
        let Some(work) = self.with(|s| s.renewal(now)) else {
            return;
        };
        crate::metrics::renewal(self.place.protocol);
        if let Err(failure) = work.await {
            crate::metrics::renewal_failed(self.place.protocol);
            self.record(
                AuditEventKind::SessionRenewalFailed,
                Duration::ZERO,
                Some(&failure),
            );
        }
    }

    /// Closes the session, once: [`Session::end`], then the `session_ended` audit event.
    /// Returns the backend's work (revoking a token) for the caller to await or spawn.
    pub fn close(&self) -> Option<SessionEnd> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return None;
        }
        let work = self.with(|s| {
            let work = s.end();
            // A session whose `end` forgot the transition still ends here.
            if s.state() != SessionState::Disconnected {
                let _ = s.transition(SessionState::Disconnected);
            }
            work
        });
        self.record(AuditEventKind::SessionEnded, self.started.elapsed(), None);
        crate::metrics::session_open(self.place.protocol, false);
        work
    }

    /// Closes the session and waits for the backend's work.
    pub async fn close_and_wait(&self) {
        if let Some(work) = self.close() {
            work.await;
        }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        if let Some(work) = self.close()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            match &self.ends {
                Some(tracker) => {
                    tracker.spawn_on(work, &runtime);
                }
                None => {
                    runtime.spawn(work);
                }
            }
        }
    }
}
