//! A strict JWS compact-serialization parser: size limit, exactly three base64url parts
//! without padding, JSON objects with no duplicate members, `crit` refused.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The longest token accepted.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token could not be read (before any signature check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed token: {0}")]
pub struct TokenError(pub &'static str);

/// A JSON object whose member names are unique. Members stay unparsed (borrowed from the
/// decoded part) until read, so a claim nobody asks for costs no allocation.
pub type Object<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// A JSON string, borrowed when it holds no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct UniqueObject;

impl<'de> Visitor<'de> for UniqueObject {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut out = Object::new();
        while let Some((k, v)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
            if out.insert(k.0, v).is_some() {
                return Err(serde::de::Error::custom("duplicate member"));
            }
        }
        Ok(out)
    }
}

/// Reads a decoded part as an object with unique members.
pub fn object(bytes: &[u8]) -> Result<Object<'_>, TokenError> {
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

/// The parts of a token, base64-decoded but neither interpreted nor verified; read the
/// header and claims with [`Decoded::header`] and [`Decoded::claims`].
#[derive(Debug)]
pub struct Decoded<'a> {
    header: Vec<u8>,
    claims: Vec<u8>,
    /// `base64(header) "." base64(claims)`, what the signature covers.
    pub signing_input: &'a [u8],
    /// The signature.
    pub signature: Vec<u8>,
}

impl Decoded<'_> {
    /// The protected header; refuses critical extensions.
    pub fn header(&self) -> Result<Object<'_>, TokenError> {
        let header = object(&self.header)?;
        if header.contains_key("crit") {
            // RFC 7515: a recipient must refuse critical extensions it does not understand,
            // and it understands none.
            return Err(TokenError("critical header extensions are not supported"));
        }
        Ok(header)
    }

    /// The claims.
    pub fn claims(&self) -> Result<Object<'_>, TokenError> {
        object(&self.claims)
    }
}

/// Splits and decodes a compact JWS.
pub fn decode(token: &str) -> Result<Decoded<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError("not three dot-separated parts"));
    };
    Ok(Decoded {
        header: part(h)?,
        claims: part(c)?,
        signature: part(s)?,
        signing_input: &token.as_bytes()[..h.len() + 1 + c.len()],
    })
}

/// A string member; `None` when absent or not a string.
pub fn string<'a>(o: &Object<'a>, name: &str) -> Option<Cow<'a, str>> {
    let raw: &'a RawValue = o.get(name)?;
    serde_json::from_str::<Text<'a>>(raw.get())
        .ok()
        .map(|t| t.0)
}

/// A NumericDate member in whole seconds.
pub fn seconds(o: &Object<'_>, name: &str) -> Result<Option<i64>, TokenError> {
    let Some(raw) = o.get(name) else {
        return Ok(None);
    };
    let not_a_number = TokenError("a time claim is not a number");
    if let Ok(i) = serde_json::from_str::<i64>(raw.get()) {
        return Ok(Some(i));
    }
    serde_json::from_str::<f64>(raw.get())
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| Some(f.floor() as i64))
        .ok_or(not_a_number)
}

/// A member that is a string or an array of strings (`aud`, `scp`, `roles`).
pub fn strings(o: &Object<'_>, name: &str) -> Result<Vec<String>, TokenError> {
    let Some(raw) = o.get(name) else {
        return Ok(Vec::new());
    };
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match serde_json::from_str::<OneOrMany>(raw.get()) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => match raw.get().trim_start().as_bytes().first() {
            Some(b'[') => Err(TokenError("a list claim holds a non-string")),
            _ => Err(TokenError("a list claim is neither a string nor an array")),
        },
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
        let d = decode(&good).unwrap();
        assert_eq!(
            string(&d.header().unwrap(), "alg").as_deref(),
            Some("ES256")
        );
        assert_eq!(d.signature, b"sig");
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
            let read = decode(&bad).and_then(|d| d.header().and(d.claims()).map(|_| ()));
            assert!(read.is_err(), "{bad:.60}");
        }
    }

    #[test]
    fn claim_shapes() {
        let json = r#"{"aud":"x","scp":["a","b"],"exp":1.9,"n":"no","e":"a\u0062","i":7}"#;
        let o = object(json.as_bytes()).unwrap();
        assert_eq!(string(&o, "e").as_deref(), Some("ab"));
        assert_eq!(string(&o, "i"), None);
        assert_eq!(seconds(&o, "i").unwrap(), Some(7));
        assert_eq!(strings(&o, "aud").unwrap(), ["x"]);
        assert_eq!(strings(&o, "scp").unwrap(), ["a", "b"]);
        assert_eq!(seconds(&o, "exp").unwrap(), Some(1));
        assert!(seconds(&o, "n").is_err());
        assert!(strings(&o, "exp").is_err());
    }
}
