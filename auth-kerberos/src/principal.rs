//! Kerberos principal names: `primary[/instance]@REALM`, with `\` escapes.

use std::fmt;

/// The longest principal accepted.
pub const MAX_PRINCIPAL_LEN: usize = 1024;

/// A parsed principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The primary component (`alice`, `postgres`).
    pub primary: String,
    /// The instance (`admin`, `localhost`), if any.
    pub instance: Option<String>,
    /// The realm (`TEST.REALM`), if given.
    pub realm: Option<String>,
}

/// A principal that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Kerberos principal: {0}")]
pub struct PrincipalError(&'static str);

/// Splits `text` at unescaped `sep`, unescaping `\x` into `x`.
fn split_unescaped(text: &str, sep: char) -> Result<Vec<String>, PrincipalError> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => parts
                    .last_mut()
                    .map(|p| p.push(escaped))
                    .unwrap_or_default(),
                None => return Err(PrincipalError("ends with a lone backslash")),
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().map(|p| p.push(c)).unwrap_or_default(),
        }
    }
    Ok(parts)
}

impl Principal {
    /// Parses `primary/instance@REALM`.
    pub fn parse(text: &str) -> Result<Self, PrincipalError> {
        if text.is_empty() {
            return Err(PrincipalError("empty"));
        }
        if text.len() > MAX_PRINCIPAL_LEN {
            return Err(PrincipalError("longer than 1024 bytes"));
        }
        if text.chars().any(char::is_control) {
            return Err(PrincipalError("contains a control character"));
        }
        // The realm starts at the last unescaped `@`.
        let mut at = None;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '@' if !escaped => {
                    if at.is_some() {
                        return Err(PrincipalError("more than one unescaped `@`"));
                    }
                    at = Some(i);
                }
                _ => escaped = false,
            }
        }
        let (name, realm) = match at {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        if realm.is_some_and(str::is_empty) {
            return Err(PrincipalError("empty realm"));
        }
        let components = split_unescaped(name, '/')?;
        let (primary, instance) = match components.as_slice() {
            [p] => (p.clone(), None),
            [p, i] => (p.clone(), Some(i.clone())),
            _ => return Err(PrincipalError("more than two components")),
        };
        if primary.is_empty() || instance.as_deref() == Some("") {
            return Err(PrincipalError("empty component"));
        }
        Ok(Self {
            primary,
            instance,
            realm: realm.map(str::to_owned),
        })
    }

    /// The name without the realm (`alice`, `alice/admin`).
    pub fn without_realm(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}/{i}", self.primary),
            None => self.primary.clone(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_realm())?;
        if let Some(r) = &self.realm {
            write!(f, "@{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let p = Principal::parse("alice@TEST.REALM").unwrap();
        assert_eq!(
            (p.primary.as_str(), p.instance, p.realm.as_deref()),
            ("alice", None, Some("TEST.REALM"))
        );
        let p = Principal::parse("postgres/db.example.com@EXAMPLE.COM").unwrap();
        assert_eq!(p.instance.as_deref(), Some("db.example.com"));
        assert_eq!(p.to_string(), "postgres/db.example.com@EXAMPLE.COM");
        let p = Principal::parse("bob").unwrap();
        assert_eq!(
            (p.realm.clone(), p.without_realm()),
            (None, "bob".to_owned())
        );
        let p = Principal::parse(r"we\@ird\/name@R").unwrap();
        assert_eq!(p.primary, "we@ird/name");
    }

    #[test]
    fn malformed_principals_are_errors() {
        for bad in [
            "",
            "@R",
            "a@",
            "a@b@c",
            "a/b/c@R",
            "/x@R",
            "a/@R",
            "a\\",
            "a\u{0}b@R",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Principal::parse(&"a".repeat(2000)).is_err());
    }
}
