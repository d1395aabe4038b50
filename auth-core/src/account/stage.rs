//! The account stage itself: identity, account state, grants.

use std::sync::Arc;
use std::time::SystemTime;

use super::record::state_refusal;
use super::{Account, AccountSession, Accounts, IdentityMap};
use crate::connection::ConnectionInfo;
use crate::error::{AccountError, CredentialError};
use crate::outcome::Outcome;
use crate::session::{Evidence, Session};

/// Decides, after a method succeeded, whether its identity may log in as the requested
/// user now (see the [module documentation](super)). Give it to the engine with
/// [`EngineBuilder::accounts`](crate::engine::EngineBuilder::accounts), which runs it
/// after every success, whichever method and front door.
///
/// ```
/// use std::sync::Arc;
/// use auth_core::account::{AccountStage, Directory, UserStatus};
/// use auth_core::{ConnectionInfo, MemoryStore, Outcome, Protocol, StandardSession};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = Directory::new(Arc::new(MemoryStore::new()));
/// dir.update("alice", |r| r.status = UserStatus::Disabled).await.unwrap();
/// let stage = AccountStage::new(Arc::new(dir));
/// let connection = ConnectionInfo::tcp(Protocol::Http, "10.0.0.5:40000".parse().unwrap());
/// let proved = StandardSession::new("alice", "wallet", std::time::SystemTime::now()).boxed();
/// let outcome = stage.admit(&connection, proved, std::time::SystemTime::now()).await;
/// assert!(matches!(outcome, Outcome::AccountRefused { .. }), "disabled: refused");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AccountStage {
    accounts: Arc<dyn Accounts>,
    map: IdentityMap,
}

impl AccountStage {
    /// A stage reading `accounts`, with an empty identity map.
    pub fn new(accounts: Arc<dyn Accounts>) -> Self {
        Self {
            accounts,
            map: IdentityMap::default(),
        }
    }

    /// Lets the identities in `map` act as other users.
    #[must_use]
    pub fn with_identity_map(mut self, map: IdentityMap) -> Self {
        self.map = map;
        self
    }

    /// The account stage for `session` on `connection` at `now` (the engine's clock):
    /// the session as the account sees it, or the refusal.
    pub async fn admit(
        &self,
        connection: &ConnectionInfo,
        session: Box<dyn Session>,
        now: SystemTime,
    ) -> Outcome {
        let mapped = match self.certificate_user(connection, session.as_ref()).await {
            Ok(mapped) => mapped,
            Err(outcome) => return outcome,
        };
        let requested = connection
            .user
            .as_deref()
            .or(mapped.as_deref())
            .unwrap_or(session.user());
        if session.user() != requested {
            match self.may_act_as(session.as_ref(), requested).await {
                Ok(true) => {}
                Ok(false) => return not_acting_as(session.as_ref(), requested),
                Err(outcome) => return outcome,
            }
        }
        let account = match self.accounts.account(requested).await {
            Ok(Some(account)) => account,
            Ok(None) => {
                return Outcome::rejected(
                    CredentialError::Invalid,
                    format!(
                        "`{requested}` has no account (identity `{}`, {})",
                        session.principal(),
                        session.method()
                    ),
                );
            }
            Err(e) => return Outcome::unavailable(e.to_string()),
        };
        if let Some((status, detail)) = refusal(&account, connection, session.as_ref(), now) {
            return Outcome::AccountRefused {
                error: status,
                detail: detail.into(),
            };
        }
        Outcome::Authenticated(Box::new(AccountSession::new(session, account)))
    }

    /// A certificate on a front door where the client names no user (HTTP, gRPC) is the
    /// user the directory maps it to (`authctl identity map cert ...`), if it maps it.
    async fn certificate_user(
        &self,
        connection: &ConnectionInfo,
        session: &dyn Session,
    ) -> Result<Option<String>, Outcome> {
        if connection.user.is_some() || !matches!(session.evidence(), Evidence::Certificate { .. })
        {
            return Ok(None);
        }
        self.accounts
            .mapped_user(session.method(), session.principal())
            .await
            .map_err(|e| Outcome::unavailable(e.to_string()))
    }

    async fn may_act_as(&self, session: &dyn Session, requested: &str) -> Result<bool, Outcome> {
        self.identity_may_act_as(session.method(), session.principal(), requested)
            .await
    }

    /// Whether `identity`, proved by `method`, may act as `requested`: the configured map,
    /// then the directory's mapped identities.
    pub(crate) async fn identity_may_act_as(
        &self,
        method: &str,
        identity: &str,
        requested: &str,
    ) -> Result<bool, Outcome> {
        if self.map.allows(method, identity, requested) {
            return Ok(true);
        }
        match self.accounts.mapped_user(method, identity).await {
            Ok(mapped) => Ok(mapped.as_deref() == Some(requested)),
            Err(e) => Err(Outcome::unavailable(e.to_string())),
        }
    }
}

/// The refusal of an identity that may not act as the `requested` user: alice's
/// Kerberos ticket on a connection for `bob` (the chain makes it too, without a stage).
pub(crate) fn not_acting_as(session: &dyn Session, requested: &str) -> Outcome {
    Outcome::rejected(
        CredentialError::Invalid,
        format!(
            "identity `{}` ({}) may not act as the requested user `{requested}`",
            session.principal(),
            session.method()
        ),
    )
}

/// Why `account` may not log in now, if it may not.
fn refusal(
    account: &Account,
    connection: &ConnectionInfo,
    session: &dyn Session,
    now: SystemTime,
) -> Option<(AccountError, String)> {
    let name = &account.name;
    if let Some(refused) = state_refusal(name, account.status, account.valid_until, now) {
        return Some(refused);
    }
    if account.system && !connection.is_localhost() {
        if !account.remote_login {
            return Some((
                AccountError::Disabled,
                format!("system account `{name}` may not log in from another machine"),
            ));
        }
        let password = matches!(
            session.evidence(),
            Evidence::Password | Evidence::Sasl { .. } | Evidence::WalletKey(_)
        );
        if !password {
            return Some((
                AccountError::Disabled,
                format!(
                    "system account `{name}` logs in from another machine only with a password, not {}",
                    session.method()
                ),
            ));
        }
    }
    None
}
