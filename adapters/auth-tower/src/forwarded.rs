//! The client behind trusted HTTP proxies: `Forwarded` (RFC 7239), `X-Forwarded-For` and
//! `X-Forwarded-Proto`, believed only from a proxy the listener trusts, the client being
//! the right-most address of the chain that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use auth_core::{ConnectionInfo, Peer, Proxied};
use auth_listen::ConnectionFacts;
use http::HeaderMap;

/// One hop a forwarding header names: its address (`None` for `unknown` or an
/// obfuscated name) and, when said, whether it spoke TLS to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hop {
    addr: Option<SocketAddr>,
    https: Option<bool>,
}

/// `connection` as seen through the forwarding headers of `headers`, when the peer that
/// sent them is one of `facts`' trusted proxies; otherwise `connection` unchanged (the
/// headers are ignored, and the audit's source is the sender).
pub fn behind_proxies(
    connection: ConnectionInfo,
    headers: &HeaderMap,
    facts: &ConnectionFacts,
) -> ConnectionInfo {
    let trusted = facts.trusted_proxies();
    if trusted.is_empty() || !trusted.trusts(&connection.peer) {
        return connection;
    }
    let hops = forwarded(headers).unwrap_or_else(|| x_forwarded(headers));
    if hops.is_empty() {
        return connection;
    }
    // The right-most hop that is not a trusted proxy is the client; all trusted, the
    // left-most is.
    let client = hops
        .iter()
        .rev()
        .find(|hop| !hop.addr.is_some_and(|a| trusted.trusts_ip(a.ip())))
        .or_else(|| hops.first())
        .copied();
    let Some(client) = client else {
        return connection;
    };
    let proxy = facts.sender().clone();
    let mut connection = connection;
    connection.peer = client.addr.map_or(Peer::Unknown, Peer::Tcp);
    connection.proxied = Some(Proxied {
        proxy,
        client_tls: client.https.unwrap_or(false),
    });
    connection
}

/// The hops of every `Forwarded` header, in order; `None` without one.
fn forwarded(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else {
            hops.push(Hop {
                addr: None,
                https: None,
            });
            continue;
        };
        for element in split_outside_quotes(value, ',') {
            let mut hop = Hop {
                addr: None,
                https: None,
            };
            for pair in split_outside_quotes(element, ';') {
                let Some((key, val)) = pair.split_once('=') else {
                    continue;
                };
                let val = val.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.addr = node(val),
                    "proto" => hop.https = Some(val.eq_ignore_ascii_case("https")),
                    _ => {}
                }
            }
            hops.push(hop);
        }
    }
    Some(hops)
}

/// The hops of `X-Forwarded-For`, with `X-Forwarded-Proto` on the client's (a single
/// value is the client's; of several, the left-most, the first proxy's).
fn x_forwarded(headers: &HeaderMap) -> Vec<Hop> {
    let list = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let https = list("x-forwarded-proto")
        .first()
        .map(|p| p.eq_ignore_ascii_case("https"));
    list("x-forwarded-for")
        .iter()
        .map(|a| Hop {
            addr: node(a),
            https,
        })
        .collect()
}

/// A node (`192.0.2.60`, `192.0.2.60:47011`, `[2001:db8::1]:4711`, `2001:db8::1`);
/// `None` for `unknown`, obfuscated names and anything else.
fn node(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

/// `text` split at `sep` where it is not inside double quotes.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::Protocol;
    use auth_listen::TrustedProxies;

    fn facts(sender: &str, trusted: &[&str]) -> ConnectionFacts {
        ConnectionFacts::unplaced(Peer::Tcp(sender.parse().unwrap()), None).with_trusted_proxies(
            std::sync::Arc::new(TrustedProxies::parse(trusted.iter().copied()).unwrap()),
        )
    }

    fn seen(sender: &str, trusted: &[&str], headers: &[(&str, &str)]) -> ConnectionInfo {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let facts = facts(sender, trusted);
        let connection = ConnectionInfo::new(Protocol::Http, facts.peer().clone());
        behind_proxies(connection, &map, &facts)
    }

    fn ip(c: &ConnectionInfo) -> Option<IpAddr> {
        c.peer.ip()
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let c = seen(
            "10.0.0.2:5000",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.0.0.1")],
        );
        assert_eq!(
            ip(&c),
            Some("198.51.100.7".parse().unwrap()),
            "not the spoofed left-most"
        );
        assert!(!c.is_localhost() && !c.is_encrypted());
        assert_eq!(
            c.proxied.unwrap().proxy,
            Peer::Tcp("10.0.0.2:5000".parse().unwrap())
        );
    }

    #[test]
    fn headers_from_an_untrusted_sender_are_ignored() {
        let c = seen(
            "192.0.2.1:5000",
            &["10.0.0.0/8"],
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(ip(&c), Some("192.0.2.1".parse().unwrap()));
        assert!(c.proxied.is_none() && !c.is_encrypted());
    }

    #[test]
    fn forwarded_wins_and_says_the_protocol() {
        let c = seen(
            "127.0.0.1:5000",
            &["127.0.0.1"],
            &[
                ("forwarded", "for=\"[2001:db8::7]:4711\";proto=https"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        );
        assert_eq!(ip(&c), Some("2001:db8::7".parse().unwrap()));
        assert!(c.is_encrypted(), "proto=https to the proxy");
        assert!(!c.is_localhost(), "a proxied client is never localhost");
        let unknown = seen(
            "127.0.0.1:5000",
            &["127.0.0.1"],
            &[("forwarded", "for=unknown")],
        );
        assert_eq!(unknown.peer, Peer::Unknown);
    }

    #[test]
    fn a_proxy_talking_for_itself_stays_the_peer() {
        let c = seen("127.0.0.1:5000", &["127.0.0.1"], &[]);
        assert!(c.proxied.is_none(), "no forwarding header");
        assert!(c.is_localhost());
    }
}
