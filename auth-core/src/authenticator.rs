//! The trait every authentication method implements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::attempt::Attempt;
use crate::credential::{Credential, CredentialKind};
use crate::outcome::Outcome;

/// An authentication method: a password store, a JWT validator, a Kerberos acceptor, or a
/// whole [`Chain`](crate::Chain) of them.
///
/// Object safe, so a chain holds `Arc<dyn Authenticator>` of different types. Run the
/// published contract suite (`auth_core::contract`, feature `contract`) against an
/// implementation to check the properties the chain relies on.
#[async_trait]
pub trait Authenticator: Send + Sync + Debug {
    /// A short stable name for audit events and sessions (`password`, `oauth`).
    fn name(&self) -> &str;

    /// The credential kinds this method can judge, so the engine knows what to
    /// [offer](crate::Engine::offer) a client before any credential arrives (pgwire must
    /// pick a password or SASL request; HTTP lists its challenges).
    fn accepts(&self) -> &[CredentialKind];

    /// Whether this method can judge `credential`. Cheap and free of I/O: the chain skips
    /// the link when it returns `false`. By default, whether [`accepts`](Self::accepts)
    /// lists the credential's kind (SASL by mechanism name); override it only to decline
    /// some credentials of an accepted kind.
    fn supports(&self, credential: &Credential) -> bool {
        kinds_include(self.accepts(), credential)
    }

    /// Judges the attempt. Must return [`Outcome::NotApplicable`] for a credential that
    /// [`supports`](Self::supports) declines.
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome;

    /// Whether this method proves nothing a remote client could not fake, so it is safe
    /// only for clients on this machine (`trust`, `peer`). A [`Policy`](crate::Policy)
    /// refuses to be built with such a method behind a rule that can match a connection
    /// from another machine. Default `false`.
    fn local_only(&self) -> bool {
        false
    }

    /// What the connection must be for this method to run on it. By default a
    /// [local-only](Self::local_only) method needs [`Transport::Local`], one that accepts a
    /// reusable secret (a password, a bearer token, an API key) needs
    /// [`Transport::Encrypted`], and any other [`Transport::Any`]. Override it for a
    /// method that carries a reusable secret inside another kind (a bearer token in SASL
    /// `OAUTHBEARER`). The engine withholds a method from a connection that does not meet
    /// it, on every front door, unless its one opt-in says otherwise
    /// ([`EngineBuilder::dangerous`](crate::engine::EngineBuilder::dangerous)).
    fn transport(&self) -> Transport {
        if self.local_only() {
            Transport::Local
        } else if self.accepts().iter().any(|k| k.is_reusable_secret()) {
            Transport::Encrypted
        } else {
            Transport::Any
        }
    }
}

/// What a connection must be for a method to run on it (see
/// [`Authenticator::transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Any connection: the method sends nothing a listener could reuse (SCRAM, GSSAPI, a
    /// client certificate).
    Any,
    /// An encrypted connection (TLS, or a Unix-domain socket, whose bytes never cross a
    /// network): the client sends a secret that whoever reads it can replay.
    Encrypted,
    /// A connection from this machine only (`peer`, `trust`).
    Local,
}

impl Transport {
    /// A short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Encrypted => "encrypted",
            Self::Local => "local",
        }
    }
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn local_only(&self) -> bool {
        (**self).local_only()
    }
    fn transport(&self) -> Transport {
        (**self).transport()
    }
    fn accepts(&self) -> &[CredentialKind] {
        (**self).accepts()
    }
    fn supports(&self, credential: &Credential) -> bool {
        (**self).supports(credential)
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        (**self).authenticate(attempt).await
    }
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn local_only(&self) -> bool {
        (**self).local_only()
    }
    fn transport(&self) -> Transport {
        (**self).transport()
    }
    fn accepts(&self) -> &[CredentialKind] {
        (**self).accepts()
    }
    fn supports(&self, credential: &Credential) -> bool {
        (**self).supports(credential)
    }
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        (**self).authenticate(attempt).await
    }
}

/// Whether `kinds` contains the kind of `credential` (SASL matched by mechanism name).
pub fn kinds_include(kinds: &[CredentialKind], credential: &Credential) -> bool {
    match credential {
        Credential::Sasl { mechanism, .. } => kinds
            .iter()
            .any(|k| matches!(k, CredentialKind::Sasl(m) if *m == mechanism.as_str())),
        other => kinds.contains(&other.kind()),
    }
}

/// Work that makes a cheap secret check cost what a password-hash check costs.
///
/// A method that compares a stored secret in microseconds, next to one that verifies a
/// password hash in tens of milliseconds, tells its users from the others by timing, and
/// lets them be guessed at no cost. Such a method runs this work on every check; a password
/// hasher implements it by verifying against a hash that matches nothing
/// (`auth_password::Hasher` does).
#[async_trait]
pub trait EqualCost: Send + Sync + Debug {
    /// Does the work of verifying `password`, and discards the answer.
    async fn verify_dummy(&self, password: secrecy::SecretString);
}
