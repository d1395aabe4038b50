//! Places for connections that have not authenticated yet.
//!
//! Each unauthenticated connection may sit for the whole authentication timeout, so a
//! client that opens connections and sends nothing could otherwise hold any number of
//! them. A connection passes two stages:
//!
//! 1. **Silent**, from accept to its first byte. A silent connection holds no place: it
//!    only counts against [`AdmissionSettings::max_silent_per_address`] (and, unless it
//!    is local, [`AdmissionSettings::max_silent`]), beyond which it gets only
//!    [`AdmissionSettings::wait`] to speak (a burst whose first bytes the server has not
//!    looked at yet is not silent), and it is closed when it stays silent for
//!    [`AdmissionSettings::silent_timeout`].
//!    Idle connections a client opened and never used therefore never stand in the way
//!    of its real logins.
//! 2. **Placed**, from its first byte until it authenticates or ends: a place among
//!    [`AdmissionSettings::max_per_address`] for its address and, unless it is local,
//!    [`AdmissionSettings::max_total`] in all. When its address's places are taken it
//!    **waits** for one, first come first served: a pool opening 200 connections at once
//!    is served 32 at a time instead of refused. It is refused only when no place came
//!    free for [`AdmissionSettings::wait`] (the places are held by connections that do
//!    not finish, such as a stranger's idle ones), or after
//!    [`AdmissionSettings::max_wait`] in all.
//!
//! The address's places are taken before the total's, so a burst from one address waits
//! on its own places and never holds total places it cannot use. Loopback clients (and
//! `::1`) and Unix-socket peers do not count against the totals: strangers filling them
//! never lock a local administrator out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::audit::{AuditEvent, AuditEventKind};
use auth_core::clock::SharedClock;
use auth_core::rate_limit::address_key;
use auth_core::{AuditSink, Engine, Peer, Protocol};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::proxy::{
    HeaderSource, ProxyError, TrustedProxies, may_begin_proxy_header, read_proxy_header,
};

/// The caps and the wait. The defaults suit a 2-core host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionSettings {
    /// Unauthenticated connections that have spoken, in all (local ones not counted).
    pub max_total: usize,
    /// Unauthenticated connections that have spoken, from one address (IPv6 by /64).
    pub max_per_address: usize,
    /// How long a connection waits for a place while none comes free: a connection is
    /// refused when its address's places (or the total's) have all been held, with no
    /// turnover, for this long. While places keep coming free (a pool logging in 32 at a
    /// time) it waits on, up to [`Self::max_wait`].
    pub wait: Duration,
    /// How long a connection waits for a place at most, however the queue moves.
    pub max_wait: Duration,
    /// Connections waiting for a place at once, in all; beyond, a connection that would
    /// wait is refused at once (each waiting connection holds a task and a socket).
    pub max_waiting: usize,
    /// Connections that have sent nothing yet, from one address; beyond, a connection
    /// must speak within [`Self::wait`] or is refused.
    pub max_silent_per_address: usize,
    /// Connections that have sent nothing yet, in all (local ones not counted).
    pub max_silent: usize,
    /// How long a connection may stay silent before it is closed.
    pub silent_timeout: Duration,
}

/// The default [`AdmissionSettings::max_total`].
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 128;
/// The default [`AdmissionSettings::max_per_address`].
pub const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 32;
/// The default [`AdmissionSettings::wait`].
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// The default [`AdmissionSettings::max_wait`].
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            max_total: DEFAULT_MAX_UNAUTHENTICATED,
            max_per_address: DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
            wait: DEFAULT_WAIT,
            max_wait: DEFAULT_MAX_WAIT,
            max_waiting: 16_384,
            max_silent_per_address: 256,
            max_silent: 4_096,
            silent_timeout: Duration::from_secs(10),
        }
    }
}

impl AdmissionSettings {
    /// `max_total` places in all, `max_per_address` per address, the other settings as
    /// the defaults.
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total,
            max_per_address,
            ..Self::default()
        }
    }

    /// The same with [`Self::wait`] set ([`Self::max_wait`] raised to it if lower).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self.max_wait = self.max_wait.max(wait);
        self
    }

    /// The same with [`Self::max_wait`] set.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The same with the silent stage's caps and timeout set.
    pub fn with_silent(mut self, per_address: usize, total: usize, timeout: Duration) -> Self {
        self.max_silent_per_address = per_address;
        self.max_silent = total;
        self.silent_timeout = timeout;
        self
    }
}

/// Whom a per-address count is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    /// A TCP client's address (IPv6 by /64, `::1` as itself).
    Address(IpAddr),
    /// A Unix-socket client running as this user id (unknown: `None`), so one local user
    /// cannot take the places of another, or of loopback TCP.
    Unix(Option<u32>),
    /// A transport that does not say.
    Unknown,
}

impl ClientKey {
    /// The key for `peer`, and whether it is local (not counted against the totals).
    fn of(peer: &Peer) -> (Self, bool) {
        match peer {
            Peer::Tcp(addr) => {
                let key = address_key(addr.ip());
                (Self::Address(key), key.is_loopback())
            }
            Peer::Unix { credentials, .. } => (Self::Unix(credentials.map(|c| c.uid)), true),
            _ => (Self::Unknown, false),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefusalReason {
    /// Its address already holds as many silent connections as it may, or the silent
    /// total is reached.
    #[error("too many connections that have sent nothing")]
    TooManySilent,
    /// No place came free within the wait.
    #[error("no place for an unauthenticated connection within the wait")]
    NoPlace,
    /// Too many connections are waiting for places already.
    #[error("too many connections waiting for a place")]
    TooManyWaiting,
    /// It sent nothing within the silent timeout, or closed before it spoke.
    #[error("sent nothing")]
    Silent,
    /// It began with a PROXY header but is not a trusted proxy: a client may not choose
    /// the address it is judged by.
    #[error("PROXY header from a peer that is not a trusted proxy")]
    UntrustedProxyHeader,
    /// A trusted proxy sent a PROXY header that could not be read.
    #[error("malformed PROXY header from a trusted proxy")]
    BadProxyHeader,
}

impl RefusalReason {
    /// The code the `reason` label of `auth_connections_refused_total` carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooManySilent => "too_many_silent",
            Self::NoPlace => "no_place",
            Self::TooManyWaiting => "too_many_waiting",
            Self::Silent => "silent",
            Self::UntrustedProxyHeader => "untrusted_proxy_header",
            Self::BadProxyHeader => "bad_proxy_header",
        }
    }

    /// Whether this refusal is the server's doing (and audited), rather than a client
    /// that left or never spoke.
    pub fn is_refusal(self) -> bool {
        !matches!(self, Self::Silent)
    }
}

/// A connection that was not admitted. When [`Refused::answer`] says so, the front door
/// answers it in its protocol (53300 on pgwire, 503 on HTTP, `UNAVAILABLE` on gRPC)
/// while the value lives; otherwise it closes the connection without a word, so a flood
/// of refusals holds neither tasks nor file descriptors.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub reason: RefusalReason,
    answering: Option<Answering>,
}

impl Refused {
    /// Whether the front door should answer the client (a place among the refusals
    /// being answered was free).
    pub fn answer(&self) -> bool {
        self.answering.is_some()
    }
}

/// How many refused connections are answered at once.
const MAX_ANSWERING: usize = 64;

/// A place among the refusals being answered.
#[derive(Debug)]
struct Answering(Arc<Admission>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
struct SilentCounts {
    total: usize,
    per_address: HashMap<ClientKey, usize>,
}

/// Where refusals are written, and the clock their timestamps come from.
struct Audit {
    sink: Arc<dyn AuditSink>,
    clock: SharedClock,
}

/// The places of one process's front doors: share one [`Arc<Admission>`] between every
/// listener, so that one address's connections are counted together whichever door they
/// use.
///
/// ```
/// use std::sync::Arc;
/// use auth_listen::{Admission, AdmissionSettings};
/// use auth_core::{Peer, Protocol};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let admission = Arc::new(Admission::new(AdmissionSettings::new(128, 2)));
/// let peer = Peer::Tcp("192.0.2.7:50000".parse().unwrap());
/// // A connection that has spoken takes a place; it goes back when the value is dropped.
/// let first = admission.place(&peer, Protocol::Postgres).await.unwrap();
/// let _second = admission.place(&peer, Protocol::Postgres).await.unwrap();
/// assert_eq!(admission.placed(&peer), 2);
/// drop(first);
/// assert_eq!(admission.placed(&peer), 1);
/// # }
/// ```
pub struct Admission {
    settings: AdmissionSettings,
    total: Arc<Places>,
    addresses: Mutex<HashMap<ClientKey, Arc<Places>>>,
    silent: Mutex<SilentCounts>,
    waiting: AtomicUsize,
    answering: AtomicUsize,
    audit: Option<Audit>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("settings", &self.settings)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(AdmissionSettings::default())
    }
}

impl Admission {
    /// Places as `settings` say; refusals are logged with `tracing` only until
    /// [`Self::audited_by`] names the audit sink.
    pub fn new(settings: AdmissionSettings) -> Self {
        Self {
            total: Arc::new(Places::new(settings.max_total)),
            settings,
            addresses: Mutex::new(HashMap::new()),
            silent: Mutex::new(SilentCounts::default()),
            waiting: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            audit: None,
        }
    }

    /// The same, writing each refusal to `engine`'s audit log
    /// (`connection_refused`), stamped by its clock.
    pub fn audited_by(mut self, engine: &Engine) -> Self {
        self.audit = Some(Audit {
            sink: engine.audit_sink().clone(),
            clock: engine.clock().clone(),
        });
        self
    }

    /// The settings.
    pub fn settings(&self) -> &AdmissionSettings {
        &self.settings
    }

    /// Enters the silent stage for a new connection from `peer`, or refuses it at once
    /// when its address (or everyone) has as many silent connections as allowed.
    /// ([`Self::admit`] gives such a connection the wait to speak instead.)
    pub fn silent(self: &Arc<Self>, peer: &Peer, protocol: Protocol) -> Result<Silent, Refused> {
        self.try_silent(peer)
            .ok_or_else(|| self.refuse(peer, protocol, RefusalReason::TooManySilent))
    }

    fn try_silent(self: &Arc<Self>, peer: &Peer) -> Option<Silent> {
        let (key, local) = ClientKey::of(peer);
        let mut counts = self.silent.lock().unwrap_or_else(PoisonError::into_inner);
        let from = counts.per_address.get(&key).copied().unwrap_or(0);
        if from >= self.settings.max_silent_per_address
            || (!local && counts.total >= self.settings.max_silent)
        {
            return None;
        }
        counts.per_address.insert(key, from + 1);
        if !local {
            counts.total += 1;
        }
        Some(Silent {
            admission: self.clone(),
            key,
            local,
        })
    }

    /// One more waiting connection, or `None` when as many wait as may.
    fn start_waiting(&self) -> Option<Waiting<'_>> {
        Waiting::start(&self.waiting, self.settings.max_waiting)
    }

    /// Admits a new connection on `stream` from `sender`: silent until its first byte
    /// arrives (or it closes); then, when it begins with a PROXY header, the header is
    /// taken (from a proxy in `trusted` only: from anyone else the connection is refused
    /// and audited) and the client it names is the connection's peer; then a place for
    /// that peer, waiting for one as [`Self::place`] does. A connection that stays silent
    /// past [`AdmissionSettings::silent_timeout`] is refused with
    /// [`RefusalReason::Silent`], which is neither audited nor answered.
    pub async fn admit<S: HeaderSource>(
        self: &Arc<Self>,
        stream: &mut S,
        sender: Peer,
        protocol: Protocol,
        trusted: &TrustedProxies,
    ) -> Result<Admitted, Refused> {
        let left = || Refused {
            reason: RefusalReason::Silent,
            answering: None,
        };
        // Over the address's silent places, a connection still gets the wait to speak
        // (a burst whose first bytes the server has not looked at yet is not silent),
        // counted among the waiting; one that says nothing by then is refused.
        let silent = self.try_silent(&sender);
        let _waiting = match silent {
            Some(_) => None,
            None => match self.start_waiting() {
                Some(waiting) => Some(waiting),
                None => return Err(self.refuse(&sender, protocol, RefusalReason::TooManyWaiting)),
            },
        };
        let limit = match silent {
            Some(_) => self.settings.silent_timeout,
            None => self.settings.wait,
        };
        let first = match tokio::time::timeout(limit, stream.peekable().first_byte()).await {
            Ok(Ok(first)) => first,
            Ok(Err(_)) => return Err(left()),
            Err(_) if silent.is_none() => {
                return Err(self.refuse(&sender, protocol, RefusalReason::TooManySilent));
            }
            Err(_) => return Err(left()),
        };
        // A header can only begin with `P` or `\r`: every other connection is past this
        // with the one look above.
        let header = if !first.is_some_and(may_begin_proxy_header) {
            None
        } else {
            match tokio::time::timeout(limit, read_proxy_header(stream, &sender, trusted)).await {
                Ok(Ok(header)) => header,
                Ok(Err(ProxyError::Io(_))) | Err(_) => return Err(left()),
                Ok(Err(e)) => {
                    let reason = match e {
                        ProxyError::Untrusted => RefusalReason::UntrustedProxyHeader,
                        _ => RefusalReason::BadProxyHeader,
                    };
                    return Err(self.refuse(&sender, protocol, reason));
                }
            }
        };
        drop(silent);
        let (peer, proxied) = match header {
            Some(header) => header.apply(sender),
            None => (sender, None),
        };
        let place = self.place(&peer, protocol).await?;
        Ok(Admitted {
            place,
            peer,
            proxied,
        })
    }

    /// A place for a connection from `peer` that has spoken, waiting up to
    /// [`AdmissionSettings::wait`] for one; dropping the [`Place`] gives it back.
    pub async fn place(
        self: &Arc<Self>,
        peer: &Peer,
        protocol: Protocol,
    ) -> Result<Place, Refused> {
        let (key, local) = ClientKey::of(peer);
        let slot = self.slot(key);
        let latest = tokio::time::Instant::now() + self.settings.max_wait;
        let address = match slot
            .places()
            .take(&self.waiting, &self.settings, latest)
            .await
        {
            Ok(permit) => permit,
            Err(reason) => return Err(self.refuse(peer, protocol, reason)),
        };
        let total = if local {
            None
        } else {
            match self.total.take(&self.waiting, &self.settings, latest).await {
                Ok(permit) => Some(permit),
                Err(reason) => return Err(self.refuse(peer, protocol, reason)),
            }
        };
        crate::metrics::unauthenticated("placed", 1.0);
        Ok(Place {
            _address: address,
            _total: total,
            total: (!local).then(|| self.total.clone()),
            _slot: slot,
        })
    }

    /// The address's semaphore, made on first use; the [`Slot`] keeps it in the map
    /// while anyone holds or waits for one of its places.
    fn slot(self: &Arc<Self>, key: ClientKey) -> Slot {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let semaphore = addresses
            .entry(key)
            .or_insert_with(|| Arc::new(Places::new(self.settings.max_per_address)))
            .clone();
        Slot {
            admission: self.clone(),
            key,
            places: Some(semaphore),
        }
    }

    /// Writes the refusal (unless the client merely left) and takes a place among the
    /// refusals being answered, when one is free.
    fn refuse(self: &Arc<Self>, peer: &Peer, protocol: Protocol, reason: RefusalReason) -> Refused {
        metrics::counter!(
            crate::metrics::CONNECTIONS_REFUSED,
            "protocol" => protocol.as_str(),
            "reason" => reason.code()
        )
        .increment(1);
        if reason.is_refusal() {
            tracing::info!(peer = %peer, reason = %reason, "connection refused");
            if let Some(audit) = &self.audit
                && audit.sink.enabled()
            {
                let detail = reason.to_string();
                let event = AuditEvent::new(
                    AuditEventKind::ConnectionRefused,
                    audit.clock.now(),
                    (peer, 0, protocol.as_str()),
                    "refused",
                )
                .with_failure(Some("too_many_connections"), Some(&detail));
                audit.sink.record(&event);
            }
        }
        // A connection that has said nothing has nothing to be answered: closed at once.
        let answerable = matches!(
            reason,
            RefusalReason::NoPlace | RefusalReason::TooManyWaiting
        );
        let answering = (answerable
            && self.answering.fetch_add(1, Ordering::AcqRel) < MAX_ANSWERING)
            .then(|| Answering(self.clone()));
        if answerable && answering.is_none() {
            self.answering.fetch_sub(1, Ordering::AcqRel);
        }
        Refused { reason, answering }
    }

    /// Connections from `peer`'s address holding places now.
    pub fn placed(&self, peer: &Peer) -> usize {
        let (key, _) = ClientKey::of(peer);
        let addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        addresses.get(&key).map_or(0, |s| {
            self.settings
                .max_per_address
                .saturating_sub(s.semaphore.available_permits())
        })
    }

    /// Places held in all by connections that are not local.
    pub fn placed_in_all(&self) -> usize {
        self.settings
            .max_total
            .saturating_sub(self.total.semaphore.available_permits())
    }

    /// Connections waiting for a place now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Silent connections from `peer`'s address now.
    pub fn silent_from(&self, peer: &Peer) -> usize {
        let (key, _) = ClientKey::of(peer);
        let counts = self.silent.lock().unwrap_or_else(PoisonError::into_inner);
        counts.per_address.get(&key).copied().unwrap_or(0)
    }
}

/// One waiting connection, counted while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    /// Counts one more in `waiting`, or `None` when `max` wait already.
    fn start(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        if waiting.fetch_add(1, Ordering::AcqRel) >= max {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        crate::metrics::unauthenticated("waiting", 1.0);
        Some(Self(waiting))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::unauthenticated("waiting", -1.0);
    }
}

/// A connection in the silent stage; dropping it (when it speaks, or ends) lets the next
/// one in.
#[derive(Debug)]
pub struct Silent {
    admission: Arc<Admission>,
    key: ClientKey,
    local: bool,
}

impl Drop for Silent {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .silent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.local {
            counts.total = counts.total.saturating_sub(1);
        }
        if let Some(n) = counts.per_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.key);
            }
        }
    }
}

/// Keeps an address's semaphore in the map while anyone holds or waits for it; the last
/// one out removes it, so the map holds only addresses with connections.
struct Slot {
    admission: Arc<Admission>,
    key: ClientKey,
    places: Option<Arc<Places>>,
}

impl Slot {
    fn places(&self) -> &Arc<Places> {
        // Taken only in Drop.
        self.places
            .as_ref()
            .unwrap_or_else(|| unreachable!("the places are taken only on drop"))
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.places.take());
        let mut addresses = self
            .admission
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Clones are made only under this lock: one reference left is the map's.
        if addresses
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            addresses.remove(&self.key);
        }
    }
}

/// An admitted connection: its place, and who it is for (behind a trusted proxy, the
/// client the proxy named, with the proxy beside it).
#[derive(Debug)]
pub struct Admitted {
    /// The place; dropping it gives it back.
    pub place: Place,
    /// The client.
    pub peer: Peer,
    /// The trusted proxy the client came through, if any.
    pub proxied: Option<auth_core::Proxied>,
}

/// One unauthenticated connection's place; dropping it gives it back (to the next
/// waiting connection of its address, first come first served).
#[derive(Debug)]
pub struct Place {
    // Dropped in this order: the permits before the slot, which may remove the address.
    _address: OwnedSemaphorePermit,
    _total: Option<OwnedSemaphorePermit>,
    total: Option<Arc<Places>>,
    _slot: Slot,
}

impl Drop for Place {
    fn drop(&mut self) {
        crate::metrics::unauthenticated("placed", -1.0);
        // The turnover waiting connections watch (their permits go back right after).
        self._slot.places().released_now();
        if let Some(total) = &self.total {
            total.released_now();
        }
    }
}

/// A set of places (an address's, or the total) and when one last came free.
#[derive(Debug)]
struct Places {
    semaphore: Arc<Semaphore>,
    released: Mutex<tokio::time::Instant>,
}

impl Places {
    fn new(places: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(places)),
            released: Mutex::new(tokio::time::Instant::now()),
        }
    }

    fn released_now(&self) {
        *self.released.lock().unwrap_or_else(PoisonError::into_inner) = tokio::time::Instant::now();
    }

    fn last_released(&self) -> tokio::time::Instant {
        *self.released.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One place: at once when free, else in turn (first come, first served) while places
    /// keep coming free, refused after `settings.wait` without turnover or at `latest`.
    async fn take(
        &self,
        waiting: &AtomicUsize,
        settings: &AdmissionSettings,
        latest: tokio::time::Instant,
    ) -> Result<OwnedSemaphorePermit, RefusalReason> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let Some(_waiting) = Waiting::start(waiting, settings.max_waiting) else {
            return Err(RefusalReason::TooManyWaiting);
        };
        // One acquire for the whole wait: it keeps the connection's turn.
        let acquire = self.semaphore.clone().acquire_owned();
        tokio::pin!(acquire);
        let mut deadline = (tokio::time::Instant::now() + settings.wait).min(latest);
        loop {
            tokio::select! {
                permit = &mut acquire => {
                    // The semaphores are never closed; a closed one means no place either.
                    return permit.map_err(|_| RefusalReason::NoPlace);
                }
                () = tokio::time::sleep_until(deadline) => {
                    let next = (self.last_released() + settings.wait).min(latest);
                    if next <= deadline {
                        return Err(RefusalReason::NoPlace);
                    }
                    deadline = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ip: &str) -> Peer {
        Peer::Tcp(std::net::SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_places_waits_and_is_served_in_turn() {
        let admission = Arc::new(Admission::new(AdmissionSettings::new(10, 2)));
        let a = tcp("192.0.2.1");
        let p1 = admission.place(&a, Protocol::Postgres).await.unwrap();
        let _p2 = admission.place(&a, Protocol::Postgres).await.unwrap();
        let waiter = {
            let (admission, a) = (admission.clone(), a.clone());
            tokio::spawn(async move { admission.place(&a, Protocol::Postgres).await })
        };
        // The third waits; another address is not held up.
        tokio::task::yield_now().await;
        assert_eq!(admission.waiting(), 1, "the third waits");
        let _b = admission
            .place(&tcp("192.0.2.2"), Protocol::Postgres)
            .await
            .expect("another address has its own places");
        drop(p1);
        let third = waiter
            .await
            .unwrap()
            .expect("served when a place came free");
        assert_eq!(admission.placed(&a), 2);
        drop(third);
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_runs_out_into_a_refusal_that_is_answered() {
        let admission = Arc::new(Admission::new(
            AdmissionSettings::new(10, 1).with_wait(Duration::from_secs(5)),
        ));
        let a = tcp("192.0.2.1");
        let _held = admission.place(&a, Protocol::Http).await.unwrap();
        let started = tokio::time::Instant::now();
        let refused = admission.place(&a, Protocol::Http).await.unwrap_err();
        assert_eq!(refused.reason, RefusalReason::NoPlace);
        assert_eq!(started.elapsed(), Duration::from_secs(5), "after the wait");
        assert!(refused.answer(), "refusals are answered while few");
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_that_moves_waits_past_the_wait_and_a_stalled_one_does_not() {
        let admission = Arc::new(Admission::new(
            AdmissionSettings::new(10, 1)
                .with_wait(Duration::from_secs(1))
                .with_max_wait(Duration::from_secs(10)),
        ));
        let a = tcp("192.0.2.1");
        let first = admission.place(&a, Protocol::Postgres).await.unwrap();
        let started = tokio::time::Instant::now();
        let waiter = |admission: Arc<Admission>, a: Peer| {
            tokio::spawn(async move { admission.place(&a, Protocol::Postgres).await })
        };
        let second = waiter(admission.clone(), a.clone());
        tokio::task::yield_now().await;
        let third = waiter(admission.clone(), a.clone());
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(first);
        let second = second.await.unwrap().expect("the second, in turn");
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(second);
        let third = third
            .await
            .unwrap()
            .expect("the queue moved within each second");
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(1600),
            "past the 1 s wait"
        );
        // Held with no turnover, the next waits one `wait` and is refused.
        let stalled = admission.place(&a, Protocol::Postgres).await.unwrap_err();
        assert_eq!(stalled.reason, RefusalReason::NoPlace);
        assert_eq!(started.elapsed(), Duration::from_millis(2600));
        drop(third);
    }

    #[tokio::test(start_paused = true)]
    async fn loopback_and_unix_peers_never_count_against_the_total() {
        let admission = Arc::new(Admission::new(
            AdmissionSettings::new(1, 4).with_wait(Duration::from_millis(10)),
        ));
        let _stranger = admission
            .place(&tcp("192.0.2.1"), Protocol::Postgres)
            .await
            .unwrap();
        assert!(
            admission
                .place(&tcp("192.0.2.2"), Protocol::Postgres)
                .await
                .is_err(),
            "the total is full"
        );
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let _ok = admission
                .place(&tcp(local), Protocol::Postgres)
                .await
                .unwrap_or_else(|_| panic!("{local} is loopback"));
        }
        let unix = Peer::unix(None, None);
        let _unix = admission.place(&unix, Protocol::Postgres).await.unwrap();
        assert_eq!(admission.placed_in_all(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_clients_count_by_their_64_and_loopback_apart() {
        let admission = Arc::new(Admission::new(
            AdmissionSettings::new(10, 1).with_wait(Duration::from_millis(10)),
        ));
        let _one = admission
            .place(&tcp("2001:db8::1"), Protocol::Postgres)
            .await
            .unwrap();
        assert!(
            admission
                .place(&tcp("2001:db8::ffff"), Protocol::Postgres)
                .await
                .is_err(),
            "one /64"
        );
        let _zero = admission
            .place(&tcp("::2"), Protocol::Postgres)
            .await
            .unwrap();
        let _local = admission
            .place(&tcp("::1"), Protocol::Postgres)
            .await
            .expect("::1 is not the :: /64");
    }

    #[tokio::test]
    async fn silent_connections_are_capped_per_address_and_hold_no_place() {
        let admission = Arc::new(Admission::new(AdmissionSettings::new(10, 1).with_silent(
            2,
            100,
            Duration::from_secs(10),
        )));
        let a = tcp("192.0.2.1");
        let s1 = admission.silent(&a, Protocol::Postgres).unwrap();
        let _s2 = admission.silent(&a, Protocol::Postgres).unwrap();
        let refused = admission.silent(&a, Protocol::Postgres).unwrap_err();
        assert_eq!(refused.reason, RefusalReason::TooManySilent);
        assert!(
            !refused.answer(),
            "closed at once: it said nothing to answer"
        );
        assert_eq!(admission.silent_from(&a), 2);
        let _place = admission
            .place(&a, Protocol::Postgres)
            .await
            .expect("silent connections hold no place");
        drop(s1);
        assert!(admission.silent(&a, Protocol::Postgres).is_ok());
    }

    #[tokio::test]
    async fn addresses_leave_the_map_when_their_last_place_goes() {
        let admission = Arc::new(Admission::new(AdmissionSettings::new(10, 2)));
        for n in 0..100u8 {
            let peer = tcp(&format!("198.51.100.{n}"));
            let _p = admission.place(&peer, Protocol::Postgres).await.unwrap();
        }
        let addresses = admission.addresses.lock().unwrap();
        assert!(addresses.is_empty(), "{} left", addresses.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_waiter_audits_once() {
        #[derive(Debug, Default)]
        struct Count(std::sync::atomic::AtomicUsize);
        impl AuditSink for Count {
            fn record(&self, event: &AuditEvent<'_>) {
                assert_eq!(event.event, AuditEventKind::ConnectionRefused);
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let sink = Arc::new(Count::default());
        let engine = Engine::builder(auth_core::Policy::new(vec![]).unwrap())
            .audit(sink.clone())
            .build();
        let admission = Arc::new(
            Admission::new(AdmissionSettings::new(10, 1).with_wait(Duration::from_secs(1)))
                .audited_by(&engine),
        );
        let a = tcp("192.0.2.1");
        let _held = admission.place(&a, Protocol::Grpc).await.unwrap();
        let _ = admission.place(&a, Protocol::Grpc).await.unwrap_err();
        assert_eq!(sink.0.load(Ordering::SeqCst), 1);
    }
}
