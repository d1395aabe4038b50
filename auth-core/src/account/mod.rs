//! The account stage (Linux-PAM's "account"): after a method proves who the client is,
//! may that identity act as the user it asked for, and may that account log in now?
//!
//! A [`Chain`](crate::Chain) built with an [`AccountStage`] runs it on every success,
//! before the adapter says OK, whichever method succeeded:
//!
//! 1. **Identity.** The method's mapped user must be the requested user (pgwire's startup
//!    `user`; over HTTP the method's own user), or an [`IdentityMap`] entry or a mapping
//!    stored in the directory ([`Accounts::mapped_user`]) must let the proved identity
//!    act as the requested user (pg_ident semantics). Otherwise: invalid credentials.
//! 2. **Account.** The requested user's [`Account`] must exist (a deleted user is
//!    unknown), be active (not disabled or locked), and be within its validity. A system
//!    account logs in from another machine only when it allows remote login, and then
//!    only with a password.
//! 3. **Grants.** The session carries the account's roles (with any the method found)
//!    and, when the credential carried no scopes of its own, the account's scopes.
//!
//! A refusal is an ordinary failed attempt for the client (a generic message) and for the
//! rate limiter (a failure against the user); the audit detail says which check refused.
//! [`Directory`] is the store-backed implementation every backend shares; run
//! `auth_core::contract::accounts::run_all` against another one.

mod directory;
mod identity_map;
pub(crate) mod read_once;
mod record;
mod session;
mod stage;

use std::fmt::Debug;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::authz::Role;

pub use directory::{
    Directory, DirectoryError, IDENTITY_PREFIX, LAYOUT_VERSION, Migration, valid_user_name,
};
pub use identity_map::{IdentityMap, MapEntry};
pub use record::{UserRecord, UserStatus};
pub use session::AccountSession;
pub use stage::AccountStage;
pub(crate) use stage::{identity_admitted, not_acting_as};

/// An account as the account stage judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The user name.
    pub name: String,
    /// Administrative state.
    pub status: UserStatus,
    /// When the account stops being usable by any method.
    pub valid_until: Option<SystemTime>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Scopes, for credentials that carry none of their own.
    pub scopes: Vec<String>,
    /// A system account (local maintenance).
    pub system: bool,
    /// Whether a system account may log in from another machine (with a password).
    pub remote_login: bool,
}

impl Account {
    /// An active account named `name` with no roles or scopes.
    pub fn active(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: UserStatus::Active,
            valid_until: None,
            roles: Vec::new(),
            scopes: Vec::new(),
            system: false,
            remote_login: false,
        }
    }

    /// Sets the state.
    #[must_use]
    pub fn with_status(mut self, status: UserStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the end of validity.
    #[must_use]
    pub fn valid_until(mut self, at: SystemTime) -> Self {
        self.valid_until = Some(at);
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

    /// Marks a system account, allowing remote (password) logins or not.
    #[must_use]
    pub fn system(mut self, remote_login: bool) -> Self {
        self.system = true;
        self.remote_login = remote_login;
        self
    }

    /// Whether the state is active (validity aside).
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

/// The directory could not answer (store down, unreadable record): the attempt is
/// *unavailable*, not refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account directory: {0}")]
pub struct AccountsError(pub String);

/// Where the account stage finds accounts and identity mappings.
#[async_trait]
pub trait Accounts: Send + Sync + Debug {
    /// The account of `user`; `None` for an unknown or deleted user (and for a name that
    /// cannot be a user name).
    async fn account(&self, user: &str) -> Result<Option<Account>, AccountsError>;

    /// The user an `identity` proved by `method` is mapped to, if the directory maps it
    /// (`authctl identity map`). The default maps nothing.
    async fn mapped_user(
        &self,
        _method: &str,
        _identity: &str,
    ) -> Result<Option<String>, AccountsError> {
        Ok(None)
    }
}
