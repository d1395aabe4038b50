//! The real client behind a proxy: PROXY protocol headers (v1 and v2, parsed by the `ppp`
//! crate), accepted only from proxies the server trusts.
//!
//! A connection from a trusted proxy may begin with a header naming the client; the
//! client is then the connection's peer for everything (rules, places, limits, the
//! audit's `source`), and the proxy is kept beside it
//! ([`auth_core::Proxied`]). A header from any other peer is refused: a client must not
//! choose the address it is judged by.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use auth_core::{Peer, Proxied};
use ipnet::IpNet;
use ppp::HeaderResult;
use tokio::net::{TcpStream, UnixStream};

/// The proxies whose word on the client's address is taken: networks and, optionally,
/// every Unix-socket peer.
///
/// ```
/// use auth_listen::TrustedProxies;
/// use auth_core::Peer;
///
/// let trusted = TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1", "unix"]).unwrap();
/// assert!(trusted.trusts(&Peer::Tcp("10.1.2.3:40000".parse().unwrap())));
/// assert!(!trusted.trusts(&Peer::Tcp("192.0.2.1:40000".parse().unwrap())));
/// assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    unix: bool,
}

/// A `trusted_proxies` entry that is neither an address, a network nor `unix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy `{0}` is not an IP address, a network like 10.0.0.0/8, or `unix`")]
pub struct BadTrustedProxy(pub String);

impl TrustedProxies {
    /// No proxy is trusted (the default): every PROXY header is refused, every
    /// forwarding header ignored.
    pub fn none() -> Self {
        Self::default()
    }

    /// From entries like `10.0.0.0/8`, `127.0.0.1`, `::1` and `unix` (every Unix-socket
    /// peer).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, BadTrustedProxy> {
        let mut trusted = Self::default();
        for entry in entries {
            let entry = entry.trim();
            if entry == "unix" {
                trusted.unix = true;
            } else if let Ok(net) = entry.parse::<IpNet>() {
                trusted.networks.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                trusted.networks.push(IpNet::from(ip));
            } else {
                return Err(BadTrustedProxy(entry.to_owned()));
            }
        }
        Ok(trusted)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && !self.unix
    }

    /// Whether `peer` is a trusted proxy.
    pub fn trusts(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Tcp(addr) => self.trusts_ip(addr.ip()),
            Peer::Unix { .. } => self.unix,
            _ => false,
        }
    }

    /// Whether `ip` is a trusted proxy's address (IPv4-mapped IPv6 as IPv4).
    pub fn trusts_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(&ip))
    }
}

/// [`TrustedProxies`] that a reload can replace while listeners run: every copy sees the
/// replacement, and each connection reads them once, when it is accepted.
///
/// ```
/// use auth_core::Peer;
/// use auth_listen::{SharedTrustedProxies, TrustedProxies};
///
/// let shared = SharedTrustedProxies::new(TrustedProxies::none());
/// let listeners_copy = shared.clone();
/// shared.replace(TrustedProxies::parse(["10.0.0.0/8"]).unwrap());
/// assert!(listeners_copy.load().trusts(&Peer::Tcp("10.1.2.3:40000".parse().unwrap())));
/// ```
#[derive(Clone, Default)]
pub struct SharedTrustedProxies(Arc<ArcSwap<TrustedProxies>>);

impl SharedTrustedProxies {
    /// Sharing `trusted`.
    pub fn new(trusted: TrustedProxies) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(trusted)))
    }

    /// The trusted proxies in force now.
    pub fn load(&self) -> Arc<TrustedProxies> {
        self.0.load_full()
    }

    /// Puts `trusted` in force for every copy, for the connections accepted from now on.
    pub fn replace(&self, trusted: TrustedProxies) {
        self.0.store(Arc::new(trusted));
    }
}

impl From<TrustedProxies> for SharedTrustedProxies {
    fn from(trusted: TrustedProxies) -> Self {
        Self::new(trusted)
    }
}

impl From<Arc<TrustedProxies>> for SharedTrustedProxies {
    fn from(trusted: Arc<TrustedProxies>) -> Self {
        Self(Arc::new(ArcSwap::new(trusted)))
    }
}

impl std::fmt::Debug for SharedTrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.load().fmt(f)
    }
}

/// What a PROXY header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address; `None` for v2's `LOCAL` command (the proxy's own health
    /// check) and v1's `UNKNOWN`, where the proxy itself is the peer.
    pub client: Option<SocketAddr>,
    /// Whether the client spoke TLS to the proxy (v2 `PP2_TYPE_SSL`, client-SSL bit).
    pub client_tls: bool,
}

impl ProxyHeader {
    /// The connection's peer and proxy facts after this header from `proxy`.
    pub fn apply(self, proxy: Peer) -> (Peer, Option<Proxied>) {
        match self.client {
            Some(client) => (
                Peer::Tcp(client),
                Some(Proxied {
                    proxy,
                    client_tls: self.client_tls,
                }),
            ),
            None => (proxy, None),
        }
    }
}

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A PROXY header from a peer that is not a trusted proxy.
    #[error("PROXY header from a peer that is not a trusted proxy")]
    Untrusted,
    /// The header could not be parsed.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    /// The header is longer than [`MAX_PROXY_HEADER`].
    #[error("PROXY header longer than {MAX_PROXY_HEADER} bytes")]
    TooLong,
    /// The connection failed while the header was read.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// The longest PROXY header read (v1's is at most 107 bytes; v2 with HAProxy's TLS
/// details is a few hundred).
pub const MAX_PROXY_HEADER: usize = 1024;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_PREFIX: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// `PP2_TYPE_SSL` and its client-SSL bit.
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_CLIENT_SSL: u8 = 0x01;

/// A stream whose first bytes can be looked at without taking them.
#[derive(Debug, Clone, Copy)]
pub enum Peekable<'a> {
    /// A TCP connection.
    Tcp(&'a TcpStream),
    /// A Unix-socket connection.
    Unix(&'a UnixStream),
}

impl Peekable<'_> {
    /// Copies the bytes waiting (at least one, or 0 at the end) into `buf`, leaving them.
    pub async fn peek(self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(tcp) => tcp.peek(buf).await,
            Self::Unix(unix) => loop {
                unix.readable().await?;
                let peeked = unix.try_io(tokio::io::Interest::READABLE, || {
                    use std::os::fd::AsRawFd;
                    nix::sys::socket::recv(
                        unix.as_raw_fd(),
                        buf,
                        nix::sys::socket::MsgFlags::MSG_PEEK,
                    )
                    .map_err(io::Error::from)
                });
                match peeked {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// The first byte waiting (not taken), or `None` when the client closed: the end of a
    /// connection's silent stage. Readiness alone is not enough: a fresh socket can report
    /// readable with nothing to read.
    pub async fn first_byte(self) -> io::Result<Option<u8>> {
        let mut first = [0u8; 1];
        Ok((self.peek(&mut first).await? == 1).then_some(first[0]))
    }
}

/// Whether a connection whose first byte is `first` may begin with a PROXY header (v1's
/// `P`, v2's `\r`); any other connection is not looked at further.
pub fn may_begin_proxy_header(first: u8) -> bool {
    first == V1_PREFIX[0] || first == V2_PREFIX[0]
}

/// Whether `head` (what has arrived so far) may still become a PROXY header, and whether
/// it already surely is one.
fn classify(head: &[u8]) -> (bool, bool) {
    let may = |prefix: &[u8]| {
        let n = head.len().min(prefix.len());
        head[..n] == prefix[..n]
    };
    let sure = head.starts_with(V1_PREFIX) || head.starts_with(V2_PREFIX);
    (may(V1_PREFIX) || may(V2_PREFIX), sure)
}

/// A connection a PROXY header can be read from: its first bytes can be looked at, and
/// taken.
pub trait HeaderSource: Send {
    /// The stream, to look at.
    fn peekable(&self) -> Peekable<'_>;
    /// Reads exactly `n` bytes and drops them.
    fn take(&mut self, n: usize) -> impl Future<Output = io::Result<()>> + Send;
}

impl HeaderSource for TcpStream {
    fn peekable(&self) -> Peekable<'_> {
        Peekable::Tcp(self)
    }
    async fn take(&mut self, n: usize) -> io::Result<()> {
        discard(self, n).await
    }
}

impl HeaderSource for UnixStream {
    fn peekable(&self) -> Peekable<'_> {
        Peekable::Unix(self)
    }
    async fn take(&mut self, n: usize) -> io::Result<()> {
        discard(self, n).await
    }
}

/// Reads exactly `n` bytes of `reader` and drops them.
async fn discard(reader: &mut (impl tokio::io::AsyncRead + Unpin), n: usize) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut sink = vec![0u8; n];
    reader.read_exact(&mut sink).await.map(|_| ())
}

/// Reads the PROXY header at the start of `stream`, if there is one, taking exactly its
/// bytes: `Ok(None)` when the connection does not begin with one (nothing is taken),
/// [`ProxyError::Untrusted`] when `peer` sent one but is not trusted. Call it after the
/// first byte arrived; a header that arrives in pieces is waited for (the caller bounds
/// the wait).
pub async fn read_proxy_header<S: HeaderSource>(
    stream: &mut S,
    peer: &Peer,
    trusted: &TrustedProxies,
) -> Result<Option<ProxyHeader>, ProxyError> {
    // Most connections begin with no header: tell from their first byte.
    if !stream
        .peekable()
        .first_byte()
        .await?
        .is_some_and(may_begin_proxy_header)
    {
        return Ok(None);
    }
    let mut buf = vec![0u8; MAX_PROXY_HEADER];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = stream.peekable().peek(&mut buf).await?;
        let head = &buf[..n];
        let (may, sure) = classify(head);
        if !may || n == 0 {
            return Ok(None);
        }
        if sure && !trusted.trusts(peer) {
            return Err(ProxyError::Untrusted);
        }
        let header = match HeaderResult::parse(head) {
            HeaderResult::V1(Ok(h)) => Some((h.header.len(), from_v1(&h))),
            HeaderResult::V2(Ok(h)) => Some((h.len(), from_v2(&h))),
            other if ppp::PartialResult::is_incomplete(&other) => None,
            HeaderResult::V1(Err(e)) => return Err(ProxyError::Malformed(e.to_string())),
            HeaderResult::V2(Err(e)) => return Err(ProxyError::Malformed(e.to_string())),
        };
        match header {
            Some((len, header)) => {
                stream.take(len).await?;
                return Ok(Some(header));
            }
            None if n == MAX_PROXY_HEADER => return Err(ProxyError::TooLong),
            None => {
                // The rest of a header sent in pieces: peek returns at once while any
                // byte waits, so pause between looks (rare: proxies send it whole).
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

fn from_v1(header: &ppp::v1::Header<'_>) -> ProxyHeader {
    let client = match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Unknown => None,
    };
    ProxyHeader {
        client,
        client_tls: false,
    }
}

fn from_v2(header: &ppp::v2::Header<'_>) -> ProxyHeader {
    if header.command == ppp::v2::Command::Local {
        return ProxyHeader {
            client: None,
            client_tls: false,
        };
    }
    let client = match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    };
    let client_tls = header.tlvs().flatten().any(|tlv| {
        tlv.kind == PP2_TYPE_SSL && tlv.value.first().is_some_and(|b| b & PP2_CLIENT_SSL != 0)
    });
    ProxyHeader { client, client_tls }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair: the client's end and the server's, with the client's address.
    async fn pair() -> (TcpStream, TcpStream, Peer) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, addr) = listener.accept().await.unwrap();
        (client, server, Peer::Tcp(addr))
    }

    fn trusting_loopback() -> TrustedProxies {
        TrustedProxies::parse(["127.0.0.1"]).unwrap()
    }

    fn v2(client: &str, tls: bool) -> Vec<u8> {
        let client: SocketAddr = client.parse().unwrap();
        let server: SocketAddr = if client.is_ipv4() {
            "198.51.100.1:6432".parse().unwrap()
        } else {
            "[2001:db8::1]:6432".parse().unwrap()
        };
        let builder = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, server),
        );
        let builder = if tls {
            // client bits (SSL), verify result 0, then a sub-TLV with the version.
            let mut ssl = vec![PP2_CLIENT_SSL, 0, 0, 0, 0];
            ssl.extend([0x21, 0, 7]);
            ssl.extend(b"TLSv1.3");
            builder.write_tlv(ppp::v2::Type::SSL, &ssl).unwrap()
        } else {
            builder
        };
        builder.build().unwrap()
    }

    #[tokio::test]
    async fn a_v1_header_names_the_client_and_leaves_the_rest() {
        let (mut client, mut server, peer) = pair().await;
        client
            .write_all(b"PROXY TCP4 203.0.113.9 198.51.100.1 50000 6432\r\nrest")
            .await
            .unwrap();
        let header = read_proxy_header(&mut server, &peer, &trusting_loopback())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(header.client, Some("203.0.113.9:50000".parse().unwrap()));
        assert!(!header.client_tls);
        let mut rest = [0u8; 4];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"rest", "only the header was taken");
    }

    #[tokio::test]
    async fn a_v2_header_in_two_pieces_with_the_clients_tls() {
        let (mut client, mut server, peer) = pair().await;
        let header = v2("[2001:db8::9]:40000", true);
        let (first, second) = header.split_at(10);
        client.write_all(first).await.unwrap();
        let reading = tokio::spawn(async move {
            let got = read_proxy_header(&mut server, &peer, &trusting_loopback()).await;
            (got, server)
        });
        tokio::task::yield_now().await;
        client.write_all(second).await.unwrap();
        client.write_all(b"\x16").await.unwrap();
        let (got, mut server) = reading.await.unwrap();
        let got = got.unwrap().unwrap();
        assert_eq!(got.client, Some("[2001:db8::9]:40000".parse().unwrap()));
        assert!(got.client_tls, "PP2_TYPE_SSL with the client bit");
        let mut next = [0u8; 1];
        server.read_exact(&mut next).await.unwrap();
        assert_eq!(next, [0x16]);
    }

    #[tokio::test]
    async fn a_header_from_an_untrusted_peer_is_refused_and_other_bytes_pass() {
        let (mut client, mut server, peer) = pair().await;
        client.write_all(&v2("203.0.113.9:1", false)).await.unwrap();
        let refused = read_proxy_header(&mut server, &peer, &TrustedProxies::none()).await;
        assert!(matches!(refused, Err(ProxyError::Untrusted)), "{refused:?}");

        let (mut client, mut server, peer) = pair().await;
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let none = read_proxy_header(&mut server, &peer, &trusting_loopback()).await;
        assert!(
            matches!(none, Ok(None)),
            "an HTTP/2 preface is not a header"
        );
    }

    #[tokio::test]
    async fn garbage_after_a_signature_is_malformed_not_a_panic() {
        let (mut client, mut server, peer) = pair().await;
        client
            .write_all(b"PROXY TCP4 not-an-address x 1 2\r\n")
            .await
            .unwrap();
        let got = read_proxy_header(&mut server, &peer, &trusting_loopback()).await;
        assert!(matches!(got, Err(ProxyError::Malformed(_))), "{got:?}");
    }
}
