//! One SCRAM-SHA-256(-PLUS) exchange on the server, free of I/O: client-first in,
//! server-first out, client-final in, server-final out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::messages::{CbindFlag, parse_client_final, parse_client_first};
use super::verifier::{ScramVerifier, hmac};
use super::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramError};

/// The only channel-binding type supported (RFC 5929), as PostgreSQL.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// How the exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The proof is right: send `server_final` (`v=...`).
    Verified {
        /// The server-final message.
        server_final: String,
    },
    /// Wrong password, or an unknown user's mock exchange.
    ProofMismatch,
}

/// The server's state between server-first and client-final.
#[derive(Debug)]
pub struct ScramExchange {
    verifier: ScramVerifier,
    genuine: bool,
    expected_cbind: Vec<u8>,
    nonce: String,
    auth_message_start: String,
    username: String,
}

impl ScramExchange {
    /// Reads the client-first message and answers with server-first.
    ///
    /// `mechanism` is what the client chose; `channel_binding` is the connection's
    /// `tls-server-end-point` data when it has TLS (SCRAM-SHA-256-PLUS is then offered).
    /// `verifier` is `None` for an unknown user: the exchange then runs with `mock` and
    /// can only end in [`Finish::ProofMismatch`].
    pub fn start(
        mechanism: &str,
        client_first: &[u8],
        channel_binding: Option<&[u8]>,
        verifier: Option<ScramVerifier>,
        mock: ScramVerifier,
        server_nonce: &str,
    ) -> Result<(Self, String), ScramError> {
        let first = parse_client_first(client_first)?;
        let plus_offered = channel_binding.is_some();
        let cb_data: &[u8] = match (mechanism, &first.cbind) {
            (SCRAM_SHA_256_PLUS, CbindFlag::Required(name)) if name == TLS_SERVER_END_POINT => {
                channel_binding.ok_or(ScramError::ChannelBinding(
                    "SCRAM-SHA-256-PLUS needs a TLS connection",
                ))?
            }
            (SCRAM_SHA_256_PLUS, CbindFlag::Required(_)) => {
                return Err(ScramError::ChannelBinding(
                    "unsupported channel-binding type (only tls-server-end-point)",
                ));
            }
            (SCRAM_SHA_256_PLUS, _) => {
                return Err(ScramError::ChannelBinding(
                    "SCRAM-SHA-256-PLUS chosen without requiring channel binding",
                ));
            }
            (SCRAM_SHA_256, CbindFlag::Required(_)) => {
                return Err(ScramError::ChannelBinding(
                    "channel binding required with a mechanism that has none",
                ));
            }
            // RFC 5802 section 6: the client supports channel binding but believes the
            // server does not, while the server offered it: a downgrade.
            (SCRAM_SHA_256, CbindFlag::SupportedNotUsed) if plus_offered => {
                return Err(ScramError::ChannelBinding(
                    "client claims the server does not support channel binding, but it was offered",
                ));
            }
            (SCRAM_SHA_256, _) => &[],
            _ => return Err(ScramError::UnsupportedMechanism),
        };
        // PostgreSQL refuses any authorization identity ("client uses authorization
        // identity, but it is not supported"), even one equal to the user: acting as
        // another user is the account stage's decision, never the client's claim.
        if first.authzid.is_some() {
            return Err(ScramError::Malformed(
                "authorization identity is not supported",
            ));
        }
        let mut expected_cbind = first.gs2_header.as_bytes().to_vec();
        expected_cbind.extend_from_slice(cb_data);

        let genuine = verifier.is_some();
        let verifier = verifier.unwrap_or(mock);
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let auth_message_start = format!("{},{server_first},", first.bare);
        Ok((
            Self {
                verifier,
                genuine,
                expected_cbind,
                nonce,
                auth_message_start,
                username: first.username,
            },
            server_first,
        ))
    }

    /// The user name from the client-first message (often empty with PostgreSQL clients).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Reads client-final and checks the proof in constant time.
    pub fn finish(&self, client_final: &[u8]) -> Result<Finish, ScramError> {
        let fin = parse_client_final(client_final)?;
        if !bool::from(fin.channel_binding.as_slice().ct_eq(&self.expected_cbind)) {
            return Err(ScramError::ChannelBinding(
                "channel-binding data does not match",
            ));
        }
        if fin.nonce != self.nonce {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let auth_message = format!("{}{}", self.auth_message_start, fin.without_proof);
        let client_signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key
            .iter_mut()
            .zip(fin.proof.iter().zip(client_signature.iter()))
        {
            *k = p ^ s;
        }
        let derived: [u8; 32] = Sha256::digest(client_key).into();
        let matches = bool::from(derived.ct_eq(&self.verifier.stored_key)) & self.genuine;
        if !matches {
            return Ok(Finish::ProofMismatch);
        }
        let server_signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(Finish::Verified {
            server_final: format!("v={}", B64.encode(server_signature)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3.
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn pencil() -> ScramVerifier {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramVerifier::compute("pencil", &salt, 4096)
    }

    fn mock() -> ScramVerifier {
        ScramVerifier::compute("mock", b"mock-salt-16byte", 4096)
    }

    #[test]
    fn any_authorization_identity_is_refused_even_the_user_itself() {
        for first in [
            "n,a=user,n=user,r=abc",
            "n,a=admin,n=user,r=abc",
            "n,a=user,n=,r=abc",
        ] {
            let refused = ScramExchange::start(
                SCRAM_SHA_256,
                first.as_bytes(),
                None,
                Some(pencil()),
                mock(),
                SERVER_NONCE,
            );
            assert!(
                matches!(refused, Err(ScramError::Malformed(m)) if m.contains("authorization identity")),
                "{first}"
            );
        }
    }

    #[test]
    fn rfc7677_test_vector() {
        let (ex, server_first) = ScramExchange::start(
            SCRAM_SHA_256,
            CLIENT_FIRST.as_bytes(),
            None,
            Some(pencil()),
            mock(),
            SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(server_first, SERVER_FIRST);
        assert_eq!(ex.username(), "user");
        assert_eq!(
            ex.finish(CLIENT_FINAL.as_bytes()).unwrap(),
            Finish::Verified {
                server_final: SERVER_FINAL.into()
            }
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_end_alike() {
        let wrong = ScramVerifier::compute("pencil2", &pencil().salt, 4096);
        let (ex, _) = ScramExchange::start(
            SCRAM_SHA_256,
            CLIENT_FIRST.as_bytes(),
            None,
            Some(wrong),
            mock(),
            SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(
            ex.finish(CLIENT_FINAL.as_bytes()).unwrap(),
            Finish::ProofMismatch
        );
        // An unknown user whose mock happens to be the real verifier still fails.
        let (ex, _) = ScramExchange::start(
            SCRAM_SHA_256,
            CLIENT_FIRST.as_bytes(),
            None,
            None,
            pencil(),
            SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(
            ex.finish(CLIENT_FINAL.as_bytes()).unwrap(),
            Finish::ProofMismatch
        );
    }

    #[test]
    fn channel_binding_rules() {
        let cb = b"server-cert-hash".as_slice();
        let start = |mech, first: &str, cb: Option<&[u8]>| {
            ScramExchange::start(mech, first.as_bytes(), cb, Some(pencil()), mock(), "srv")
        };
        // PLUS offered and the client says "y": a downgrade, refused.
        assert!(matches!(
            start(SCRAM_SHA_256, "y,,n=,r=abc", Some(cb)),
            Err(ScramError::ChannelBinding(_))
        ));
        // "y" without TLS is fine, as is "n" with TLS.
        assert!(start(SCRAM_SHA_256, "y,,n=,r=abc", None).is_ok());
        assert!(start(SCRAM_SHA_256, "n,,n=,r=abc", Some(cb)).is_ok());
        // PLUS needs TLS, the p flag, and tls-server-end-point.
        assert!(start(SCRAM_SHA_256_PLUS, "p=tls-server-end-point,,n=,r=abc", None).is_err());
        assert!(start(SCRAM_SHA_256_PLUS, "n,,n=,r=abc", Some(cb)).is_err());
        assert!(start(SCRAM_SHA_256_PLUS, "p=tls-unique,,n=,r=abc", Some(cb)).is_err());
        assert!(start(SCRAM_SHA_256, "p=tls-server-end-point,,n=,r=abc", Some(cb)).is_err());
        assert!(matches!(
            start("SCRAM-SHA-1", "n,,n=,r=abc", None),
            Err(ScramError::UnsupportedMechanism)
        ));
        let (ex, _) = start(
            SCRAM_SHA_256_PLUS,
            "p=tls-server-end-point,,n=,r=abc",
            Some(cb),
        )
        .unwrap();
        // The client must echo the header and the same certificate hash.
        let wrong_cb = format!(
            "c={},r=abcsrv,p={}",
            B64.encode(b"p=tls-server-end-point,,other"),
            B64.encode([0u8; 32])
        );
        assert!(matches!(
            ex.finish(wrong_cb.as_bytes()),
            Err(ScramError::ChannelBinding(_))
        ));
    }

    #[test]
    fn nonce_must_be_echoed() {
        let (ex, _) = ScramExchange::start(
            SCRAM_SHA_256,
            CLIENT_FIRST.as_bytes(),
            None,
            Some(pencil()),
            mock(),
            SERVER_NONCE,
        )
        .unwrap();
        let tampered = CLIENT_FINAL.replace("$k0,p=", "$k1,p=");
        assert!(ex.finish(tampered.as_bytes()).is_err());
    }

    #[test]
    fn verifier_round_trips_postgres_format() {
        let v = pencil();
        let text = v.to_string();
        assert!(
            text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{text}"
        );
        assert_eq!(ScramVerifier::parse(&text).unwrap(), v);
        assert!(!format!("{v:?}").contains(&B64.encode(v.stored_key)));
        for bad in [
            "",
            "md5abc",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$4096:c2FsdA==$a:b",
            "SCRAM-SHA-256$12:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "SCRAM-SHA-256$99999999999:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(ScramVerifier::parse(bad).is_err(), "{bad}");
        }
    }
}
