//! A rule as a file writes it, in pg_hba's vocabulary.

use std::marker::PhantomData;

use serde::de::{self, Deserializer, IntoDeserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::Protocol;
use crate::certificate::Requirement;
use crate::policy::{AddressMatch, ConnectionType, NameMatch, ProtocolMatch, Rule, Target};

/// One rule, like a pg_hba.conf line; `M` is the method vocabulary of the program that
/// composes the file (its methods are its own: auth-core knows no backend).
///
/// ```
/// use auth_core::policy::Target;
/// use auth_core::settings::RuleSpec;
///
/// let spec: RuleSpec<String> = toml::from_str(
///     "name = \"office\"\ntype = \"hostssl\"\naddresses = [\"10.0.0.0/8\"]\nmethod = \"scram\"",
/// ).unwrap();
/// let rule = spec.to_rule(Target::Reject).unwrap();
/// assert_eq!(rule.name, "office");
/// assert_eq!(spec.method, ["scram"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, bound(deserialize = "M: Deserialize<'de>"))]
pub struct RuleSpec<M> {
    /// A name for the audit log.
    pub name: String,
    /// `host` (default), `hostssl`, `hostnossl`, `local` or `all` (`hostgss` is refused:
    /// nothing here encrypts with GSSAPI).
    #[serde(default = "host", rename = "type")]
    pub kind: String,
    /// User names; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Database names; empty means all; `sameuser` matches the user's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// `all` (default), `localhost`, or CIDR networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// How to authenticate: one method or a list, tried in order.
    #[serde(deserialize_with = "one_or_many")]
    pub method: Vec<M>,
    /// The front doors the rule guards: `pgwire`, `http`, `grpc`; empty (the default)
    /// means all three, so one rule holds on every door.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// The identity map whose entries say which identities may act as which users under
    /// this rule (PostgreSQL's `map=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// Also require a client certificate (PostgreSQL's `clientcert`): `verify-ca` or
    /// `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
}

fn host() -> String {
    "host".into()
}

impl<M> RuleSpec<M> {
    /// The protocols the rule names (all three when it names none).
    pub fn protocol_match(&self) -> Result<ProtocolMatch, Invalid> {
        if self.protocols.is_empty() {
            return Ok(ProtocolMatch::All);
        }
        self.protocols
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Protocol::parse(p).ok_or_else(|| {
                    Invalid::new(format!("protocols[{i}]"), format!("unknown protocol `{p}`"))
                        .hint("use pgwire, http or grpc")
                })
            })
            .collect::<Result<_, _>>()
            .map(ProtocolMatch::Only)
    }

    /// `client_certificate`, checked.
    pub fn requirement(&self) -> Result<Option<Requirement>, Invalid> {
        let Some(text) = &self.client_certificate else {
            return Ok(None);
        };
        Requirement::parse(text).map(Some).ok_or_else(|| {
            Invalid::new(
                "client_certificate",
                format!("client_certificate = \"{text}\""),
            )
            .hint("use \"verify-ca\" or \"verify-full\"")
        })
    }

    /// `type`, checked.
    pub fn connection(&self) -> Result<ConnectionType, Invalid> {
        Ok(match self.kind.as_str() {
            "host" => ConnectionType::Host,
            "hostssl" => ConnectionType::HostSsl,
            "hostnossl" => ConnectionType::HostNoSsl,
            "local" => ConnectionType::Local,
            "all" => ConnectionType::Any,
            "hostgss" => {
                return Err(Invalid::new(
                    "type",
                    "type `hostgss` matches GSS-encrypted connections, which this server does \
                     not offer (it answers GSSENCRequest with N)",
                )
                .hint("for Kerberos use type = \"host\" or \"hostssl\" with method = \"gss\""));
            }
            other => {
                return Err(Invalid::new("type", format!("unknown type `{other}`"))
                    .hint("use host, hostssl, hostnossl, local or all"));
            }
        })
    }

    /// The auth-core rule with `target`.
    pub fn to_rule(&self, target: Target) -> Result<Rule, Invalid> {
        let names = |v: &Vec<String>| {
            if v.is_empty() {
                NameMatch::All
            } else {
                NameMatch::Names(v.clone())
            }
        };
        let databases = if self.databases == ["sameuser"] {
            NameMatch::SameUser
        } else {
            names(&self.databases)
        };
        let addresses = match self.addresses.as_slice() {
            [] => AddressMatch::All,
            [one] if one == "all" => AddressMatch::All,
            [one] if one == "localhost" => AddressMatch::Localhost,
            nets => AddressMatch::Networks(
                nets.iter()
                    .enumerate()
                    .map(|(i, n)| {
                        n.parse().map_err(|_| {
                            Invalid::new(
                                format!("addresses[{i}]"),
                                format!("`{n}` is not a CIDR network like 10.0.0.0/8"),
                            )
                            .hint(
                                "write networks as address/bits, or \"all\" or \"localhost\" alone",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Rule::new(self.name.clone(), target)
            .with_protocols(self.protocol_match()?)
            .with_connection(self.connection()?)
            .with_users(names(&self.users))
            .with_databases(databases)
            .with_addresses(addresses))
    }
}

/// `method = "scram"` or `method = ["bearer", "password"]`.
fn one_or_many<'de, D: Deserializer<'de>, M: Deserialize<'de>>(d: D) -> Result<Vec<M>, D::Error> {
    struct OneOrMany<M>(PhantomData<M>);

    impl<'de, M: Deserialize<'de>> Visitor<'de> for OneOrMany<M> {
        type Value = Vec<M>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a method or a list of methods")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<M>, E> {
            M::deserialize(v.into_deserializer()).map(|m| vec![m])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<M>, A::Error> {
            let mut methods = Vec::new();
            while let Some(m) = seq.next_element()? {
                methods.push(m);
            }
            Ok(methods)
        }
    }

    d.deserialize_any(OneOrMany(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(rename_all = "lowercase")]
    enum M {
        Scram,
        Peer,
    }

    fn spec(text: &str) -> Result<RuleSpec<M>, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn one_method_or_a_list_and_the_vocabulary_is_the_callers() {
        assert_eq!(
            spec("name = \"a\"\nmethod = \"scram\"").unwrap().method,
            [M::Scram]
        );
        let both = spec("name = \"a\"\nmethod = [\"peer\", \"scram\"]").unwrap();
        assert_eq!(both.method, [M::Peer, M::Scram]);
        let err = spec("name = \"a\"\nmethod = \"sso\"").unwrap_err();
        assert!(err.message().contains("unknown variant `sso`"), "{err}");
        let back: RuleSpec<M> = toml::from_str(&toml::to_string(&both).unwrap()).unwrap();
        assert_eq!(back, both);
    }

    #[test]
    fn pg_hba_words_are_checked_with_the_key_at_fault() {
        let bad = |extra: &str| {
            spec(&format!("name = \"a\"\nmethod = \"scram\"\n{extra}"))
                .unwrap()
                .to_rule(Target::Reject)
                .unwrap_err()
        };
        assert_eq!(bad("type = \"hots\"").key, "type");
        assert!(bad("type = \"hostgss\"").message.contains("GSS-encrypted"));
        assert_eq!(
            bad("addresses = [\"10.0.0.0/8\", \"x\"]").key,
            "addresses[1]"
        );
        assert_eq!(bad("protocols = [\"smtp\"]").key, "protocols[0]");
        let sameuser =
            spec("name = \"a\"\nmethod = \"scram\"\ndatabases = [\"sameuser\"]").unwrap();
        assert_eq!(
            sameuser.to_rule(Target::Reject).unwrap().databases,
            NameMatch::SameUser
        );
        let cert =
            spec("name = \"a\"\nmethod = \"scram\"\nclient_certificate = \"verify\"").unwrap();
        assert_eq!(cert.requirement().unwrap_err().key, "client_certificate");
    }
}
