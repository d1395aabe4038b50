//! Which name in a client certificate is the client's identity.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// Which part of a client certificate names the client: PostgreSQL's `clientname`
/// (`CN`, the default, or `DN`), or a subject alternative name, as service meshes name
/// workloads (`uri`: a SPIFFE id such as `spiffe://example.org/billing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientName {
    /// The subject's common name (`alice`).
    #[default]
    CommonName,
    /// The whole subject in RFC 4514 form, most specific first, as PostgreSQL's
    /// `clientname=DN` writes it for the usual attributes (`CN=alice,O=Example`; see
    /// [`CertificateNames`] for the rest).
    DistinguishedName,
    /// The first `dNSName` subject alternative name.
    Dns,
    /// The first `rfc822Name` (e-mail) subject alternative name.
    Email,
    /// The first `uniformResourceIdentifier` subject alternative name.
    Uri,
}

impl ClientName {
    /// From its configuration spelling: `cn`, `dn`, `dns`, `email` or `uri` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "cn" => Self::CommonName,
            "dn" => Self::DistinguishedName,
            "dns" => Self::Dns,
            "email" => Self::Email,
            "uri" => Self::Uri,
            _ => return None,
        })
    }

    /// Its configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CommonName => "cn",
            Self::DistinguishedName => "dn",
            Self::Dns => "dns",
            Self::Email => "email",
            Self::Uri => "uri",
        }
    }
}

/// The names a certificate gives its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateNames {
    /// The subject, RFC 4514 (`CN=alice,O=Example`): the usual attributes by their short
    /// names, any other as `<dotted OID>=#<hex of the value's content>`.
    pub subject: String,
    /// The name [`ClientName`] chose; `None` when the certificate has no such name.
    pub identity: Option<String>,
}

impl CertificateNames {
    /// The subject and the `which` name of the DER certificate `der`.
    pub fn of(der: &[u8], which: ClientName) -> Result<Self, String> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("X.509: {e}"))?;
        let subject = rfc4514(cert.subject());
        let identity = match which {
            ClientName::CommonName => common_name(cert.subject()),
            ClientName::DistinguishedName => Some(subject.clone()),
            ClientName::Dns | ClientName::Email | ClientName::Uri => alt_name(&cert, which)?,
        };
        Ok(Self { subject, identity })
    }
}

/// The first common name, when it is a string (a CN that is not text names no one).
fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

fn alt_name(cert: &X509Certificate<'_>, which: ClientName) -> Result<Option<String>, String> {
    let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| format!("subject alternative name: {e}"))?
    else {
        return Ok(None);
    };
    Ok(san
        .value
        .general_names
        .iter()
        .find_map(|name| match (which, name) {
            (ClientName::Dns, GeneralName::DNSName(n))
            | (ClientName::Email, GeneralName::RFC822Name(n))
            | (ClientName::Uri, GeneralName::URI(n)) => Some((*n).to_owned()),
            _ => None,
        }))
}

/// The short names RFC 4514 (and OpenSSL, for `emailAddress`) print.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// A name in RFC 4514 form: relative names from the most specific (last) to the first,
/// joined by `,`; attributes of one relative name by `+`; special characters escaped.
/// This matches OpenSSL's RFC 2253 output for the usual attributes (CN, O, OU, C, L, ST,
/// STREET, DC, UID, emailAddress) in UTF8, Printable, IA5 or Numeric strings; any other
/// attribute or string type is written `<dotted OID>=#<hex of the value's content>`, so
/// map such names by what the audit log shows.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    match (short_name(&oid), attr.as_str()) {
                        (Some(short), Ok(value)) => format!("{short}={}", escape(value)),
                        _ => format!("{oid}=#{}", hex::encode(attr.attr_value().as_bytes())),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 4514 section 2.4: `"+,;<>\` anywhere, `#` or space first, space last.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn with_subject(parts: &[(rcgen::DnType, &str)]) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in parts {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params
    }

    #[test]
    fn the_subject_is_written_most_specific_first_with_escapes() {
        let der = cert(with_subject(&[
            (rcgen::DnType::CountryName, "DE"),
            (rcgen::DnType::OrganizationName, "Example, Inc."),
            (rcgen::DnType::CommonName, "alice"),
        ]));
        let names = CertificateNames::of(&der, ClientName::DistinguishedName).unwrap();
        assert_eq!(names.subject, r"CN=alice,O=Example\, Inc.,C=DE");
        assert_eq!(names.identity.as_deref(), Some(names.subject.as_str()));
        let cn = CertificateNames::of(&der, ClientName::CommonName).unwrap();
        assert_eq!(cn.identity.as_deref(), Some("alice"));
    }

    #[test]
    fn alternative_names_by_kind_and_none_when_absent() {
        let mut params = with_subject(&[(rcgen::DnType::CommonName, "billing")]);
        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("billing.internal".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example.org/billing".try_into().unwrap()),
        ];
        let der = cert(params);
        let of = |which| CertificateNames::of(&der, which).unwrap().identity;
        assert_eq!(of(ClientName::Dns).as_deref(), Some("billing.internal"));
        assert_eq!(
            of(ClientName::Uri).as_deref(),
            Some("spiffe://example.org/billing")
        );
        assert_eq!(of(ClientName::Email), None);
        let no_cn = cert(with_subject(&[(rcgen::DnType::OrganizationName, "x")]));
        assert_eq!(
            CertificateNames::of(&no_cn, ClientName::CommonName)
                .unwrap()
                .identity,
            None
        );
    }

    #[test]
    fn escapes_follow_rfc_4514() {
        assert_eq!(escape("#a b "), r"\#a b\ ");
        assert_eq!(escape(" x"), r"\ x");
        assert_eq!(escape(r#"a+b;c<d>"e\"#), r#"a\+b\;c\<d\>\"e\\"#);
        assert_eq!(escape(""), "");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CertificateNames::of(b"not a certificate", ClientName::CommonName).is_err());
        assert_eq!(ClientName::parse("DN"), Some(ClientName::DistinguishedName));
        assert_eq!(ClientName::parse("subject"), None);
    }
}
