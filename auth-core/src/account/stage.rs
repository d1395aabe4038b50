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
        self.admit_under(connection, session, now, None).await
    }

    /// [`AccountStage::admit`] under a policy rule's identity map (PostgreSQL's `map=`):
    /// with `map`, an identity a method proved (an OS user, a certificate name, a
    /// Kerberos principal, a token's subject) acts as the requested user only through the
    /// map's entries or the directory's own mapping, never by having the same name; the
    /// stage's own map does not apply. Without one, as [`AccountStage::admit`].
    pub async fn admit_under(
        &self,
        connection: &ConnectionInfo,
        session: Box<dyn Session>,
        now: SystemTime,
        map: Option<&IdentityMap>,
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
        if !identity_admitted(session.as_ref(), requested, map) {
            match self
                .identity_may_act_as(session.method(), session.principal(), requested, map)
                .await
            {
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

    /// Whether `identity`, proved by `method`, may act as `requested`: the rule's map (or
    /// without one the stage's), then the directory's mapped identities.
    pub(crate) async fn identity_may_act_as(
        &self,
        method: &str,
        identity: &str,
        requested: &str,
        map: Option<&IdentityMap>,
    ) -> Result<bool, Outcome> {
        if map.unwrap_or(&self.map).allows(method, identity, requested) {
            return Ok(true);
        }
        match self.accounts.mapped_user(method, identity).await {
            Ok(mapped) => Ok(mapped.as_deref() == Some(requested)),
            Err(e) => Err(Outcome::unavailable(e.to_string())),
        }
    }
}

/// Whether `session` acts as `requested` without a map entry: its user is the requested
/// one, and under a rule `map` either the method proved a password rather than an
/// identity, or the method's own configured mapping named the user (a Kerberos principal
/// `alice@REALM` mapped to `alice`). An identity that is the requested name as it stands
/// (OS user `postgres` for user `postgres`) needs the map's entry, as PostgreSQL's `map=`.
pub(crate) fn identity_admitted(
    session: &dyn Session,
    requested: &str,
    map: Option<&IdentityMap>,
) -> bool {
    session.user() == requested
        && (map.is_none()
            || !proves_identity(session.evidence())
            || session.principal() != session.user())
}

/// Whether the evidence is an identity established elsewhere (the kernel, a CA, a KDC, a
/// token issuer) rather than the user's own secret.
fn proves_identity(evidence: &Evidence) -> bool {
    !matches!(
        evidence,
        Evidence::Password
            | Evidence::Sasl { .. }
            | Evidence::WalletKey(_)
            | Evidence::ApiKey { .. }
    )
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
