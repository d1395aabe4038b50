//! The contract every [`Accounts`] keeps, and what the account stage makes of it.
//!
//! Seed the implementation with [`AccountsFixture::standard`]'s accounts (and its mapped
//! identity, if the implementation maps identities), then run [`run_all`].
//!
//! # Example
//!
//! The [`Directory`](crate::account::Directory) over the in-memory store, seeded with
//! [`seed_directory`]:
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::contract::accounts::{AccountsFixture, run_all, seed_directory};
//! use auth_core::{Directory, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = Directory::new(Arc::new(MemoryStore::new()));
//! let fixture = AccountsFixture::standard("contract-");
//! seed_directory(&directory, &fixture).await?;
//! run_all(Arc::new(directory), &fixture).await;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;

use super::{broken, check};
use crate::account::{Account, AccountStage, Accounts, UserStatus};
use crate::authz::Role;
use crate::connection::{ConnectionInfo, Protocol};
use crate::error::{AccountError, CredentialError, Error};
use crate::outcome::Outcome;
use crate::session::{Evidence, StandardSession};

/// The accounts the suite expects the implementation to hold.
#[derive(Debug, Clone)]
pub struct AccountsFixture {
    /// Active, with roles and scopes.
    pub active: Account,
    /// Disabled.
    pub disabled: Account,
    /// Locked.
    pub locked: Account,
    /// Active but past its validity at [`Self::now`].
    pub expired: Account,
    /// A system account without remote login.
    pub system: Account,
    /// A name with no account.
    pub unknown: String,
    /// `(method, identity, user)`: an identity the implementation maps to a user, when it
    /// maps identities (`None`: [`Accounts::mapped_user`] answers nothing).
    pub mapped: Option<(String, String, String)>,
    /// The time the suite judges validity at.
    pub now: SystemTime,
}

impl AccountsFixture {
    /// The standard fixture, with names starting `prefix` (so that several runs can share
    /// a store). Validity is in whole seconds, which every store keeps.
    pub fn standard(prefix: &str) -> Self {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let name = |n: &str| format!("{prefix}{n}");
        Self {
            active: Account::active(name("active"))
                .with_roles([Role::Dba])
                .with_scopes(["kms:encrypt", "read"])
                .valid_until(now + Duration::from_secs(86_400)),
            disabled: Account::active(name("disabled")).with_status(UserStatus::Disabled),
            locked: Account::active(name("locked")).with_status(UserStatus::Locked),
            expired: Account::active(name("expired")).valid_until(now - Duration::from_secs(1)),
            system: Account::active(name("system")).system(false),
            unknown: name("nobody"),
            mapped: Some((
                "kerberos".to_owned(),
                format!("{prefix}active/admin@EXAMPLE.COM"),
                name("active"),
            )),
            now,
        }
    }

    /// Every account of the fixture.
    pub fn accounts(&self) -> [&Account; 5] {
        [
            &self.active,
            &self.disabled,
            &self.locked,
            &self.expired,
            &self.system,
        ]
    }
}

/// Runs every property.
pub async fn run_all(accounts: Arc<dyn Accounts>, fixture: &AccountsFixture) {
    reads_what_was_stored(accounts.as_ref(), fixture).await;
    unknown_and_invalid_names_have_no_account(accounts.as_ref(), fixture).await;
    concurrent_reads_agree(accounts.as_ref(), fixture).await;
    maps_identities(accounts.as_ref(), fixture).await;
    stage_admits_only_usable_accounts(accounts, fixture).await;
}

/// Each seeded account reads back with its state, validity, roles, scopes and flags.
pub async fn reads_what_was_stored(accounts: &dyn Accounts, fixture: &AccountsFixture) {
    const P: &str = "reads_what_was_stored";
    for expected in fixture.accounts() {
        match accounts.account(&expected.name).await {
            Ok(Some(found)) => check(&found == expected, P, || {
                format!(
                    "`{}` read back as {found:?}, stored {expected:?}",
                    expected.name
                )
            }),
            other => broken(P, format!("`{}`: {other:?}", expected.name)),
        }
    }
}

/// An unknown user and a name that cannot be a user name have no account; neither is
/// an error (which would make the attempt unavailable rather than refused).
pub async fn unknown_and_invalid_names_have_no_account(
    accounts: &dyn Accounts,
    fixture: &AccountsFixture,
) {
    const P: &str = "unknown_and_invalid_names_have_no_account";
    let long = "a".repeat(300);
    for name in [
        fixture.unknown.as_str(),
        "",
        "../etc/passwd",
        "a b",
        "\u{0}",
        &long,
    ] {
        let found = accounts.account(name).await;
        check(matches!(found, Ok(None)), P, || {
            format!("{name:?} answered {found:?}, not Ok(None)")
        });
    }
}

/// Concurrent lookups see the same account.
pub async fn concurrent_reads_agree(accounts: &dyn Accounts, fixture: &AccountsFixture) {
    const P: &str = "concurrent_reads_agree";
    let reads = join_all((0..32).map(|_| accounts.account(&fixture.active.name))).await;
    for read in reads {
        check(
            matches!(&read, Ok(Some(a)) if *a == fixture.active),
            P,
            || format!("a concurrent read answered {read:?}"),
        );
    }
}

/// The mapped identity maps to its user; another identity and another method map to
/// nothing.
pub async fn maps_identities(accounts: &dyn Accounts, fixture: &AccountsFixture) {
    const P: &str = "maps_identities";
    let Some((method, identity, user)) = &fixture.mapped else {
        return;
    };
    let found = accounts.mapped_user(method, identity).await;
    check(found.as_ref().ok() == Some(&Some(user.clone())), P, || {
        format!("{method} `{identity}` mapped to {found:?}, not `{user}`")
    });
    for (m, i) in [
        (method.as_str(), "someone@EXAMPLE.COM"),
        ("certificate", identity.as_str()),
    ] {
        let found = accounts.mapped_user(m, i).await;
        check(matches!(found, Ok(None)), P, || {
            format!("{m} `{i}` mapped to {found:?}")
        });
    }
}

fn proved(
    user: &str,
    method: &str,
    evidence: Evidence,
    now: SystemTime,
) -> Box<dyn crate::Session> {
    StandardSession::new(user, method, now)
        .with_evidence(evidence)
        .boxed()
}

/// The account stage over the implementation: only the active account logs in, with
/// its roles and scopes; the rest are refused with the matching status, an unknown user
/// and a foreign identity as invalid credentials.
pub async fn stage_admits_only_usable_accounts(
    accounts: Arc<dyn Accounts>,
    fixture: &AccountsFixture,
) {
    const P: &str = "stage_admits_only_usable_accounts";
    let stage = AccountStage::new(accounts);
    let remote = ConnectionInfo::tcp(
        Protocol::Postgres,
        std::net::SocketAddr::from(([192, 0, 2, 7], 5000)),
    );
    let as_user = |user: &str| {
        let mut c = remote.clone();
        c.user = Some(user.to_owned());
        c
    };
    let now = fixture.now;

    let active = &fixture.active.name;
    match stage
        .admit(
            &as_user(active),
            proved(active, "scram", Evidence::Password, now),
            now,
        )
        .await
    {
        Outcome::Authenticated(s) => {
            check(s.user() == active && s.roles() == [Role::Dba], P, || {
                format!("admitted as {} with roles {:?}", s.user(), s.roles())
            });
            check(s.scopes() == fixture.active.scopes, P, || {
                format!(
                    "scopes {:?}, the account has {:?}",
                    s.scopes(),
                    fixture.active.scopes
                )
            });
            check(s.expires() == fixture.active.valid_until, P, || {
                format!(
                    "session expires {:?}, the account {:?}",
                    s.expires(),
                    fixture.active.valid_until
                )
            });
        }
        other => broken(P, format!("the active account was refused: {other:?}")),
    }

    let refused = [
        (&fixture.disabled.name, Some(AccountError::Disabled)),
        (&fixture.locked.name, Some(AccountError::Locked)),
        (&fixture.expired.name, Some(AccountError::Expired)),
        (&fixture.system.name, Some(AccountError::Disabled)),
        (&fixture.unknown, None),
    ];
    for (user, status) in refused {
        let outcome = stage
            .admit(
                &as_user(user),
                proved(user, "wallet", Evidence::Password, now),
                now,
            )
            .await;
        let as_expected = match (&outcome, status) {
            (Outcome::AccountRefused { error: got, .. }, Some(want)) => *got == want,
            (Outcome::Rejected(f), None) => f.error == Error::Credential(CredentialError::Invalid),
            _ => false,
        };
        check(as_expected, P, || {
            format!("`{user}`: {outcome:?}, expected {status:?}")
        });
    }

    // Another identity may not act as the active user, unless the directory maps it.
    let outcome = stage
        .admit(
            &as_user(active),
            proved("mallory", "kerberos", Evidence::None, now),
            now,
        )
        .await;
    check(
        matches!(&outcome, Outcome::Rejected(f) if f.error == Error::Credential(CredentialError::Invalid)),
        P,
        || format!("mallory acting as `{active}`: {outcome:?}"),
    );
    if let Some((method, identity, user)) = &fixture.mapped {
        let session = StandardSession::new(identity.clone(), method.clone(), now)
            .with_user("not-the-requested-user")
            .boxed();
        let outcome = stage.admit(&as_user(user), session, now).await;
        check(
            matches!(&outcome, Outcome::Authenticated(s) if s.user() == user),
            P,
            || format!("mapped identity `{identity}` acting as `{user}`: {outcome:?}"),
        );
    }
}

/// Writes the fixture into a [`Directory`](crate::account::Directory) (the seeding step
/// for stores the directory runs on).
pub async fn seed_directory(
    directory: &crate::account::Directory,
    fixture: &AccountsFixture,
) -> Result<(), crate::account::DirectoryError> {
    for account in fixture.accounts() {
        let valid_until = account
            .valid_until
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let a = account.clone();
        directory
            .update(&account.name, move |r| {
                r.status = a.status;
                r.valid_until = valid_until;
                r.roles = a.roles.clone();
                r.scopes = a.scopes.clone();
                r.system = a.system;
                r.remote_login = a.remote_login;
            })
            .await?;
    }
    if let Some((method, identity, user)) = &fixture.mapped {
        directory.map_identity(method, identity, user).await?;
    }
    Ok(())
}
