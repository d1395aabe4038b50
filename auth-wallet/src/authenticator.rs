//! Passwords checked against secrets in the wallet (`pgwire-user-<name>`).

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::{
    Attempt, Authenticator, Credential, CredentialError, CredentialKind, CredentialStore,
    EqualCost, Evidence, Key, Outcome, StandardSession,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wallet::DEFAULT_USER_PREFIX;

/// Authenticates [`Credential::Password`] against the secret stored under
/// `<prefix><user>` in a wallet (or any [`CredentialStore`]).
///
/// A user with no secret is [`Outcome::NotApplicable`]: "not in the wallet" falls through
/// to the next method, as the chain's control decides (and [`auth_core::Engine::decide`]
/// reports it like a wrong password). A backend failure is [`Outcome::Unavailable`]. Every
/// check reads the store, which records the access time.
///
/// Comparing a stored secret takes microseconds, a password hash tens of milliseconds:
/// next to a password-hash method, a fast "wrong secret" would tell wallet users from the
/// rest and let them be guessed at no cost. [`with_equal_cost`](Self::with_equal_cost)
/// makes every check of a wallet user also verify a dummy hash on the hasher's pool.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use auth_core::{
///     Attempt, Authenticator, ConnectionInfo, Credential, CredentialStore, Key, Outcome,
///     Precondition, Protocol,
/// };
/// use auth_wallet::{MasterKey, Wallet, WalletAuthenticator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let wallet = Wallet::open_file(dir.path().join("wallet"), MasterKey::generate()?).await?;
/// let wallet = Arc::new(wallet);
/// // The password of user `etl`, under `pgwire-user-<name>`.
/// let key = Key::new("pgwire-user-etl")?;
/// wallet.put(&key, b"etl-password".to_vec().into(), Precondition::None).await?;
/// let auth = WalletAuthenticator::new(wallet);
///
/// let connection = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.5:40000".parse()?);
/// let attempt = |user: &str, password: &str| {
///     Attempt::new(connection.clone(), Credential::password(user, password))
/// };
/// let outcome = auth.authenticate(&mut attempt("etl", "etl-password")).await;
/// assert_eq!(outcome.session().map(|s| s.user()), Some("etl"));
/// let outcome = auth.authenticate(&mut attempt("etl", "a guess")).await;
/// assert!(outcome.failure().is_some());
/// // Not in the wallet: the next link of the chain decides.
/// let outcome = auth.authenticate(&mut attempt("alice", "a guess")).await;
/// assert!(matches!(outcome, Outcome::NotApplicable));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WalletAuthenticator {
    store: Arc<dyn CredentialStore>,
    prefix: String,
    equal_cost: Option<Arc<dyn EqualCost>>,
}

impl WalletAuthenticator {
    /// Users under [`DEFAULT_USER_PREFIX`] in `store`.
    pub fn new(store: Arc<dyn CredentialStore>) -> Self {
        Self {
            store,
            prefix: DEFAULT_USER_PREFIX.to_owned(),
            equal_cost: None,
        }
    }

    /// Runs `work` (a dummy password-hash verification) on every check of a wallet user,
    /// right or wrong, so that a wallet user costs what a password-hash user and an
    /// unknown user cost: pass the `auth_password::Hasher` of the chain's password method.
    #[must_use]
    pub fn with_equal_cost(mut self, work: impl EqualCost + 'static) -> Self {
        self.equal_cost = Some(Arc::new(work));
        self
    }

    /// Uses `prefix` instead of `pgwire-user-`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

#[async_trait]
impl Authenticator for WalletAuthenticator {
    fn name(&self) -> &str {
        "wallet"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Password]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::Password { user, password } = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        let Ok(key) = Key::new(format!("{}{user}", self.prefix)) else {
            return Outcome::NotApplicable;
        };
        let record = match self.store.get(&key).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::NotApplicable,
            Err(e) => return Outcome::unavailable(format!("wallet: {e}")),
        };
        if let Some(work) = &self.equal_cost {
            work.verify_dummy(password.clone()).await;
        }
        // Digests first, so the comparison takes the same time whatever the lengths.
        let presented = Sha256::digest(password.expose_secret().as_bytes());
        let stored = Sha256::digest(record.value.expose_secret());
        if !bool::from(presented.ct_eq(&stored)) {
            return Outcome::rejected(
                CredentialError::Invalid,
                format!("wrong password for wallet key `{key}`"),
            );
        }
        Outcome::Authenticated(
            StandardSession::new(user.clone(), "wallet", attempt.now())
                .with_evidence(Evidence::WalletKey(key.as_str().to_owned()))
                .boxed(),
        )
    }
}
