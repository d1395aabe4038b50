//! From an authenticated principal to a local user name, like pg_ident.conf: accepted
//! realms, realm and instance stripping, case folding, and regex maps with `\1`.

use regex::Regex;

use crate::principal::Principal;

/// How the mapped name's case is folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseFold {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Lower case.
    Lower,
    /// Upper case (the IRIS convention).
    Upper,
}

/// One regex map: a principal matching `pattern` maps to `replacement`, where `\1`..`\9`
/// stand for the pattern's groups (pg_ident.conf's `/^(.*)@REALM$  \1`).
#[derive(Debug, Clone)]
pub struct MapRule {
    pattern: Regex,
    replacement: String,
}

impl MapRule {
    /// A rule; `pattern` must match the whole name (it is anchored at both ends, as
    /// `[[identity_map]]` patterns are: `alice` never matches `malice`), so `^` and `$`
    /// may be written or left out.
    pub fn new(pattern: &str, replacement: impl Into<String>) -> Result<Self, regex::Error> {
        Ok(Self {
            pattern: Regex::new(&format!("^(?:{pattern})$"))?,
            replacement: replacement.into(),
        })
    }

    fn apply(&self, name: &str) -> Option<String> {
        let caps = self.pattern.captures(name)?;
        let mut out = String::new();
        let mut chars = self.replacement.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\'
                && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
            {
                chars.next();
                out.push_str(caps.get(d as usize).map_or("", |m| m.as_str()));
                continue;
            }
            out.push(c);
        }
        Some(out)
    }
}

/// Why a principal has no local user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The principal's realm is not accepted.
    #[error("realm `{0}` is not accepted")]
    Realm(String),
    /// The principal has an instance and instances are not stripped.
    #[error("principal `{0}` has an instance and no rule maps it")]
    Instance(String),
    /// Regex maps exist and none matched.
    #[error("no map rule matches `{0}`")]
    NoRule(String),
    /// The result is empty.
    #[error("principal `{0}` maps to an empty user name")]
    Empty(String),
}

/// The mapping configuration.
#[derive(Debug, Clone, Default)]
pub struct PrincipalMapper {
    /// Keep the realm in the name the rules see and the result (pg_hba `include_realm`).
    pub include_realm: bool,
    /// Drop the instance (`alice/admin` becomes `alice`).
    pub strip_instance: bool,
    /// Case folding of the result.
    pub case: CaseFold,
    /// Realms accepted. Empty accepts only the realm of the service the ticket was for
    /// (the keytab's realm), unless `any_realm` is set.
    pub realms: Vec<String>,
    /// Accept principals of every realm when `realms` is empty. Trusting every realm
    /// the KDC trusts lets `alice@OTHER.REALM` log in as `alice` (PostgreSQL changed its
    /// `include_realm` default for this reason); set it only with `include_realm` or
    /// maps that keep realms apart.
    pub any_realm: bool,
    /// Regex maps, first match wins; when there are any, an unmatched principal is refused.
    pub rules: Vec<MapRule>,
}

impl PrincipalMapper {
    /// The local user for `principal`, as if its service were in the principal's own
    /// realm (see [`map_for_service`](Self::map_for_service)).
    pub fn map(&self, principal: &Principal) -> Result<String, MapError> {
        self.map_for_service(principal, principal.realm.as_deref())
    }

    /// The local user for `principal`, who presented a ticket for a service in
    /// `service_realm`: with no realm list, only that realm is accepted (unless
    /// `any_realm`).
    pub fn map_for_service(
        &self,
        principal: &Principal,
        service_realm: Option<&str>,
    ) -> Result<String, MapError> {
        let full = principal.to_string();
        let realm = principal.realm.as_deref().unwrap_or_default();
        let accepted = if !self.realms.is_empty() {
            self.realms.iter().any(|r| r == realm)
        } else {
            self.any_realm || service_realm == Some(realm)
        };
        if !accepted {
            return Err(MapError::Realm(realm.to_owned()));
        }
        let mut name = match (&principal.instance, self.strip_instance) {
            (Some(_), true) => principal.primary.clone(),
            (Some(_), false) if self.rules.is_empty() => return Err(MapError::Instance(full)),
            _ => principal.without_realm(),
        };
        if self.include_realm
            && let Some(r) = &principal.realm
        {
            name = format!("{name}@{r}");
        }
        if !self.rules.is_empty() {
            name = self
                .rules
                .iter()
                .find_map(|rule| rule.apply(&name))
                .ok_or_else(|| MapError::NoRule(name.clone()))?;
        }
        let name = match self.case {
            CaseFold::Keep => name,
            CaseFold::Lower => name.to_lowercase(),
            CaseFold::Upper => name.to_uppercase(),
        };
        if name.is_empty() {
            return Err(MapError::Empty(full));
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Principal {
        Principal::parse(s).unwrap()
    }

    #[test]
    fn foreign_realms_need_a_list_or_the_opt_in() {
        let m = PrincipalMapper::default();
        let alice = p("alice@OTHER.REALM");
        assert_eq!(
            m.map_for_service(&alice, Some("TEST.REALM")),
            Err(MapError::Realm("OTHER.REALM".into()))
        );
        assert_eq!(
            m.map_for_service(&p("alice@TEST.REALM"), Some("TEST.REALM")),
            Ok("alice".into())
        );
        let listed = PrincipalMapper {
            realms: vec!["OTHER.REALM".into()],
            ..PrincipalMapper::default()
        };
        assert_eq!(
            listed.map_for_service(&alice, Some("TEST.REALM")),
            Ok("alice".into())
        );
        let any = PrincipalMapper {
            any_realm: true,
            ..PrincipalMapper::default()
        };
        assert_eq!(
            any.map_for_service(&alice, Some("TEST.REALM")),
            Ok("alice".into())
        );
    }

    #[test]
    fn strips_realm_and_optionally_instance_and_folds_case() {
        let m = PrincipalMapper::default();
        assert_eq!(m.map(&p("alice@TEST.REALM")), Ok("alice".into()));
        assert!(matches!(
            m.map(&p("alice/admin@TEST.REALM")),
            Err(MapError::Instance(_))
        ));
        let m = PrincipalMapper {
            strip_instance: true,
            case: CaseFold::Upper,
            ..Default::default()
        };
        assert_eq!(m.map(&p("alice/admin@TEST.REALM")), Ok("ALICE".into()));
        let m = PrincipalMapper {
            include_realm: true,
            case: CaseFold::Lower,
            ..Default::default()
        };
        assert_eq!(m.map(&p("Alice@TEST.REALM")), Ok("alice@test.realm".into()));
    }

    #[test]
    fn accepted_realms() {
        let m = PrincipalMapper {
            realms: vec!["TEST.REALM".into()],
            ..Default::default()
        };
        assert_eq!(m.map(&p("alice@TEST.REALM")), Ok("alice".into()));
        assert_eq!(
            m.map(&p("alice@EVIL.REALM")),
            Err(MapError::Realm("EVIL.REALM".into()))
        );
        assert_eq!(m.map(&p("alice")), Err(MapError::Realm(String::new())));
    }

    #[test]
    fn regex_maps_like_pg_ident() {
        let m = PrincipalMapper {
            include_realm: true,
            rules: vec![
                MapRule::new(r"^(.*)/admin@TEST\.REALM$", r"\1_dba").unwrap(),
                MapRule::new(r"^(.*)@TEST\.REALM$", r"\1").unwrap(),
            ],
            ..Default::default()
        };
        assert_eq!(m.map(&p("alice@TEST.REALM")), Ok("alice".into()));
        assert_eq!(m.map(&p("alice/admin@TEST.REALM")), Ok("alice_dba".into()));
        assert!(matches!(m.map(&p("alice@OTHER")), Err(MapError::NoRule(_))));
    }

    #[test]
    fn patterns_match_whole_names_only() {
        let m = PrincipalMapper {
            rules: vec![MapRule::new("alice", "alice").unwrap()],
            ..Default::default()
        };
        assert_eq!(m.map(&p("alice@TEST.REALM")), Ok("alice".into()));
        // Unanchored, `alice` would have matched inside these and mapped them to alice.
        for other in [
            "malice@TEST.REALM",
            "alice2@TEST.REALM",
            "xalicex@TEST.REALM",
        ] {
            assert!(
                matches!(m.map(&p(other)), Err(MapError::NoRule(_))),
                "{other}"
            );
        }
        // Alternatives stay inside the anchors.
        let either = MapRule::new("alice|bob", "shared").unwrap();
        let m = PrincipalMapper {
            rules: vec![either],
            ..Default::default()
        };
        assert_eq!(m.map(&p("bob@TEST.REALM")), Ok("shared".into()));
        assert!(matches!(
            m.map(&p("bobby@TEST.REALM")),
            Err(MapError::NoRule(_))
        ));
    }
}
