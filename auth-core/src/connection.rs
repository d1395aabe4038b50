//! Facts about the connection an attempt arrives on.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where the client connects from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP connection from this address.
    Tcp(SocketAddr),
    /// A Unix-domain socket connection (build it with [`Peer::unix`]).
    #[non_exhaustive]
    Unix {
        /// The path of the server's socket, when known.
        path: Option<PathBuf>,
        /// Who the connecting process runs as, as the kernel says (`SO_PEERCRED`); only
        /// an adapter sets it, from the socket, so a client cannot claim it.
        credentials: Option<PeerCredentials>,
    },
    /// Nothing is known about the peer (a transport that does not say).
    Unknown,
}

/// The connecting process of a Unix-domain socket, as the kernel reports it when the
/// connection is made (`SO_PEERCRED`). [`PeerAuthenticator`](crate::local::PeerAuthenticator)
/// turns the user id into an OS user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The process's effective user id.
    pub uid: u32,
    /// The process's effective group id.
    pub gid: u32,
    /// The process id, where the platform reports it.
    pub pid: Option<i32>,
}

impl Peer {
    /// A Unix-domain socket peer at the server socket `path`, running as `credentials`.
    pub fn unix(path: Option<PathBuf>, credentials: Option<PeerCredentials>) -> Self {
        Self::Unix { path, credentials }
    }

    /// The peer's credentials, for Unix-domain socket peers whose adapter read them.
    pub fn credentials(&self) -> Option<PeerCredentials> {
        match self {
            Self::Unix { credentials, .. } => *credentials,
            _ => None,
        }
    }

    /// The client's IP address, for TCP peers. IPv4-mapped IPv6 addresses are returned as
    /// IPv4, so `::ffff:10.0.0.1` matches the rule for `10.0.0.0/8`.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Tcp(addr) => Some(addr.ip().to_canonical()),
            _ => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix { path, credentials } => {
                f.write_str("unix")?;
                if let Some(path) = path {
                    write!(f, ":{}", path.display())?;
                }
                if let Some(c) = credentials {
                    write!(f, " uid={}", c.uid)?;
                }
                Ok(())
            }
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// The protocol an attempt came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// The PostgreSQL wire protocol.
    Postgres,
    /// HTTP.
    Http,
    /// gRPC.
    Grpc,
    /// Anything else (tests, command-line tools).
    Other,
}

impl Protocol {
    /// The protocol a configuration names: `pgwire` (or `postgres`), `http`, `grpc`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pgwire" | "postgres" => Some(Self::Postgres),
            "http" => Some(Self::Http),
            "grpc" => Some(Self::Grpc),
            _ => None,
        }
    }

    /// A short lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Http => "http",
            Self::Grpc => "grpc",
            Self::Other => "other",
        }
    }
}

/// TLS facts for a connection that is encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The negotiated protocol version, such as `TLSv1.3`.
    pub version: Option<String>,
    /// The server name the client asked for (SNI).
    pub server_name: Option<String>,
    /// `tls-server-end-point` channel-binding data (RFC 5929): the hash of the server's
    /// certificate, used by SCRAM-SHA-256-PLUS.
    pub server_end_point: Option<Vec<u8>>,
    /// The client's certificate chain (DER, leaf first) when it presented one, as
    /// presented: the handshake proved the client holds the leaf's key, but whether the
    /// chain is trusted, valid and unrevoked is for
    /// [`CertificateAuthenticator`](crate::certificate::CertificateAuthenticator) or
    /// [`CertificateCheck`](crate::certificate::CertificateCheck) to say.
    pub client_certificates: Vec<Vec<u8>>,
}

/// The proxy a connection came through, when a proxy this server trusts reported the
/// client (PROXY protocol, `Forwarded`, `X-Forwarded-For`): the connection's
/// [`ConnectionInfo::peer`] is then the client the proxy named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// The proxy itself: this server's TCP peer (or Unix-socket peer).
    pub proxy: Peer,
    /// Whether the client spoke TLS to the proxy (PROXY v2's `PP2_TYPE_SSL` with the
    /// client-SSL bit, `X-Forwarded-Proto: https`, `Forwarded: proto=https`).
    pub client_tls: bool,
}

/// Everything the server knows about a connection before it authenticates: the input to
/// [`Policy`](crate::Policy) rule matching and to rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// An identifier for correlating audit events of one connection.
    pub id: u64,
    /// Where the client connects from.
    pub peer: Peer,
    /// The protocol.
    pub protocol: Protocol,
    /// TLS facts when the connection is encrypted, `None` for plaintext.
    pub tls: Option<TlsInfo>,
    /// Whether the server encrypts this connection with GSSAPI, which `hostgss` policy
    /// rules match. Set only from what the server established, never from what the
    /// client asked for: a GSSENCRequest the server declined, or an
    /// `Authorization: Negotiate` header, leaves it false. None of this project's
    /// adapters encrypts with GSSAPI.
    pub gss_encrypted: bool,
    /// The user the client asked to be (pgwire startup `user`, HTTP Basic user).
    pub user: Option<String>,
    /// The database the client asked for.
    pub database: Option<String>,
    /// Other startup parameters (pgwire `application_name` and so on). Never secrets.
    pub parameters: BTreeMap<String, String>,
    /// The trusted proxy the client came through, if any; `peer` is then the client.
    pub proxied: Option<Proxied>,
}

impl ConnectionInfo {
    /// A connection of `protocol` from `peer`, with nothing else known yet.
    pub fn new(protocol: Protocol, peer: Peer) -> Self {
        Self {
            id: 0,
            peer,
            protocol,
            tls: None,
            gss_encrypted: false,
            user: None,
            database: None,
            parameters: BTreeMap::new(),
            proxied: None,
        }
    }

    /// A TCP connection from `addr`.
    pub fn tcp(protocol: Protocol, addr: SocketAddr) -> Self {
        Self::new(protocol, Peer::Tcp(addr))
    }

    /// Sets the connection id.
    #[must_use]
    pub fn with_id(mut self, id: u64) -> Self {
        self.id = id;
        self
    }

    /// Sets the requested user.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets the requested database.
    #[must_use]
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Marks the connection as TLS-encrypted.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Marks the connection as coming through the trusted proxy of `proxied`; `peer`
    /// should already be the client it reported.
    #[must_use]
    pub fn with_proxy(mut self, proxied: Proxied) -> Self {
        self.proxied = Some(proxied);
        self
    }

    /// Whether this server's end of the connection is TLS (what channel binding and
    /// client certificates need).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the client's bytes travelled under TLS to whoever terminated it: this
    /// server, or a trusted proxy that says the client spoke TLS to it. What `hostssl`
    /// and `hostnossl` rules match.
    pub fn client_spoke_tls(&self) -> bool {
        self.is_tls() || self.proxied.as_ref().is_some_and(|p| p.client_tls)
    }

    /// Whether what the client sends cannot be read on the way: TLS (here, or to a trusted
    /// proxy that terminated it), a Unix-domain socket (the kernel carries the bytes), or
    /// GSSAPI encryption the server established. What a
    /// [`Transport::Encrypted`](crate::Transport::Encrypted) method needs.
    pub fn is_encrypted(&self) -> bool {
        self.client_spoke_tls()
            || self.gss_encrypted
            || (self.proxied.is_none() && matches!(self.peer, Peer::Unix { .. }))
    }

    /// Whether the client is on this machine: a Unix-domain socket, or a TCP peer in
    /// `127.0.0.0/8`, `::1`, or an IPv4-mapped loopback address (`::ffff:127.0.0.1`). A
    /// client that came through a proxy never is, whatever address the proxy reported.
    pub fn is_localhost(&self) -> bool {
        if self.proxied.is_some() {
            return false;
        }
        match &self.peer {
            Peer::Unix { .. } => true,
            Peer::Tcp(_) => self.peer.ip().is_some_and(|ip| ip.is_loopback()),
            Peer::Unknown => false,
        }
    }

    /// The `tls-server-end-point` channel-binding data, when the connection has TLS and the
    /// adapter computed it.
    pub fn channel_binding(&self) -> Option<&[u8]> {
        self.tls.as_ref()?.server_end_point.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(addr: &str) -> ConnectionInfo {
        ConnectionInfo::tcp(Protocol::Postgres, addr.parse().unwrap())
    }

    #[test]
    fn a_proxied_client_is_never_localhost_and_encrypted_only_if_it_spoke_tls() {
        let proxy = Peer::Tcp("127.0.0.1:40000".parse().unwrap());
        let through = |client_tls| {
            tcp("127.0.0.1:5000").with_proxy(Proxied {
                proxy: proxy.clone(),
                client_tls,
            })
        };
        assert!(!through(false).is_localhost(), "a header saying 127.0.0.1");
        assert!(!through(false).is_encrypted());
        assert!(!through(false).client_spoke_tls());
        assert!(through(true).is_encrypted() && through(true).client_spoke_tls());
        assert!(
            !through(true).is_tls(),
            "no TLS of ours: no channel binding"
        );
    }

    #[test]
    fn localhost_covers_ipv4_loopback_range_ipv6_mapped_and_unix() {
        for local in [
            "127.0.0.1:5432",
            "127.200.3.4:1",
            "[::1]:5432",
            "[::ffff:127.0.0.1]:5432",
            "[::ffff:127.9.9.9]:1",
        ] {
            assert!(tcp(local).is_localhost(), "{local} should be localhost");
        }
        assert!(ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None)).is_localhost());
    }

    #[test]
    fn remote_and_unknown_are_not_localhost() {
        for remote in [
            "10.0.0.1:5432",
            "128.0.0.1:1",
            "[::2]:1",
            "[::ffff:10.0.0.1]:1",
            "[fe80::1]:1",
            "0.0.0.0:1",
        ] {
            assert!(!tcp(remote).is_localhost(), "{remote} is not localhost");
        }
        assert!(!ConnectionInfo::new(Protocol::Http, Peer::Unknown).is_localhost());
    }

    #[test]
    fn a_unix_peer_shows_its_socket_and_uid_and_only_it_has_credentials() {
        let cred = PeerCredentials {
            uid: 1000,
            gid: 1000,
            pid: Some(42),
        };
        let peer = Peer::unix(Some("/run/pg/.s.PGSQL.5432".into()), Some(cred));
        assert_eq!(peer.to_string(), "unix:/run/pg/.s.PGSQL.5432 uid=1000");
        assert_eq!(peer.credentials(), Some(cred));
        assert_eq!(Peer::unix(None, None).to_string(), "unix");
        assert_eq!(
            Peer::Tcp("127.0.0.1:1".parse().unwrap()).credentials(),
            None
        );
    }

    #[test]
    fn mapped_addresses_are_canonicalized_for_matching() {
        let c = tcp("[::ffff:10.1.2.3]:5");
        assert_eq!(c.peer.ip(), Some("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn channel_binding_only_with_tls() {
        let plain = tcp("127.0.0.1:1");
        assert_eq!(plain.channel_binding(), None);
        let tls = plain.with_tls(TlsInfo {
            server_end_point: Some(vec![1, 2, 3]),
            ..TlsInfo::default()
        });
        assert!(tls.is_tls());
        assert_eq!(tls.channel_binding(), Some(&[1u8, 2, 3][..]));
    }
}
