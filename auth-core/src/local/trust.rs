//! `trust`: no proof at all, for clients on this machine only.

use async_trait::async_trait;

use crate::attempt::Attempt;
use crate::authenticator::Authenticator;
use crate::credential::CredentialKind;
use crate::error::{AuthorizationError, CredentialError};
use crate::outcome::Outcome;
use crate::session::{Evidence, StandardSession};

/// Lets a client on this machine in as the user it asks to be, with no credential
/// (PostgreSQL's `trust`), for local system users such as a maintenance job. It refuses
/// any connection that is not [local](crate::ConnectionInfo::is_localhost), and a
/// [`Policy`](crate::Policy) refuses it behind a rule that could match one. The account
/// stage still applies: a disabled or expired account is refused. As with PostgreSQL,
/// trust on loopback TCP also admits whatever a local proxy (an SSH tunnel, a pooler)
/// forwards from elsewhere: prefer a Unix-socket rule.
///
/// ```
/// use auth_core::local::TrustAuthenticator;
/// use auth_core::{Attempt, Authenticator, ConnectionInfo, Credential, Protocol};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let local = ConnectionInfo::tcp(Protocol::Postgres, "127.0.0.1:40000".parse().unwrap());
/// let mut attempt = Attempt::new(local.with_user("maint"), Credential::Absent);
/// let outcome = TrustAuthenticator::new().authenticate(&mut attempt).await;
/// assert_eq!(outcome.session().map(|s| s.user()), Some("maint"));
///
/// let remote = ConnectionInfo::tcp(Protocol::Postgres, "10.0.0.9:40000".parse().unwrap());
/// let mut attempt = Attempt::new(remote.with_user("maint"), Credential::Absent);
/// assert!(TrustAuthenticator::new().authenticate(&mut attempt).await.failure().is_some());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TrustAuthenticator {}

impl Default for TrustAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl TrustAuthenticator {
    /// Trust (session timestamps from the attempt's clock).
    pub fn new() -> Self {
        Self {}
    }
}

#[async_trait]
impl Authenticator for TrustAuthenticator {
    fn name(&self) -> &str {
        "trust"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Absent]
    }

    fn local_only(&self) -> bool {
        true
    }

    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        if !self.supports(&attempt.credential) {
            return Outcome::NotApplicable;
        }
        if !attempt.connection.is_localhost() {
            return Outcome::rejected(
                AuthorizationError::Rejected,
                format!(
                    "trust is only for clients on this machine, not {}",
                    attempt.connection.peer
                ),
            );
        }
        let Some(user) = attempt.connection.user.clone() else {
            return Outcome::rejected(
                CredentialError::Missing,
                "trust needs the user the client asks to be",
            );
        };
        let session =
            StandardSession::new(user, "trust", attempt.now()).with_evidence(Evidence::LocalTrust);
        Outcome::Authenticated(session.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::connection::{ConnectionInfo, Peer, Protocol};
    use crate::credential::Credential;

    async fn judge(connection: ConnectionInfo, credential: Credential) -> Outcome {
        TrustAuthenticator::new()
            .authenticate(&mut Attempt::new(connection, credential))
            .await
    }

    #[tokio::test]
    async fn local_clients_are_who_they_ask_to_be_and_nobody_else_is() {
        for local in [
            ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None)),
            ConnectionInfo::tcp(Protocol::Postgres, "[::1]:5".parse().unwrap()),
        ] {
            let outcome = judge(local.with_user("maint"), Credential::Absent).await;
            let session = outcome.session().expect("trusted");
            assert_eq!((session.user(), session.method()), ("maint", "trust"));
            assert_eq!(session.evidence(), &Evidence::LocalTrust);
        }
        let remote =
            ConnectionInfo::tcp(Protocol::Postgres, "[::ffff:10.1.1.1]:5".parse().unwrap());
        let refused = judge(remote.with_user("maint"), Credential::Absent).await;
        assert_eq!(
            refused.failure().map(|f| f.error),
            Some(Error::Authorization(AuthorizationError::Rejected))
        );
        let nameless = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None));
        let refused = judge(nameless, Credential::Absent).await;
        assert_eq!(
            refused.failure().map(|f| f.error),
            Some(Error::Credential(CredentialError::Missing))
        );
        let local = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None));
        assert!(matches!(
            judge(local, Credential::password("maint", "x")).await,
            Outcome::NotApplicable
        ));
    }
}
