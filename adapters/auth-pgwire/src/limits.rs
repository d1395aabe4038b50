//! Caps on connections that have not authenticated yet, and an accept loop that backs
//! off when the process runs out of file descriptors.
//!
//! Each unauthenticated connection may sit for the whole authentication timeout, so a
//! client that opens connections and sends nothing could otherwise hold any number of
//! them. A connection takes a [`PreAuthPermit`] when accepted and gives it back when it
//! authenticates or ends; beyond the caps it is answered FATAL 53300 "sorry, too many
//! clients already", as PostgreSQL does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auth_core::rate_limit::address_key;
use tokio::net::{TcpListener, TcpStream};

/// The default cap on unauthenticated connections in all, sized for a 2-core host.
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 128;
/// The default cap on unauthenticated connections from one client address (IPv6 by /64).
pub const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 32;

/// The caps and what they count. Share one between every listener of a process.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
    /// Connections being answered "too many clients" right now.
    refusing: AtomicUsize,
}

/// How many over-cap connections are answered at once; beyond it they are closed
/// without an answer, so a flood of them holds neither tasks nor file descriptors.
const MAX_REFUSING: usize = 64;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<Client, usize>,
}

/// Whom a per-address count is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    /// A TCP client's address (IPv6 by /64).
    Address(IpAddr),
    /// A Unix-socket client running as this user id (unknown: `None`), so one local user
    /// cannot take the places of another, or of loopback TCP.
    Unix(Option<u32>),
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::new(
            DEFAULT_MAX_UNAUTHENTICATED,
            DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
        )
    }
}

impl ConnectionLimits {
    /// At most `max_total` unauthenticated connections, `max_per_address` of them from
    /// one address.
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total,
            max_per_address,
            counts: Mutex::new(Counts::default()),
            refusing: AtomicUsize::new(0),
        }
    }

    /// A permit for a new connection from `ip`, or `None` when a cap is reached.
    /// Loopback clients count under their address but not against the total, so that
    /// strangers filling the total cap never lock a local administrator out.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<PreAuthPermit> {
        let key = address_key(ip);
        self.enter_as(Client::Address(key), key.is_loopback())
    }

    /// A permit for a new Unix-socket connection from a process running as `uid`: counted
    /// per user id (each its own "address"), and, being local, not against the total.
    pub fn enter_unix(self: &Arc<Self>, uid: Option<u32>) -> Option<PreAuthPermit> {
        self.enter_as(Client::Unix(uid), true)
    }

    fn enter_as(self: &Arc<Self>, key: Client, local: bool) -> Option<PreAuthPermit> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let from = c.per_address.get(&key).copied().unwrap_or(0);
        if (!local && c.total >= self.max_total) || from >= self.max_per_address {
            return None;
        }
        if !local {
            c.total += 1;
        }
        c.per_address.insert(key, from + 1);
        Some(PreAuthPermit {
            limits: self.clone(),
            key,
            local,
        })
    }

    /// A place to answer one over-cap connection, or `None` when too many are being
    /// answered already; dropping it gives the place back.
    pub(crate) fn refusal(&self) -> Option<Refusing<'_>> {
        if self.refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
            self.refusing.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Refusing(&self.refusing))
    }

    /// Unauthenticated connections now: (in all, from `ip`'s address).
    pub fn count(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        (
            c.total,
            c.per_address
                .get(&Client::Address(address_key(ip)))
                .copied()
                .unwrap_or(0),
        )
    }
}

/// A place among the over-cap connections being answered.
pub(crate) struct Refusing<'a>(&'a AtomicUsize);

impl Drop for Refusing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One unauthenticated connection's place under the caps; dropping it gives it back.
#[derive(Debug)]
pub struct PreAuthPermit {
    limits: Arc<ConnectionLimits>,
    key: Client,
    local: bool,
}

impl Drop for PreAuthPermit {
    fn drop(&mut self) {
        let mut c = self
            .limits
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.local {
            c.total = c.total.saturating_sub(1);
        }
        if let Some(n) = c.per_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.key);
            }
        }
    }
}

/// The next connection on `listener`. Accept errors (out of file descriptors, a
/// connection reset before it was accepted) are logged and retried after a pause that
/// doubles from 5 ms to 1 s, never in a tight loop; the pause resets after a success.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    let mut pause = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => return tcp,
            Err(e) => {
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_in_all_and_per_address_and_come_back_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = limits.enter(a).unwrap();
        let _p2 = limits.enter(a).unwrap();
        assert!(limits.enter(a).is_none(), "per address");
        let _p3 = limits.enter(b).unwrap();
        assert!(
            limits.enter("192.0.2.3".parse().unwrap()).is_none(),
            "in all"
        );
        drop(p1);
        assert_eq!(limits.count(a), (2, 1));
        assert!(limits.enter(a).is_some());
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let _l = limits
            .enter(local)
            .expect("loopback is not held back by the total");
        assert_eq!(limits.count(local), (2, 1));
        // Unix-socket clients: per user id, apart from loopback TCP and from each other.
        let limits2 = Arc::new(ConnectionLimits::new(1, 1));
        let _root = limits2.enter_unix(Some(0)).unwrap();
        assert!(limits2.enter_unix(Some(0)).is_none(), "one per uid here");
        let _other = limits2.enter_unix(Some(1000)).unwrap();
        let _tcp = limits2.enter(local).unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let limits = Arc::new(ConnectionLimits::new(10, 1));
        let _p = limits.enter(v6).unwrap();
        assert!(
            limits.enter("2001:db8::ffff".parse().unwrap()).is_none(),
            "one /64"
        );
    }
}
