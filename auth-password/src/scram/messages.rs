//! Parsing the client's SCRAM messages (RFC 5802 section 7), strictly: every malformed
//! or oversized message is an error, never a panic.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::ScramError;

/// The longest client message accepted.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The client's channel-binding flag (the gs2-cbind-flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbindFlag {
    /// `n`: the client does not support channel binding.
    NotSupported,
    /// `y`: the client supports it but thinks the server does not.
    SupportedNotUsed,
    /// `p=<name>`: the client requires channel binding of this type.
    Required(String),
}

/// A parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    /// The channel-binding flag.
    pub cbind: CbindFlag,
    /// The authorization identity, if given.
    pub authzid: Option<String>,
    /// The user name (may be empty: PostgreSQL clients send the user at startup).
    pub username: String,
    /// The client nonce.
    pub nonce: &'a str,
    /// The gs2 header, exactly as sent (`n,,`), echoed in the client-final `c=`.
    pub gs2_header: &'a str,
    /// client-first-message-bare, part of the AuthMessage.
    pub bare: &'a str,
}

/// A parsed client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    /// The decoded `c=` attribute: gs2 header plus channel-binding data.
    pub channel_binding: Vec<u8>,
    /// The combined nonce.
    pub nonce: &'a str,
    /// The client proof.
    pub proof: [u8; 32],
    /// client-final-message-without-proof, part of the AuthMessage.
    pub without_proof: &'a str,
}

fn text(msg: &[u8]) -> Result<&str, ScramError> {
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(ScramError::Malformed("message longer than 4096 bytes"));
    }
    std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("message is not UTF-8"))
}

/// Decodes a saslname: `=2C` is `,`, `=3D` is `=`, any other `=` is an error.
fn saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3);
        match esc {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad `=` escape in a name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.chars().any(char::is_control) {
        return Err(ScramError::Malformed("control character in a name"));
    }
    Ok(out)
}

fn nonce(value: &str) -> Result<&str, ScramError> {
    // printable = %x21-2B / %x2D-7E (no comma)
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed(
            "nonce is empty or not printable ASCII",
        ));
    }
    Ok(value)
}

/// Parses a client-first message.
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    let msg = text(msg)?;
    let mut parts = msg.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts
        .next()
        .ok_or(ScramError::Malformed("missing gs2 header"))?;
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("missing gs2 header"))?;
    let gs2_header = &msg[..flag.len() + authzid.len() + 2];
    let cbind = match flag {
        "n" => CbindFlag::NotSupported,
        "y" => CbindFlag::SupportedNotUsed,
        f => match f.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                CbindFlag::Required(name.to_owned())
            }
            _ => return Err(ScramError::Malformed("bad channel-binding flag")),
        },
    };
    let authzid = match authzid {
        "" => None,
        a => Some(saslname(
            a.strip_prefix("a=")
                .ok_or(ScramError::Malformed("bad authzid"))?,
        )?),
    };
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(ScramError::Malformed(
            "mandatory extensions are not supported",
        ));
    }
    let username = saslname(
        first
            .strip_prefix("n=")
            .ok_or(ScramError::Malformed("missing user name attribute"))?,
    )?;
    let nonce = nonce(
        attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("missing nonce attribute"))?,
    )?;
    for ext in attrs {
        let valid =
            ext.len() >= 2 && ext.as_bytes()[0].is_ascii_alphabetic() && ext.as_bytes()[1] == b'=';
        if !valid {
            return Err(ScramError::Malformed("bad attribute in client-first"));
        }
    }
    Ok(ClientFirst {
        cbind,
        authzid,
        username,
        nonce,
        gs2_header,
        bare,
    })
}

/// Parses a client-final message.
pub fn parse_client_final(msg: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
    let msg = text(msg)?;
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("missing proof"))?;
    let proof: [u8; 32] = B64
        .decode(proof)
        .ok()
        .and_then(|p| <[u8; 32]>::try_from(p).ok())
        .ok_or(ScramError::Malformed("proof is not 32 bytes of base64"))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = B64
        .decode(
            attrs
                .next()
                .and_then(|a| a.strip_prefix("c="))
                .ok_or(ScramError::Malformed("missing channel-binding attribute"))?,
        )
        .map_err(|_| ScramError::Malformed("channel-binding attribute is not base64"))?;
    let nonce = nonce(
        attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("missing nonce attribute"))?,
    )?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_variants() {
        let m = parse_client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(m.cbind, CbindFlag::NotSupported);
        assert_eq!(m.username, "user");
        assert_eq!(m.gs2_header, "n,,");
        assert_eq!(m.bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let m = parse_client_first(b"p=tls-server-end-point,a=adm=2Cin,n=,r=abc,x=ext").unwrap();
        assert_eq!(m.cbind, CbindFlag::Required("tls-server-end-point".into()));
        assert_eq!(m.authzid.as_deref(), Some("adm,in"));
        assert_eq!(m.username, "");
        assert_eq!(m.gs2_header, "p=tls-server-end-point,a=adm=2Cin,");
        let m = parse_client_first(b"y,,n=a=3Db,r=x").unwrap();
        assert_eq!(
            (m.cbind, m.username.as_str()),
            (CbindFlag::SupportedNotUsed, "a=b")
        );
    }

    #[test]
    fn malformed_client_first_messages_are_errors() {
        let long = format!("n,,n=u,r={}", "a".repeat(5000));
        for bad in [
            "".as_bytes(),
            b"n",
            b"n,",
            b"x,,n=u,r=abc",
            b"p=,,n=u,r=abc",
            b"p=bad name,,n=u,r=abc",
            b"n,b=x,n=u,r=abc",
            b"n,,m=ext,n=u,r=abc",
            b"n,,r=abc",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=u,r=a,b",
            b"n,,n=a=2X,r=abc",
            b"n,,n=u\x01,r=abc",
            b"n,,n=u,r=\xff",
            long.as_bytes(),
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn client_final_parsing() {
        let m = parse_client_final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        )
        .unwrap();
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(
            m.nonce,
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        assert!(m.without_proof.ends_with("$k0"));
        for bad in [
            "".as_bytes(),
            b"c=biws,r=abc",
            b"c=biws,r=abc,p=short",
            b"c=!!,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ] {
            assert!(
                parse_client_final(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
