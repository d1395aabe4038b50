//! The `[kerberos]` section: the keytab, the services tickets must be for, and how a
//! principal maps to a local user (pg_ident.conf's vocabulary).

use std::path::PathBuf;

use auth_core::settings::Invalid;

use crate::authenticator::{GssAuthenticator, UserDirectory};
use crate::mapping::{CaseFold, MapRule, PrincipalMapper};

/// The service PostgreSQL clients ask tickets for, unless `service` says otherwise.
const DEFAULT_SERVICE: &str = "postgres";
/// The service HTTP clients ask SPNEGO tickets for, unless `http_service` says otherwise.
const DEFAULT_HTTP_SERVICE: &str = "HTTP";

/// How Kerberos (GSSAPI) logins are accepted and mapped to users: the `[kerberos]`
/// section. Every key is optional; an absent section means the keytab of `KRB5_KTNAME`,
/// tickets for `postgres` (and `HTTP` over HTTP), principals of the keytab's own realm,
/// `alice@REALM` mapping to `alice`.
///
/// ```
/// use auth_kerberos::{CaseFold, KerberosSettings, Principal};
///
/// let settings: KerberosSettings = toml::from_str(
///     r#"
///     keytab = "/etc/gateway/postgres.keytab"
///     realms = ["TEST.REALM"]
///     case = "lower"
///
///     [[map]]
///     pattern = '^(.*)/admin$'
///     user = '\1_admin'
///     "#,
/// )
/// .unwrap();
/// assert_eq!(settings.service(), "postgres");
/// let mapper = settings.mapper().unwrap();
/// assert_eq!(mapper.case, CaseFold::Lower);
/// let alice = Principal::parse("Alice/admin@TEST.REALM").unwrap();
/// assert_eq!(mapper.map(&alice).unwrap(), "alice_admin");
///
/// // A map whose pattern is not a regex is refused, naming it.
/// let bad: KerberosSettings =
///     toml::from_str("[[map]]\npattern = \"(unclosed\"\nuser = \"x\"\n").unwrap();
/// assert_eq!(bad.mapper().unwrap_err().key, "map[0].pattern");
/// ```
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KerberosSettings {
    /// The service keytab, used as given (absolute, or relative to the working
    /// directory); read afresh at every handshake. No default: absent means the one
    /// `KRB5_KTNAME` names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keytab: Option<PathBuf>,
    /// The service PostgreSQL clients' tickets must be for: `postgres` (the default)
    /// accepts `postgres/<any host>`; a full principal (`postgres/db.example.com@REALM`)
    /// accepts only that one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The service the HTTP API accepts SPNEGO (`Negotiate`) tickets for (default `HTTP`,
    /// matching `HTTP/<host>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_service: Option<String>,
    /// Keep the realm in the mapped user name (`alice@TEST.REALM`; default false).
    pub include_realm: bool,
    /// Drop the principal's instance (`alice/admin` becomes `alice`; default false:
    /// a principal with an instance is refused unless a map handles it).
    pub strip_instance: bool,
    /// Case folding of the mapped user name: `keep` (the default), `lower` or `upper`.
    pub case: CaseSetting,
    /// The realms whose principals are accepted (default empty: only the service's own
    /// realm, the keytab's, unless `any_realm`).
    pub realms: Vec<String>,
    /// With no `realms`, accept principals of every realm the KDC trusts (default false).
    /// Then `alice@OTHER.REALM` maps to `alice` too: set it only with `include_realm` or
    /// maps that keep realms apart.
    pub any_realm: bool,
    /// pg_ident-style maps, first match wins (default none; when there are any, a
    /// principal no map matches is refused): `[[kerberos.map]] pattern = '^(.*)/admin$',
    /// user = '\1'`. The name they see has the realm only with `include_realm`
    /// (`'^(.*)@TEST\.REALM$'`).
    pub map: Vec<MapSettings>,
}

/// `case`: how the mapped user name's case is folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseSetting {
    /// `keep`: leave it as it is (the default).
    #[default]
    Keep,
    /// `lower`: lower case.
    Lower,
    /// `upper`: upper case.
    Upper,
}

impl From<CaseSetting> for CaseFold {
    fn from(case: CaseSetting) -> Self {
        match case {
            CaseSetting::Keep => Self::Keep,
            CaseSetting::Lower => Self::Lower,
            CaseSetting::Upper => Self::Upper,
        }
    }
}

/// One `[[kerberos.map]]`: a principal matching `pattern` maps to `user`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MapSettings {
    /// The regex the principal (without its realm unless `include_realm`) must match as
    /// a whole; `^` and `$` may be written or left out. Required.
    pub pattern: String,
    /// The user it maps to, `\1`..`\9` standing for the pattern's groups. Required.
    pub user: String,
}

impl MapSettings {
    /// The map rule; refused (`pattern` or `user`) when it cannot be one.
    pub fn rule(&self) -> Result<MapRule, Invalid> {
        if self.pattern.is_empty() {
            return Err(
                Invalid::new("pattern", "a map needs a pattern").hint(r"pattern = '^(.*)/admin$'")
            );
        }
        if self.user.is_empty() {
            return Err(
                Invalid::new("user", "a map needs the user it maps to").hint(r"user = '\1'")
            );
        }
        MapRule::new(&self.pattern, self.user.clone())
            .map_err(|e| Invalid::new("pattern", format!("`{}`: {e}", self.pattern)))
    }
}

impl KerberosSettings {
    /// The principal mapper; a map that cannot be used is refused as `map[i].pattern`
    /// (or `map[i].user`).
    pub fn mapper(&self) -> Result<PrincipalMapper, Invalid> {
        let rules = self
            .map
            .iter()
            .enumerate()
            .map(|(i, m)| m.rule().map_err(|e| e.within(&format!("map[{i}]"))))
            .collect::<Result<_, _>>()?;
        Ok(PrincipalMapper {
            include_realm: self.include_realm,
            strip_instance: self.strip_instance,
            case: self.case.into(),
            realms: self.realms.clone(),
            any_realm: self.any_realm,
            rules,
        })
    }

    /// The service PostgreSQL clients' tickets must be for (`postgres` by default).
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or(DEFAULT_SERVICE)
    }

    /// The service HTTP clients' SPNEGO tickets must be for (`HTTP` by default).
    pub fn http_service(&self) -> &str {
        self.http_service.as_deref().unwrap_or(DEFAULT_HTTP_SERVICE)
    }

    /// An acceptor for tickets for `door_service` ([`service`](Self::service) for
    /// PostgreSQL clients, [`http_service`](Self::http_service) for HTTP), whose mapped
    /// users must exist in `users`.
    pub fn build(
        &self,
        door_service: &str,
        users: UserDirectory,
    ) -> Result<GssAuthenticator, Invalid> {
        for (key, value) in [
            ("service", &self.service),
            ("http_service", &self.http_service),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Invalid::new(key, "the service name is empty").hint(format!(
                    "leave the key out for the default, \"{}\"",
                    if key == "service" {
                        DEFAULT_SERVICE
                    } else {
                        DEFAULT_HTTP_SERVICE
                    }
                )));
            }
        }
        Ok(GssAuthenticator::new(self.keytab.clone(), self.mapper()?)
            .with_service(door_service)
            .with_users(users))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use auth_core::MemoryStore;

    use super::*;
    use crate::principal::Principal;

    fn parse(text: &str) -> KerberosSettings {
        toml::from_str(text).unwrap()
    }

    fn users() -> UserDirectory {
        UserDirectory {
            store: Arc::new(MemoryStore::new()),
            prefix: "user/".into(),
        }
    }

    #[test]
    fn defaults_round_trip() {
        let defaults = KerberosSettings::default();
        let text = toml::to_string(&defaults).unwrap();
        assert_eq!(parse(&text), defaults);
        assert_eq!(parse(""), defaults);
        assert_eq!(defaults.service(), "postgres");
        assert_eq!(defaults.http_service(), "HTTP");
        let mapper = defaults.mapper().unwrap();
        assert_eq!(mapper.case, CaseFold::Keep);
        assert!(mapper.rules.is_empty());
    }

    #[test]
    fn a_full_section_round_trips() {
        let settings = parse(
            r#"
            keytab = "/k.keytab"
            service = "postgres/db.example.com@TEST.REALM"
            http_service = "HTTP/db.example.com"
            include_realm = true
            strip_instance = true
            case = "upper"
            realms = ["TEST.REALM", "OTHER.REALM"]
            any_realm = false
            [[map]]
            pattern = '^(.*)@TEST\.REALM$'
            user = '\1'
            "#,
        );
        let text = toml::to_string(&settings).unwrap();
        assert_eq!(parse(&text), settings);
        assert_eq!(settings.service(), "postgres/db.example.com@TEST.REALM");
        let mapper = settings.mapper().unwrap();
        let p = Principal::parse("bob/admin@TEST.REALM").unwrap();
        assert_eq!(mapper.map(&p).unwrap(), "BOB");
    }

    #[test]
    fn builds_an_acceptor() {
        let settings = parse("realms = [\"TEST.REALM\"]");
        let gss = settings.build(settings.http_service(), users()).unwrap();
        assert!(format!("{gss:?}").contains("HTTP"));
    }

    #[test]
    fn refusals_name_the_key() {
        let err = parse(
            "[[map]]\npattern = \"a\"\nuser = \"a\"\n[[map]]\npattern = \"(\"\nuser = \"b\"\n",
        )
        .mapper()
        .unwrap_err();
        assert_eq!(err.key, "map[1].pattern");
        assert!(err.message.contains("`(`"), "{err}");
        let err = parse("[[map]]\npattern = \"a\"\n").mapper().unwrap_err();
        assert_eq!(err.key, "map[0].user");
        let err = parse("service = \"\"")
            .build("postgres", users())
            .unwrap_err();
        assert_eq!(err.key, "service");
        let err = parse("http_service = \" \"")
            .build("HTTP", users())
            .unwrap_err();
        assert_eq!(err.key, "http_service");
    }

    #[test]
    fn a_misspelt_case_or_key_does_not_parse() {
        let err = toml::from_str::<KerberosSettings>("case = \"lowercase\"").unwrap_err();
        assert!(err.to_string().contains("keep"), "{err}");
        let err = toml::from_str::<KerberosSettings>("include_realms = true").unwrap_err();
        assert!(err.to_string().contains("include_realms"), "{err}");
        let err = toml::from_str::<KerberosSettings>("[[map]]\npattern = \"a\"\nusr = \"a\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("usr"), "{err}");
    }
}
