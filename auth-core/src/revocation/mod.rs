//! Revoked tokens, shared by every instance that asks the same store.
//!
//! A bearer token is good until its `exp`; a [`Revocations`] store ends it sooner. Three
//! kinds of revocation, each kept only as long as it can matter:
//!
//! | revoked | how it is named | a token is refused when | kept until |
//! |---|---|---|---|
//! | one token | its `jti`, or the SHA-256 of the token (opaque tokens) | its id matches | the token's own expiry |
//! | every token of a user | the user | it names the user and was issued (`iat`) at or before the revocation, or has no `iat` | `keep_for` after the revocation (the longest token lifetime) |
//! | every token of a grant | the grant id the token carries | as for a user | as for a user |
//!
//! Validators ask [`Revocations::is_revoked`] with what the token says ([`TokenFacts`]);
//! an answer of `Err` means the store could not be asked, and the caller decides by its
//! configured policy (fail closed by default).

mod memory;

use std::fmt::{self, Debug};
use std::time::SystemTime;

use async_trait::async_trait;

pub use memory::MemoryRevocations;

/// How one token is named.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TokenId {
    /// The JWT's `jti` claim.
    Jti(String),
    /// The SHA-256 of the token as presented (an opaque token has no `jti`).
    Digest([u8; 32]),
}

impl TokenId {
    /// The id of an opaque `token`: its SHA-256, so the store never holds the token.
    pub fn digest_of(token: &str) -> Self {
        use sha2::Digest as _;
        Self::Digest(sha2::Sha256::digest(token.as_bytes()).into())
    }

    /// A stable text form (`jti:<jti>` or `sha256:<hex>`), for stores that key by text.
    pub fn key(&self) -> String {
        match self {
            Self::Jti(jti) => format!("jti:{jti}"),
            Self::Digest(d) => {
                let mut s = String::with_capacity(7 + 64);
                s.push_str("sha256:");
                for b in d {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
        }
    }
}

impl TokenId {
    /// The id [`key`](Self::key) wrote, read back; `None` for any other text.
    pub fn from_key(key: &str) -> Option<Self> {
        if let Some(jti) = key.strip_prefix("jti:") {
            return Some(Self::Jti(jti.to_owned()));
        }
        let hex = key.strip_prefix("sha256:")?;
        if hex.len() != 64 {
            return None;
        }
        let mut d = [0u8; 32];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self::Digest(d))
    }
}

impl Debug for TokenId {
    /// A digest is shown shortened: enough to tell two apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jti(jti) => write!(f, "Jti({jti:?})"),
            Self::Digest(d) => write!(
                f,
                "Digest({:02x}{:02x}{:02x}{:02x}..)",
                d[0], d[1], d[2], d[3]
            ),
        }
    }
}

/// What a token says about itself, as far as revocation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts<'a> {
    /// Its id.
    pub id: TokenId,
    /// The user it names (`sub`, or the user it was mapped to).
    pub user: Option<&'a str>,
    /// The grant id it carries (a refresh family, an authorization), if any.
    pub grant: Option<&'a str>,
    /// When it was issued (`iat`); a token without one is refused by a user's or a grant's
    /// revocation, since it cannot show it is newer.
    pub issued_at: Option<SystemTime>,
}

/// One revocation, as instances pass it to each other (a feed of the shared store's
/// changes into each instance's local replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One token, until its expiry.
    Token {
        /// Its id.
        id: TokenId,
        /// Its expiry.
        expires: SystemTime,
    },
    /// Every token of a user issued up to `at`.
    User {
        /// The user.
        user: String,
        /// The revocation's time.
        at: SystemTime,
    },
    /// Every token of a grant issued up to `at`.
    Grant {
        /// The grant id.
        grant: String,
        /// The revocation's time.
        at: SystemTime,
    },
}

/// A store of revocations could not be asked or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct RevocationError(pub String);

/// A store of revocations. The in-memory [`MemoryRevocations`] serves one process; a
/// shared store (Redis, PostgreSQL) makes a revocation at one instance hold at all.
///
/// `auth_core::contract::revocations` (feature `contract`) holds the properties every
/// implementation keeps.
#[async_trait]
pub trait Revocations: Send + Sync + Debug {
    /// Revokes one token until `expires` (its `exp`: after it the token is refused
    /// anyway, so the revocation may be forgotten).
    async fn revoke_token(&self, id: &TokenId, expires: SystemTime) -> Result<(), RevocationError>;

    /// Revokes every token of `user` issued at or before `at`.
    async fn revoke_user(&self, user: &str, at: SystemTime) -> Result<(), RevocationError>;

    /// Revokes every token of grant `grant` issued at or before `at`.
    async fn revoke_grant(&self, grant: &str, at: SystemTime) -> Result<(), RevocationError>;

    /// Whether the token `facts` describes is revoked.
    async fn is_revoked(&self, facts: &TokenFacts<'_>) -> Result<bool, RevocationError>;
}

/// Whether a token issued at `issued_at` falls under a revocation of everything issued at
/// or before `revoked_at`.
pub fn issued_by(issued_at: Option<SystemTime>, revoked_at: SystemTime) -> bool {
    issued_at.is_none_or(|iat| iat <= revoked_at)
}
