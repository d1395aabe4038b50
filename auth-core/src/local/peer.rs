//! `peer`: the OS user of the process at the other end of a Unix-domain socket.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::attempt::Attempt;
use crate::authenticator::Authenticator;
use crate::credential::CredentialKind;
use crate::error::{AuthorizationError, CredentialError};
use crate::outcome::Outcome;
use crate::session::{Evidence, StandardSession};

/// Turns a user id into an OS user name.
pub trait OsUsers: Send + Sync + fmt::Debug {
    /// The name of user `uid`; `Ok(None)` when no user has that id.
    fn name(&self, uid: u32) -> std::io::Result<Option<String>>;
}

/// The system's user database (`getpwuid_r`, so NSS sources such as LDAP count too).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemUsers;

impl SystemUsers {
    /// The name of the user this process runs as (its effective user id).
    pub fn this_process(&self) -> std::io::Result<Option<String>> {
        self.name(nix::unistd::geteuid().as_raw())
    }
}

impl OsUsers for SystemUsers {
    fn name(&self, uid: u32) -> std::io::Result<Option<String>> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map(|user| user.map(|u| u.name))
            .map_err(std::io::Error::from)
    }
}

/// Authenticates [`Credential::Peer`](crate::Credential::Peer) on a Unix-domain socket: the session is the OS user
/// running the connecting process (`SO_PEERCRED`, read by the adapter), named from the
/// system's user database. Which database users that OS user may act as is the
/// identity map's business (method `peer`, identity the OS user name), as with
/// PostgreSQL's `peer` and `pg_ident.conf`.
///
/// ```
/// use auth_core::local::PeerAuthenticator;
/// use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Peer, Protocol};
/// use auth_core::PeerCredentials;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let me = PeerCredentials { uid: 0, gid: 0, pid: None };
/// let connection = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, Some(me)))
///     .with_user("root");
/// let mut attempt = Attempt::new(connection, Credential::Peer);
/// let outcome = PeerAuthenticator::new().authenticate(&mut attempt).await;
/// assert_eq!(outcome.session().map(|s| s.principal()), Some("root"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PeerAuthenticator {
    users: Arc<dyn OsUsers>,
}

impl Default for PeerAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerAuthenticator {
    /// Names users from the system's user database.
    pub fn new() -> Self {
        Self {
            users: Arc::new(SystemUsers),
        }
    }

    /// Names users from `users` instead (a container without the host's users, tests).
    #[must_use]
    pub fn with_os_users(mut self, users: Arc<dyn OsUsers>) -> Self {
        self.users = users;
        self
    }
}

#[async_trait]
impl Authenticator for PeerAuthenticator {
    fn name(&self) -> &str {
        "peer"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Peer]
    }

    fn local_only(&self) -> bool {
        true
    }

    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        if !self.supports(&attempt.credential) {
            return Outcome::NotApplicable;
        }
        let Some(credentials) = attempt.connection.peer.credentials() else {
            return Outcome::rejected(
                AuthorizationError::Rejected,
                "peer authentication needs a Unix-domain socket connection whose peer \
                 credentials the server read",
            );
        };
        let uid = credentials.uid;
        // The user database may be remote (NSS, LDAP): off the async threads.
        let users = self.users.clone();
        let named = tokio::task::spawn_blocking(move || users.name(uid)).await;
        let name = match named {
            Ok(Ok(Some(name))) => name,
            Ok(Ok(None)) => {
                return Outcome::rejected(
                    CredentialError::Invalid,
                    format!("no OS user has uid {uid}"),
                );
            }
            Ok(Err(e)) => {
                return Outcome::unavailable(format!("cannot look up OS user id {uid}: {e}"));
            }
            Err(e) => return Outcome::unavailable(format!("OS user lookup failed: {e}")),
        };
        let session = StandardSession::new(name.clone(), "peer", attempt.now())
            .with_evidence(Evidence::OsUser { uid, name });
        Outcome::Authenticated(session.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::connection::{ConnectionInfo, Peer, PeerCredentials, Protocol};
    use crate::credential::Credential;

    #[derive(Debug)]
    struct Table;
    impl OsUsers for Table {
        fn name(&self, uid: u32) -> std::io::Result<Option<String>> {
            match uid {
                1000 => Ok(Some("alice".into())),
                13 => Err(std::io::Error::other("ldap down")),
                _ => Ok(None),
            }
        }
    }

    fn unix(uid: u32) -> ConnectionInfo {
        let cred = PeerCredentials {
            uid,
            gid: uid,
            pid: Some(7),
        };
        ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, Some(cred))).with_user("alice")
    }

    async fn judge(connection: ConnectionInfo) -> Outcome {
        let auth = PeerAuthenticator::new().with_os_users(Arc::new(Table));
        auth.authenticate(&mut Attempt::new(connection, Credential::Peer))
            .await
    }

    #[tokio::test]
    async fn the_os_user_is_the_session_with_its_uid_as_evidence() {
        let outcome = judge(unix(1000)).await;
        let session = outcome.session().expect("authenticated");
        assert_eq!((session.principal(), session.method()), ("alice", "peer"));
        assert_eq!(
            session.evidence(),
            &Evidence::OsUser {
                uid: 1000,
                name: "alice".into()
            }
        );
    }

    #[tokio::test]
    async fn unknown_uids_missing_credentials_and_lookup_failures_are_told_apart() {
        let unknown = judge(unix(4242)).await;
        assert_eq!(
            unknown.failure().map(|f| (f.error, f.detail.to_string())),
            Some((
                Error::Credential(CredentialError::Invalid),
                "no OS user has uid 4242".into()
            ))
        );
        let tcp = ConnectionInfo::tcp(Protocol::Postgres, "127.0.0.1:5".parse().unwrap());
        assert_eq!(
            judge(tcp).await.failure().map(|f| f.error),
            Some(Error::Authorization(AuthorizationError::Rejected))
        );
        let down = judge(unix(13)).await;
        assert_eq!(
            down.failure().map(|f| f.error),
            Some(Error::Infrastructure(
                crate::InfrastructureError::Unavailable
            ))
        );
    }

    #[tokio::test]
    async fn the_system_database_names_root() {
        let outcome = PeerAuthenticator::new()
            .authenticate(&mut Attempt::new(unix(0), Credential::Peer))
            .await;
        assert_eq!(outcome.session().map(|s| s.principal()), Some("root"));
        assert!(PeerAuthenticator::new().local_only());
        assert!(
            !PeerAuthenticator::new().supports(&Credential::Absent),
            "only the peer credential"
        );
    }
}
