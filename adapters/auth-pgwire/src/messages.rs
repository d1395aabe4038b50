//! Client messages the adapter decodes itself, because pgwire 0.42's decoders panic on
//! some inputs: `PasswordMessageFamily::into_sasl_initial_response` reads the data length
//! without checking that four bytes remain and splits off that many bytes whatever the
//! length says (a negative or oversized length panics the connection task; found by the
//! `pgwire_frames` fuzz target).

/// A SASLInitialResponse body: the mechanism name, then the initial response (`None` when
/// its length is -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitial<'a> {
    /// The mechanism the client chose.
    pub mechanism: &'a str,
    /// The initial response, if any.
    pub data: Option<&'a [u8]>,
}

/// Parses a SASLInitialResponse body as PostgreSQL does: a NUL-terminated mechanism name,
/// a 4-byte length (-1 for no data) and exactly that many bytes, nothing after them.
pub fn sasl_initial_response(body: &[u8]) -> Result<SaslInitial<'_>, &'static str> {
    let nul = body
        .iter()
        .position(|b| *b == 0)
        .ok_or("SASLInitialResponse without a mechanism name")?;
    let mechanism = std::str::from_utf8(&body[..nul]).map_err(|_| "mechanism name is not UTF-8")?;
    let rest = &body[nul + 1..];
    let (len, data) = rest
        .split_first_chunk::<4>()
        .ok_or("SASLInitialResponse without a length")?;
    let data = match i32::from_be_bytes(*len) {
        -1 if data.is_empty() => None,
        n if usize::try_from(n).is_ok_and(|n| n == data.len()) => Some(data),
        _ => return Err("SASLInitialResponse length does not match its data"),
    };
    Ok(SaslInitial { mechanism, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_bodies_parse() {
        let body = b"SCRAM-SHA-256\0\0\0\0\x03abc";
        assert_eq!(
            sasl_initial_response(body),
            Ok(SaslInitial {
                mechanism: "SCRAM-SHA-256",
                data: Some(b"abc".as_slice())
            })
        );
        assert_eq!(
            sasl_initial_response(b"OAUTHBEARER\0\xff\xff\xff\xff")
                .unwrap()
                .data,
            None
        );
        assert_eq!(
            sasl_initial_response(b"X\0\0\0\0\0").unwrap().data,
            Some(b"".as_slice())
        );
    }

    #[test]
    fn what_panicked_pgwire_is_an_error() {
        // The fuzz crash: a GSS token sent where SASL was expected.
        let crash = [
            96, 130, 2, 0, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9, 6, 9,
        ];
        assert!(sasl_initial_response(&crash).is_err());
        for body in [
            b"SCRAM-SHA-256\0".as_slice(),
            b"SCRAM-SHA-256\0\0\0",
            b"SCRAM-SHA-256\0\xff\xff\xff\xfe",
            b"SCRAM-SHA-256\0\x7f\xff\xff\xffabc",
            b"SCRAM-SHA-256\0\0\0\0\x02abc",
            b"SCRAM-SHA-256\0\xff\xff\xff\xffextra",
            b"\xff\0\0\0\0\0",
        ] {
            assert!(sasl_initial_response(body).is_err(), "{body:?}");
        }
    }
}
