//! A method's session with what the account stage decided: the requested user, the
//! account's roles and scopes, and its validity.

use std::time::SystemTime;

use super::Account;
use crate::authz::Role;
use crate::session::{
    Evidence, IllegalTransition, Session, SessionEnd, SessionRenewal, SessionState,
};

/// The session a method produced, seen through the account that admitted it: the user is
/// the account's, the roles are the method's and the account's, the scopes are the
/// credential's own when it carried any (a token's or an API key's, which may narrow the
/// account's) and the account's otherwise, and the session expires no later than the
/// account does. Everything else, including [`Session::end`], is the method's.
#[derive(Debug)]
pub struct AccountSession {
    inner: Box<dyn Session>,
    user: String,
    roles: Vec<Role>,
    scopes: Option<Vec<String>>,
    /// The account's own validity; the session's is the earlier of this and the method's,
    /// read each time (a renewal moves the method's).
    valid_until: Option<SystemTime>,
}

impl AccountSession {
    /// `inner` admitted as `account`.
    pub fn new(inner: Box<dyn Session>, account: Account) -> Self {
        let mut roles = account.roles;
        for role in inner.roles() {
            if !roles.contains(role) {
                roles.push(*role);
            }
        }
        let scopes = inner.scopes().is_empty().then_some(account.scopes);
        Self {
            inner,
            user: account.name,
            roles,
            scopes,
            valid_until: account.valid_until,
        }
    }

    /// The method's own session.
    pub fn inner(&self) -> &dyn Session {
        self.inner.as_ref()
    }
}

impl Session for AccountSession {
    fn principal(&self) -> &str {
        self.inner.principal()
    }
    fn user(&self) -> &str {
        &self.user
    }
    fn method(&self) -> &str {
        self.inner.method()
    }
    fn evidence(&self) -> &Evidence {
        self.inner.evidence()
    }
    fn roles(&self) -> &[Role] {
        &self.roles
    }
    fn scopes(&self) -> &[String] {
        self.scopes.as_deref().unwrap_or(self.inner.scopes())
    }
    fn created(&self) -> SystemTime {
        self.inner.created()
    }
    fn last_activity(&self) -> SystemTime {
        self.inner.last_activity()
    }
    fn expires(&self) -> Option<SystemTime> {
        match (self.inner.expires(), self.valid_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn state(&self) -> SessionState {
        self.inner.state()
    }
    fn transition(&mut self, to: SessionState) -> Result<(), IllegalTransition> {
        self.inner.transition(to)
    }
    fn touch(&mut self, now: SystemTime) -> Result<(), IllegalTransition> {
        self.inner.touch(now)
    }
    fn end(&mut self) -> Option<SessionEnd> {
        self.inner.end()
    }
    fn renewal(&mut self, now: SystemTime) -> Option<SessionRenewal> {
        self.inner.renewal(now)
    }
}
