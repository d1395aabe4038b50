//! Kerberos through GSSAPI as an auth-core authenticator: the client's tokens arrive
//! through the attempt's `Conversation` (pgwire GSSResponse, HTTP Negotiate), every
//! blocking GSS call runs off the async runtime, and the chain's per-link timeout bounds
//! the whole handshake.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use auth_core::{
    Attempt, Authenticator, ConversationError, Credential, CredentialError, CredentialKind,
    CredentialStore, Evidence, Key, Outcome, StandardSession,
};
use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::error::{Error as GssError, MajorFlags};

use crate::acceptor;
use crate::mapping::PrincipalMapper;
use crate::principal::Principal;

/// The longest client token accepted.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The most rounds a handshake may take (Kerberos needs one or two).
const MAX_ROUNDS: usize = 8;

/// Where the mapped user must exist.
#[derive(Debug, Clone)]
pub struct UserDirectory {
    /// The store of users.
    pub store: Arc<dyn CredentialStore>,
    /// The key prefix of a user record (`user/` for auth-password's users).
    pub prefix: String,
}

/// Authenticates [`Credential::GssToken`] with a GSSAPI (Kerberos) acceptor.
#[derive(Debug)]
pub struct GssAuthenticator {
    keytab: Option<PathBuf>,
    service: Option<String>,
    mapper: PrincipalMapper,
    users: Option<UserDirectory>,
}

impl GssAuthenticator {
    /// An acceptor using `keytab` (`None`: the default, `KRB5_KTNAME`) and `mapper`.
    pub fn new(keytab: Option<PathBuf>, mapper: PrincipalMapper) -> Self {
        Self {
            keytab,
            service: None,
            mapper,
            users: None,
        }
    }

    /// Accepts only tickets for this service (`postgres`, matching `postgres/<host>`; or a
    /// full principal `postgres/db.example.com@REALM`), though the keytab may hold others.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    fn service_accepted(&self, target: &str) -> bool {
        match &self.service {
            None => true,
            Some(wanted) if wanted.contains('/') || wanted.contains('@') => {
                target == wanted || target.split('@').next() == Some(wanted.as_str())
            }
            Some(wanted) => target.split('/').next() == Some(wanted.as_str()),
        }
    }

    /// Requires the mapped user to exist in `users`.
    #[must_use]
    pub fn with_users(mut self, users: UserDirectory) -> Self {
        self.users = Some(users);
        self
    }

    async fn user_exists(&self, user: &str) -> Result<bool, Outcome> {
        let Some(dir) = &self.users else {
            return Ok(true);
        };
        let Ok(key) = Key::new(format!("{}{user}", dir.prefix)) else {
            return Ok(false);
        };
        match dir.store.read_many(&[key]).await {
            Ok(found) => Ok(found.into_iter().next().flatten().is_some()),
            Err(e) => Err(Outcome::unavailable(format!("user store: {e}"))),
        }
    }
}

/// A GSS failure as an outcome; the status text goes to the audit detail only.
fn failed(e: &GssError) -> Outcome {
    let detail = format!("GSSAPI: {e}");
    if e.major.contains(MajorFlags::GSS_S_NO_CRED) {
        // The server's own credentials (keytab) are missing: not the client's fault.
        Outcome::unavailable(detail)
    } else if e.major.contains(MajorFlags::GSS_S_CREDENTIALS_EXPIRED) || detail.contains("expired")
    {
        Outcome::rejected(CredentialError::Expired, detail)
    } else if e.major.contains(MajorFlags::GSS_S_DEFECTIVE_TOKEN) {
        Outcome::rejected(CredentialError::Malformed, detail)
    } else {
        // Wrong service key (a ticket for a rotated key), bad integrity, and the rest.
        Outcome::rejected(CredentialError::Invalid, detail)
    }
}

fn conversation_failure(e: ConversationError) -> Outcome {
    match e {
        ConversationError::NotInteractive { .. } => {
            Outcome::rejected(CredentialError::Missing, "GSSAPI needs another round")
        }
        other => Outcome::rejected(
            CredentialError::Malformed,
            format!("GSSAPI conversation: {other}"),
        ),
    }
}

/// One acceptor step off the runtime; the first step acquires the credentials.
async fn step(
    keytab: Option<PathBuf>,
    ctx: Option<ServerCtx>,
    token: Vec<u8>,
) -> Result<(ServerCtx, Option<Vec<u8>>), Outcome> {
    tokio::task::spawn_blocking(move || {
        let mut ctx = match ctx {
            Some(c) => c,
            None => ServerCtx::new(Some(
                acceptor::acquire(keytab.as_deref()).map_err(|e| failed(&e))?,
            )),
        };
        let out = ctx.step(&token, None).map_err(|e| failed(&e))?;
        Ok((ctx, out.map(|b| b.to_vec())))
    })
    .await
    .map_err(|e| Outcome::unavailable(format!("GSSAPI task: {e}")))?
}

#[async_trait]
impl Authenticator for GssAuthenticator {
    fn name(&self) -> &str {
        "kerberos"
    }

    fn accepts(&self) -> &[CredentialKind] {
        &[CredentialKind::Gss]
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate(&self, attempt: &mut Attempt) -> Outcome {
        let outcome = self.handshake(attempt).await;
        if !matches!(outcome, Outcome::NotApplicable) {
            metrics::counter!(
                crate::HANDSHAKES_METRIC,
                "outcome" => outcome.class().as_str()
            )
            .increment(1);
        }
        outcome
    }
}

impl GssAuthenticator {
    /// The GSS-API exchange of one attempt, to its outcome.
    async fn handshake(&self, attempt: &mut Attempt) -> Outcome {
        let Credential::GssToken(first) = &attempt.credential else {
            return Outcome::NotApplicable;
        };
        if first.is_empty() || first.len() > MAX_TOKEN_LEN {
            return Outcome::rejected(
                CredentialError::Malformed,
                "GSSAPI token empty or larger than 64 KiB",
            );
        }
        let mut token = first.clone();
        let mut ctx = None;
        let final_token;
        let mut round = 0;
        loop {
            let (c, out) = match step(self.keytab.clone(), ctx.take(), token).await {
                Ok(x) => x,
                Err(outcome) => return outcome,
            };
            if c.is_complete() {
                final_token = out.filter(|t| !t.is_empty());
                ctx = Some(c);
                break;
            }
            round += 1;
            if round >= MAX_ROUNDS {
                return Outcome::rejected(
                    CredentialError::Malformed,
                    "GSSAPI handshake took too many rounds",
                );
            }
            let Some(conversation) = attempt.conversation() else {
                return Outcome::unavailable("the adapter provided no conversation for GSSAPI");
            };
            token = match conversation.exchange(out.unwrap_or_default()).await {
                Ok(t) if !t.is_empty() && t.len() <= MAX_TOKEN_LEN => t,
                Ok(_) => {
                    return Outcome::rejected(
                        CredentialError::Malformed,
                        "GSSAPI token empty or larger than 64 KiB",
                    );
                }
                Err(e) => return conversation_failure(e),
            };
            ctx = Some(c);
        }
        let Some(ctx) = ctx else {
            return Outcome::unavailable("GSSAPI handshake ended without a context");
        };
        let name = match ctx.source_name().and_then(|n| n.display_name()) {
            Ok(buf) => String::from_utf8_lossy(&buf).into_owned(),
            Err(e) => return failed(&e),
        };
        let target = match ctx.target_name().and_then(|n| n.display_name()) {
            Ok(buf) => String::from_utf8_lossy(&buf).into_owned(),
            Err(e) => return failed(&e),
        };
        if !self.service_accepted(&target) {
            return Outcome::rejected(
                CredentialError::Invalid,
                format!("ticket for service `{target}`, not the configured one"),
            );
        }
        drop(ctx);
        let principal = match Principal::parse(&name) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::rejected(CredentialError::Invalid, format!("{e}: {name}"));
            }
        };
        let service_realm = target.rsplit_once('@').map(|(_, realm)| realm);
        let user = match self.mapper.map_for_service(&principal, service_realm) {
            Ok(u) => u,
            Err(e) => {
                return Outcome::rejected(
                    CredentialError::Invalid,
                    format!("principal `{principal}`: {e}"),
                );
            }
        };
        match self.user_exists(&user).await {
            Ok(true) => {}
            Ok(false) => {
                return Outcome::rejected(
                    CredentialError::Invalid,
                    format!("principal `{principal}` maps to `{user}`, which is not a known user"),
                );
            }
            Err(outcome) => return outcome,
        }
        if let Some(token) = final_token {
            // Mutual authentication: the client verifies the server with this token.
            let Some(conversation) = attempt.conversation() else {
                return Outcome::unavailable("the adapter provided no conversation for GSSAPI");
            };
            if let Err(e) = conversation.complete(token).await {
                return conversation_failure(e);
            }
        }
        Outcome::Authenticated(
            StandardSession::new(principal.to_string(), "kerberos", attempt.now())
                .with_user(user)
                .with_evidence(Evidence::KerberosPrincipal(principal.to_string()))
                .boxed(),
        )
    }
}
