//! Who authenticated, how and when, and the session's life cycle.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::authz::{Role, ScopeRules, role_grants};
use crate::error::{AuthorizationError, Failure};

/// What a backend does when its session ends (see [`Session::end`]).
pub type SessionEnd = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a backend does to keep its session usable (see [`Session::renewal`]): `Err` says
/// why it could not, for the audit log.
pub type SessionRenewal = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'static>>;

/// The life-cycle state of a session.
///
/// Legal transitions (anything else is refused with [`IllegalTransition`]):
///
/// | from \ to | Authenticating | Active | Idle | Disconnected | Error |
/// |---|---|---|---|---|---|
/// | Authenticating | - | yes | - | yes | yes |
/// | Active | - | - | yes | yes | yes |
/// | Idle | - | yes | - | yes | yes |
/// | Disconnected | - | - | - | - | - |
/// | Error | - | - | - | yes | - |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// The exchange is still running.
    Authenticating,
    /// Authenticated and in use.
    Active,
    /// Authenticated, no recent activity.
    Idle,
    /// Ended; terminal.
    Disconnected,
    /// Failed; may only be disconnected.
    Error,
}

impl SessionState {
    /// Every state, for exhaustive tests.
    pub const ALL: [SessionState; 5] = [
        Self::Authenticating,
        Self::Active,
        Self::Idle,
        Self::Disconnected,
        Self::Error,
    ];

    /// Whether moving from `self` to `to` is legal.
    pub fn can_transition_to(self, to: SessionState) -> bool {
        use SessionState::*;
        matches!(
            (self, to),
            (Authenticating, Active | Disconnected | Error)
                | (Active, Idle | Disconnected | Error)
                | (Idle, Active | Disconnected | Error)
                | (Error, Disconnected)
        )
    }
}

/// A refused state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal session transition from {from:?} to {to:?}")]
pub struct IllegalTransition {
    /// The state the session is in.
    pub from: SessionState,
    /// The state that was asked for.
    pub to: SessionState,
}

/// How the principal proved who it is. Never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Evidence {
    /// No evidence recorded.
    #[default]
    None,
    /// A password checked against a stored hash or verifier.
    Password,
    /// A SASL mechanism (such as SCRAM-SHA-256) completed.
    Sasl {
        /// The mechanism.
        mechanism: String,
    },
    /// A bearer token validated (JWT or introspected).
    Token {
        /// The token's issuer.
        issuer: Option<String>,
        /// The token's identifier (`jti`), when it has one.
        token_id: Option<String>,
    },
    /// A Kerberos ticket for this principal (`alice@TEST.REALM`).
    KerberosPrincipal(String),
    /// A secret found under this wallet key.
    WalletKey(String),
    /// An API key with this public identifier.
    ApiKey {
        /// The key's public id (never the secret part).
        key_id: String,
    },
    /// The kernel's word on a Unix-domain socket: the connecting process runs as this OS
    /// user (peer authentication).
    OsUser {
        /// The user id.
        uid: u32,
        /// The user name it resolved to.
        name: String,
    },
    /// Nothing was proved: a `trust` rule let a local connection in as the user it asked
    /// to be.
    LocalTrust,
    /// A verified TLS client certificate with this subject.
    Certificate {
        /// The certificate subject.
        subject: String,
    },
}

/// A uniform view of an authenticated session, over whatever live state a backend keeps
/// (a refreshable OAuth token, a ticket's expiry).
pub trait Session: Send + Sync + Debug {
    /// The authenticated identity as the method saw it (`alice@TEST.REALM`, a token's `sub`).
    fn principal(&self) -> &str;
    /// The local user the principal maps to (`alice`); what `SESSION_USER` answers.
    fn user(&self) -> &str;
    /// The name of the method that authenticated it.
    fn method(&self) -> &str;
    /// What proved the identity.
    fn evidence(&self) -> &Evidence;
    /// Granted roles.
    fn roles(&self) -> &[Role];
    /// Granted scopes.
    fn scopes(&self) -> &[String];
    /// When the session was created.
    fn created(&self) -> SystemTime;
    /// The last recorded activity.
    fn last_activity(&self) -> SystemTime;
    /// When the session stops being valid, if it expires.
    fn expires(&self) -> Option<SystemTime>;
    /// The current state.
    fn state(&self) -> SessionState;
    /// Moves to `to` if that is legal.
    fn transition(&mut self, to: SessionState) -> Result<(), IllegalTransition>;
    /// Records activity at `now`; an idle session becomes active again.
    fn touch(&mut self, now: SystemTime) -> Result<(), IllegalTransition>;

    /// Ends the session (the close of Linux-PAM's session stage): moves it to
    /// [`SessionState::Disconnected`] and returns the work its backend does when a session
    /// ends, such as revoking the token the password grant obtained (RFC 7009), for the
    /// caller to await or spawn. Whoever opened the session calls it once, when the
    /// connection or request ends; [`crate::OpenSession`] does so. The default has nothing
    /// to do.
    fn end(&mut self) -> Option<SessionEnd> {
        let _ = self.transition(SessionState::Disconnected);
        None
    }

    /// The work that extends the session, when it is due at `now`: an OAuth session
    /// refreshes its token before the token expires. Whoever keeps the session open awaits
    /// it before each use ([`crate::OpenSession::renew`]); once it is done, the session
    /// reports the new [`expires`](Self::expires), or, when the backend refused (the
    /// refresh token was revoked), an expiry that has passed. The default has nothing to
    /// do.
    fn renewal(&mut self, now: SystemTime) -> Option<SessionRenewal> {
        let _ = now;
        None
    }

    /// Whether the session has expired at `now`.
    fn is_expired(&self, now: SystemTime) -> bool {
        self.expires().is_some_and(|e| now >= e)
    }

    /// Requires a role at least as high as `role`; otherwise a
    /// [`MissingRole`](AuthorizationError::MissingRole) failure whose detail names it.
    fn require_role(&self, role: Role) -> Result<(), Failure> {
        if role_grants(self.roles(), role) {
            Ok(())
        } else {
            Err(Failure::new(
                AuthorizationError::MissingRole,
                format!("requires role {role}"),
            ))
        }
    }

    /// Requires every scope in `required`, as `rules` interpret implication; otherwise a
    /// [`MissingScope`](AuthorizationError::MissingScope) failure whose detail names the
    /// missing ones, space-separated.
    fn require_scopes(&self, rules: &ScopeRules, required: &[&str]) -> Result<(), Failure> {
        let missing: Vec<String> = required
            .iter()
            .filter(|r| !rules.grants(self.scopes().iter().map(String::as_str), r))
            .map(|r| (*r).to_owned())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(
                AuthorizationError::MissingScope,
                format!("requires scope {}", missing.join(" ")),
            ))
        }
    }
}

/// The standard [`Session`]: plain data, built by authenticators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardSession {
    principal: String,
    user: String,
    method: String,
    evidence: Evidence,
    roles: Vec<Role>,
    scopes: Vec<String>,
    created: SystemTime,
    last_activity: SystemTime,
    expires: Option<SystemTime>,
    state: SessionState,
}

impl StandardSession {
    /// A session for `principal`, authenticated by `method` at `now`, mapped to the local
    /// user of the same name, in state [`SessionState::Authenticating`].
    pub fn new(principal: impl Into<String>, method: impl Into<String>, now: SystemTime) -> Self {
        let principal = principal.into();
        Self {
            user: principal.clone(),
            principal,
            method: method.into(),
            evidence: Evidence::None,
            roles: Vec::new(),
            scopes: Vec::new(),
            created: now,
            last_activity: now,
            expires: None,
            state: SessionState::Authenticating,
        }
    }

    /// Sets the mapped local user.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Sets the evidence.
    #[must_use]
    pub fn with_evidence(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }

    /// Sets the roles.
    #[must_use]
    pub fn with_roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.roles = roles.into_iter().collect();
        self
    }

    /// Sets the scopes.
    #[must_use]
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn with_expiry(mut self, expires: SystemTime) -> Self {
        self.expires = Some(expires);
        self
    }

    /// Boxes the session as the trait object an [`Outcome`](crate::Outcome) carries.
    pub fn boxed(self) -> Box<dyn Session> {
        Box::new(self)
    }
}

impl Session for StandardSession {
    fn principal(&self) -> &str {
        &self.principal
    }
    fn user(&self) -> &str {
        &self.user
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn evidence(&self) -> &Evidence {
        &self.evidence
    }
    fn roles(&self) -> &[Role] {
        &self.roles
    }
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
    fn created(&self) -> SystemTime {
        self.created
    }
    fn last_activity(&self) -> SystemTime {
        self.last_activity
    }
    fn expires(&self) -> Option<SystemTime> {
        self.expires
    }
    fn state(&self) -> SessionState {
        self.state
    }

    fn transition(&mut self, to: SessionState) -> Result<(), IllegalTransition> {
        if self.state.can_transition_to(to) {
            self.state = to;
            Ok(())
        } else {
            Err(IllegalTransition {
                from: self.state,
                to,
            })
        }
    }

    fn touch(&mut self, now: SystemTime) -> Result<(), IllegalTransition> {
        match self.state {
            SessionState::Active => {}
            SessionState::Idle => self.state = SessionState::Active,
            from => {
                return Err(IllegalTransition {
                    from,
                    to: SessionState::Active,
                });
            }
        }
        // A clock stepping backwards must not move activity into the past.
        self.last_activity = self.last_activity.max(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn every_transition_matches_the_table() {
        use SessionState::*;
        let legal = [
            (Authenticating, Active),
            (Authenticating, Disconnected),
            (Authenticating, Error),
            (Active, Idle),
            (Active, Disconnected),
            (Active, Error),
            (Idle, Active),
            (Idle, Disconnected),
            (Idle, Error),
            (Error, Disconnected),
        ];
        let mut checked = 0;
        for from in SessionState::ALL {
            for to in SessionState::ALL {
                let expected = legal.contains(&(from, to));
                let mut s = StandardSession::new("p", "m", t(0));
                s.state = from;
                let result = s.transition(to);
                assert_eq!(result.is_ok(), expected, "{from:?} -> {to:?}");
                assert_eq!(s.state(), if expected { to } else { from });
                checked += 1;
            }
        }
        assert_eq!(checked, 25);
    }

    #[test]
    fn touch_revives_idle_and_refuses_ended_sessions() {
        let mut s = StandardSession::new("alice@R", "kerberos", t(10)).with_user("alice");
        assert!(s.touch(t(11)).is_err(), "still authenticating");
        s.transition(SessionState::Active).unwrap();
        s.transition(SessionState::Idle).unwrap();
        s.touch(t(20)).unwrap();
        assert_eq!(s.state(), SessionState::Active);
        assert_eq!(s.last_activity(), t(20));
        s.touch(t(15)).unwrap();
        assert_eq!(s.last_activity(), t(20), "never moves backwards");
        assert_eq!(s.created(), t(10));
        s.transition(SessionState::Disconnected).unwrap();
        assert!(s.touch(t(30)).is_err());
    }

    #[test]
    fn identity_and_mapped_user_are_kept_apart() {
        let s = StandardSession::new("alice@TEST.REALM", "kerberos", t(0))
            .with_user("alice")
            .with_evidence(Evidence::KerberosPrincipal("alice@TEST.REALM".into()));
        assert_eq!(s.principal(), "alice@TEST.REALM");
        assert_eq!(s.user(), "alice");
        assert_eq!(s.method(), "kerberos");
    }

    #[test]
    fn expiry_and_authorization_checks() {
        let s = StandardSession::new("svc", "oauth", t(0))
            .with_expiry(t(100))
            .with_roles([Role::Service])
            .with_scopes(["kms:admin"]);
        assert!(!s.is_expired(t(99)));
        assert!(s.is_expired(t(100)));
        assert!(s.require_role(Role::User).is_ok());
        assert_eq!(
            s.require_role(Role::Dba),
            Err(Failure::new(
                AuthorizationError::MissingRole,
                "requires role dba"
            ))
        );
        let rules = ScopeRules::new();
        assert!(s.require_scopes(&rules, &["kms:encrypt"]).is_ok());
        assert_eq!(
            s.require_scopes(&rules, &["kms:encrypt", "vault:read"]),
            Err(Failure::new(
                AuthorizationError::MissingScope,
                "requires scope vault:read"
            ))
        );
    }
}
