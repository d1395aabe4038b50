//! A strict JWS compact-serialization parser: size limit, exactly three base64url parts
//! without padding, JSON objects with no duplicate members, `crit` refused.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// The longest token accepted.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token could not be read (before any signature check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed token: {0}")]
pub struct TokenError(pub &'static str);

/// A JSON object whose member names are unique.
pub type Object = BTreeMap<String, Value>;

struct UniqueObject;

impl<'de> Visitor<'de> for UniqueObject {
    type Value = Object;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let mut out = Object::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            if out.insert(k, v).is_some() {
                return Err(serde::de::Error::custom("duplicate member"));
            }
        }
        Ok(out)
    }
}

fn object(bytes: &[u8]) -> Result<Object, TokenError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let obj = de
        .deserialize_map(UniqueObject)
        .map_err(|_| TokenError("a part is not a JSON object with unique members"))?;
    de.end()
        .map_err(|_| TokenError("trailing data after a JSON object"))?;
    Ok(obj)
}

fn part(text: &str) -> Result<Vec<u8>, TokenError> {
    if text.is_empty() || text.contains('=') {
        return Err(TokenError("empty or padded base64url"));
    }
    B64URL.decode(text).map_err(|_| TokenError("bad base64url"))
}

/// The parts of a token, decoded but not verified.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The protected header.
    pub header: Object,
    /// The claims.
    pub claims: Object,
    /// `base64(header) "." base64(claims)`, what the signature covers.
    pub signing_input: &'a [u8],
    /// The signature.
    pub signature: Vec<u8>,
}

/// Reads a compact JWS.
pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError("not three dot-separated parts"));
    };
    let header = object(&part(h)?)?;
    let claims = object(&part(c)?)?;
    let signature = part(s)?;
    if header.contains_key("crit") {
        // RFC 7515: a recipient must refuse critical extensions it does not understand,
        // and it understands none.
        return Err(TokenError("critical header extensions are not supported"));
    }
    Ok(Parsed {
        header,
        claims,
        signing_input: &token.as_bytes()[..h.len() + 1 + c.len()],
        signature,
    })
}

/// A string member.
pub fn string<'a>(o: &'a Object, name: &str) -> Option<&'a str> {
    o.get(name).and_then(Value::as_str)
}

/// A NumericDate member in whole seconds.
pub fn seconds(o: &Object, name: &str) -> Result<Option<i64>, TokenError> {
    match o.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(TokenError("a time claim is not a number")),
    }
}

/// A member that is a string or an array of strings (`aud`, `scp`, `roles`).
pub fn strings(o: &Object, name: &str) -> Result<Vec<String>, TokenError> {
    match o.get(name) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or(TokenError("a list claim holds a non-string"))
            })
            .collect(),
        Some(_) => Err(TokenError("a list claim is neither a string nor an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        B64URL.encode(v)
    }

    #[test]
    fn strictness() {
        let good = format!(
            "{}.{}.{}",
            enc(r#"{"alg":"ES256"}"#),
            enc(r#"{"sub":"a"}"#),
            enc("sig")
        );
        let p = parse(&good).unwrap();
        assert_eq!(string(&p.header, "alg"), Some("ES256"));
        assert_eq!(p.signature, b"sig");
        for bad in [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!(
                "{}.{}.{}",
                enc(r#"{"alg":"ES256","alg":"none"}"#),
                enc("{}"),
                enc("s")
            ),
            format!(
                "{}.{}.{}",
                enc(r#"{"alg":"ES256"}"#),
                enc(r#"{"sub":"a","sub":"b"}"#),
                enc("s")
            ),
            format!(
                "{}.{}.{}",
                enc(r#"{"alg":"ES256","crit":["exp"]}"#),
                enc("{}"),
                enc("s")
            ),
            format!("{}.{}.{}", enc(r#"["not","object"]"#), enc("{}"), enc("s")),
            format!("{}.{}.{}", enc(r#"{"alg":"ES256"} x"#), enc("{}"), enc("s")),
            format!("{}=.{}.{}", enc(r#"{"alg":"ES256"}"#), enc("{}"), enc("s")),
            format!("{}.{}.{}", "!!!", enc("{}"), enc("s")),
            format!("{}.{}.", enc(r#"{"alg":"ES256"}"#), enc("{}")),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(parse(&bad).is_err(), "{bad:.60}");
        }
    }

    #[test]
    fn claim_shapes() {
        let o: Object =
            serde_json::from_str(r#"{"aud":"x","scp":["a","b"],"exp":1.9,"n":"no"}"#).unwrap();
        assert_eq!(strings(&o, "aud").unwrap(), ["x"]);
        assert_eq!(strings(&o, "scp").unwrap(), ["a", "b"]);
        assert_eq!(seconds(&o, "exp").unwrap(), Some(1));
        assert!(seconds(&o, "n").is_err());
        assert!(strings(&o, "exp").is_err());
    }
}
